import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";

/** A child process started by the harness, with what it announced on its first stdout line. */
export interface Child<T> {
  process: ChildProcess;
  pid: number;
  ready: T;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
  /** What it wrote on stderr so far (for error messages). */
  stderr(): string;
}

/** How to start a child, and how to tell that it is ready. */
export interface ChildOptions<T> {
  timeoutMs?: number;
  /**
   * Reads each output line until it returns something: the child is then ready with that value.
   * Default: the first stdout line, parsed as JSON (the bench's own children print `{"url": ...}`).
   */
  readyWhen?: (line: string, stream: "stdout" | "stderr") => T | undefined;
}

/** Starts `node [nodeArgs] script [args]` and waits until it says it is ready. */
export function startChild<T>(
  nodeArgs: readonly string[],
  script: string,
  args: readonly string[],
  options: ChildOptions<T> = {},
): Promise<Child<T>> {
  const readyWhen =
    options.readyWhen ??
    ((line: string, stream: string) => (stream === "stdout" ? (JSON.parse(line) as T) : undefined));
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    // Only the tail matters for an error message; a chatty child must not grow this forever.
    stderr = (stderr + chunk).slice(-8192);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async (graceMs = 5000): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  };
  return new Promise((resolve, reject) => {
    let announced = false;
    const timer = setTimeout(() => {
      void stop(0);
      reject(new Error(`${script} did not start within ${options.timeoutMs ?? 30_000} ms: ${stderr}`));
    }, options.timeoutMs ?? 30_000);
    child.once("exit", (code, signal) => {
      if (announced) return;
      clearTimeout(timer);
      reject(new Error(`${script} exited (${signal ?? code ?? "?"}) before it was ready: ${stderr}`));
    });
    const watch = (stream: "stdout" | "stderr"): void => {
      createInterface({ input: child[stream] }).on("line", (line) => {
        if (announced) return;
        let ready: T | undefined;
        try {
          ready = readyWhen(line, stream);
        } catch (err) {
          ready = undefined;
          reject(new Error(`${script}: unexpected ${stream} line ${JSON.stringify(line)}: ${String(err)}`));
        }
        if (ready === undefined) return;
        announced = true;
        clearTimeout(timer);
        resolve({ process: child, pid: child.pid ?? 0, ready, stop, stderr: () => stderr });
      });
    };
    watch("stdout");
    watch("stderr");
  });
}

/** Node arguments that run a TypeScript entry point the way the harness itself runs. */
export const TSX: readonly string[] = ["--import", "tsx"];
