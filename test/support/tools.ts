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
 * The python3 that can import `module`: the one on PATH, else Debian's `/usr/bin/python3` (where
 * .ci/run's apt fallback installs it when a user's own python3, pyenv's say, comes first). Skips
 * the test (fails it under CI=true) when neither can; the skip names the pip package to install.
 */
export function requirePythonModule(ctx: Mocha.Context, module: string, pipPackage: string): string {
  const candidates = [findExecutable("python3"), "/usr/bin/python3"];
  for (const python of candidates) {
    if (python === undefined) continue;
    try {
      execFileSync(python, ["-c", `import ${module}`], { stdio: "ignore" });
      return python;
    } catch {
      // the next candidate
    }
  }
  const message = `python3 cannot import ${module}; install it with: pip install ${pipPackage}`;
  if (inCI) throw new Error(`${message} (CI=true forbids skipping)`);
  process.stderr.write(`skipped: ${message}\n`);
  ctx.skip();
}
