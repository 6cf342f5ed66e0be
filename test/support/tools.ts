import { execFileSync } from "node:child_process";

/** True when CI=true: then a test that needs a missing tool fails instead of skipping. */
export const inCI = process.env.CI === "true";

/** Absolute path of an executable on PATH, or undefined. */
export function findExecutable(name: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/**
 * Returns the tool's path; when it is missing, skips the test, or fails it under CI=true.
 * Call from inside `it`/`before` with the mocha context.
 */
export function requireTool(ctx: Mocha.Context, name: string): string {
  const found = findExecutable(name);
  if (found !== undefined) return found;
  if (inCI) throw new Error(`${name} is not installed; CI=true forbids skipping (see .ci/run)`);
  ctx.skip();
}

/**
 * Skips the test (fails it under CI=true) unless `python3` can import `module`; the skip names
 * the pip package to install, so that a skipped check is never a silent one.
 */
export function requirePythonModule(ctx: Mocha.Context, module: string, pipPackage: string): void {
  const python = requireTool(ctx, "python3");
  try {
    execFileSync(python, ["-c", `import ${module}`], { stdio: "ignore" });
    return;
  } catch {
    const message = `python3 cannot import ${module}; install it with: pip install ${pipPackage}`;
    if (inCI) throw new Error(`${message} (CI=true forbids skipping)`);
    process.stderr.write(`skipped: ${message}\n`);
    ctx.skip();
  }
}
