import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { expect } from "chai";
import { ConfigError } from "../../src/config/errors.js";

/** A fresh directory under the OS temp dir; remove it with {@link removeTempDir}. */
export function makeTempDir(): string {
  return mkdtempSync(join(tmpdir(), "serve-metrics-config-"));
}

/** Deletes a directory made by {@link makeTempDir}. */
export function removeTempDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/** Writes `text` to `dir/name` (creating sub-directories) and returns the absolute path. */
export function writeTempFile(dir: string, name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
  return path;
}

/** Runs `fn`, asserts that it throws a ConfigError with exit code 2, and returns that error. */
export function catchConfigError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    expect(err).to.be.instanceOf(ConfigError);
    const configError = err as ConfigError;
    expect(configError.exitCode).to.equal(2);
    return configError;
  }
  return expect.fail("expected a ConfigError, but nothing was thrown");
}
