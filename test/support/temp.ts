import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const made: string[] = [];

function removeAll(): void {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true });
}

/**
 * A new empty directory `<os temp dir>/<prefix>XXXXXX`, removed with its contents when the test
 * process exits (passing or failing), so that a test run leaves nothing behind.
 */
export function tempDir(prefix: string): string {
  if (made.length === 0) process.once("exit", removeAll);
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
