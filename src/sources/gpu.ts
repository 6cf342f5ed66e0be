import { execFile, type ChildProcess, type ExecFileException } from "node:child_process";

/** One GPU as nvidia-smi reports it; a field the driver cannot report is undefined, never 0. */
export interface GpuSample {
  /** nvidia-smi's 0-based device index (TorchServe's DeviceId). */
  index: number;
  /** `utilization.gpu`, in %. */
  utilization: number | undefined;
  /** `memory.used`, in MiB. */
  memoryUsedMiB: number | undefined;
  /** memory.used / memory.total, in %. */
  memoryUtilization: number | undefined;
}

/** The outcome of one nvidia-smi query; a failure says why, for the log. */
export type GpuQueryResult =
  | { ok: true; gpus: GpuSample[] }
  | { ok: false; reason: "missing" | "timeout" | "failed" | "unparsable"; message: string };

/** How to run nvidia-smi. */
export interface GpuQueryOptions {
  /** The executable: a name looked up on PATH, or a path. */
  command: string;
  /** After this many ms nvidia-smi is killed (SIGKILL) and the query answers "timeout". */
  timeoutMs: number;
  /** Report only the first N devices (TorchServe's `number_of_gpu`); 0 runs nothing. */
  maxDevices?: number;
}

/** The arguments given to nvidia-smi: one CSV row per device, with a header line. */
export const NVIDIA_SMI_ARGS: readonly string[] = [
  "--query-gpu=index,utilization.gpu,memory.used,memory.total",
  "--format=csv",
];

// A few rows of CSV; anything this large is not nvidia-smi answering our query.
const MAX_OUTPUT_BYTES = 1024 * 1024;

/**
 * Parses `nvidia-smi --query-gpu=... --format=csv` output. Columns are found by header name,
 * units stripped; `[N/A]`, `[Not Supported]` or any other non-number gives undefined.
 * Throws an Error saying what is wrong when the text is not such a table.
 */
export function parseNvidiaSmiCsv(text: string): GpuSample[] {
  const lines = text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== "");
  const [headerLine, ...rows] = lines;
  if (headerLine === undefined) throw new Error("nvidia-smi printed nothing");
  // "memory.used [MiB]" → "memory.used"
  const header = splitCsv(headerLine).map((h) => h.replace(/\s*\[[^\]]*\]$/, "").toLowerCase());
  const column = (name: string): number => {
    const at = header.indexOf(name);
    if (at < 0) throw new Error(`nvidia-smi output has no "${name}" column: "${headerLine}"`);
    return at;
  };
  const indexAt = column("index");
  const utilizationAt = column("utilization.gpu");
  const usedAt = column("memory.used");
  const totalAt = column("memory.total");

  return rows.map((row) => {
    const fields = splitCsv(row);
    if (fields.length !== header.length) {
      throw new Error(`nvidia-smi row has ${fields.length} fields, the header ${header.length}: "${row}"`);
    }
    const index = numberIn(fields[indexAt]);
    if (index === undefined || !Number.isInteger(index)) {
      throw new Error(`nvidia-smi row has no device index: "${row}"`);
    }
    const used = numberIn(fields[usedAt]);
    const total = numberIn(fields[totalAt]);
    return {
      index,
      utilization: numberIn(fields[utilizationAt]),
      memoryUsedMiB: used,
      memoryUtilization:
        used !== undefined && total !== undefined && total > 0 ? (used / total) * 100 : undefined,
    };
  });
}

/** Runs nvidia-smi (no shell, bounded time and output) and parses its answer; never throws. */
export async function queryGpus(options: GpuQueryOptions): Promise<GpuQueryResult> {
  const { command, timeoutMs, maxDevices } = options;
  if (maxDevices !== undefined && maxDevices <= 0) return { ok: true, gpus: [] };
  const run = await runNvidiaSmi(command, timeoutMs);
  if (!run.ok) return run;
  try {
    const gpus = parseNvidiaSmiCsv(run.stdout);
    return { ok: true, gpus: maxDevices === undefined ? gpus : gpus.slice(0, maxDevices) };
  } catch (error) {
    return {
      ok: false,
      reason: "unparsable",
      message: error instanceof Error ? error.message : String(error),
    };
  }
}

type RunResult = { ok: true; stdout: string } | Extract<GpuQueryResult, { ok: false }>;

function runNvidiaSmi(command: string, timeoutMs: number): Promise<RunResult> {
  return new Promise((resolve) => {
    let settled = false;
    let child: ChildProcess | undefined;
    const settle = (result: RunResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(result);
    };
    // Our own timer rather than execFile's `timeout`: execFile calls back only once the child
    // has exited, and one stuck in the driver may take long to die after SIGKILL.
    const timer = setTimeout(() => {
      child?.kill("SIGKILL");
      settle({
        ok: false,
        reason: "timeout",
        message: `${command} did not answer within ${timeoutMs} ms and was killed`,
      });
    }, timeoutMs);
    try {
      child = execFile(
        command,
        NVIDIA_SMI_ARGS,
        { encoding: "utf8", maxBuffer: MAX_OUTPUT_BYTES, killSignal: "SIGKILL", windowsHide: true },
        (error, stdout, stderr) => {
          settle(error === null ? { ok: true, stdout } : describeFailure(command, error, stdout, stderr));
        },
      );
    } catch (error) {
      // execFile throws, rather than calling back, on arguments it rejects (a NUL in the path).
      settle({ ok: false, reason: "failed", message: `${command} could not be run: ${describe(error)}` });
    }
  });
}

function describeFailure(
  command: string,
  error: ExecFileException,
  stdout: string,
  stderr: string,
): Extract<GpuQueryResult, { ok: false }> {
  if (error.code === "ENOENT") return { ok: false, reason: "missing", message: `${command} not found` };
  if (error.code === "ERR_CHILD_PROCESS_STDIO_MAXBUFFER") {
    return {
      ok: false,
      reason: "unparsable",
      message: `${command} printed more than ${MAX_OUTPUT_BYTES} bytes`,
    };
  }
  // nvidia-smi prints many of its errors on stdout ("NVIDIA-SMI has failed because ...").
  const said = firstLine(stderr) ?? firstLine(stdout);
  const suffix = said === undefined ? "" : `: ${said}`;
  if (typeof error.code === "number") {
    return { ok: false, reason: "failed", message: `${command} exited with code ${error.code}${suffix}` };
  }
  if (typeof error.signal === "string") {
    return { ok: false, reason: "failed", message: `${command} was killed by ${error.signal}${suffix}` };
  }
  return { ok: false, reason: "failed", message: `${command} could not be run: ${error.message}` };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function firstLine(text: string): string | undefined {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .find((l) => l !== "");
}

function splitCsv(line: string): string[] {
  // nvidia-smi never quotes: no field of ours can contain a comma.
  return line.split(",").map((f) => f.trim());
}

/** "37 %", "1024 MiB" or "1024" → the number; "[N/A]", "[Not Supported]", "" → undefined. */
function numberIn(field: string | undefined): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*(?:%|[A-Za-z]+)?$/.exec(field ?? "");
  return match?.[1] === undefined ? undefined : Number(match[1]);
}
