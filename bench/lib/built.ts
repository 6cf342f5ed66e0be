import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

/** Whether `dist/` was built after every change under `src/`: then the bench can run what users run. */
export function builtIsFresh(builtFile = "dist/index.js"): boolean {
  return existsSync(builtFile) && statSync(builtFile).mtimeMs >= newestMtime("src");
}

/**
 * serve-metrics' public API: the built `dist/index.js` when fresh, as `npm start` runs it, else
 * the sources through tsx (which adds a little per call: esbuild's `__name` wrappers).
 */
export async function serveMetricsApi(): Promise<typeof import("../../src/index.js")> {
  if (!builtIsFresh()) return import("../../src/index.js");
  const built = new URL("../../dist/index.js", import.meta.url).href;
  return (await import(built)) as typeof import("../../src/index.js");
}

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}
