import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root, where `src/cli.ts` lives. */
export const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** An environment without the caller's TS_* variables, so tests see only what they set. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("TS_") && !k.startsWith("OTEL_")) env[k] = v;
  return { ...env, ...extra };
}

/** Starts `serve-metrics` from source as a child process. */
export function spawnCli(args: string[], env: NodeJS.ProcessEnv = cleanEnv()): ChildProcess {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli.ts", ...args], { cwd: REPO_ROOT, env });
  recordStderr(child);
  return child;
}

// Everything a child wrote to stderr since it was recorded: two lines can arrive in one chunk, and
// a wait that starts after the first one matched must still find the second.
const stderrSoFar = new WeakMap<ChildProcess, { text: string }>();

/** Keeps the child's stderr from now on, for waitForStderr; spawnCli does it for its children. */
export function recordStderr(child: ChildProcess): void {
  if (stderrSoFar.has(child)) return;
  const record = { text: "" };
  stderrSoFar.set(child, record);
  child.stderr?.on("data", (d: Buffer) => (record.text += d.toString()));
}

/** Runs the CLI to completion (it must exit by itself) and returns its exit code and output. */
export function runCli(
  args: string[],
  env?: NodeJS.ProcessEnv,
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnCli(args, env);
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("close", (code) => resolve({ code, stdout, stderr })));
}

/**
 * Resolves with the first match of `pattern` in the child's stderr since it was recorded (see
 * recordStderr); rejects if it exits first.
 */
export function waitForStderr(child: ChildProcess, pattern: RegExp): Promise<RegExpMatchArray> {
  recordStderr(child);
  const record = stderrSoFar.get(child) ?? { text: "" };
  return new Promise((resolve, reject) => {
    const look = (): void => {
      const m = record.text.match(pattern);
      if (m) {
        child.stderr?.off("data", look);
        resolve(m);
      }
    };
    // Listeners run in the order they were added, so the record has this chunk already.
    child.stderr?.on("data", look);
    child.once("exit", (code) =>
      reject(new Error(`exited with ${String(code)} before ${String(pattern)}:\n${record.text}`)),
    );
    look();
  });
}

/**
 * Writes `dir/config.properties` for a CLI on free loopback ports, without GPUs, serving `models`
 * (the `models=` JSON), plus `extra` lines; returns its path.
 */
export function writeCliConfig(dir: string, models: unknown, extra: string[] = []): string {
  const path = join(dir, "config.properties");
  writeFileSync(
    path,
    [
      "metrics_address=http://127.0.0.1:0",
      "inference_address=http://127.0.0.1:0",
      "number_of_gpu=0",
      ...extra,
      `models=${JSON.stringify(models)}`,
    ].join("\n"),
  );
  return path;
}
