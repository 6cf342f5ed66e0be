import { createReadStream, createWriteStream } from "node:fs";
import { mkdir, open, rename, unlink, type FileHandle } from "node:fs/promises";
import { dirname, join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createGzip } from "node:zlib";

import type { TorchServeLogFile } from "../../src/sources/torchserve-logs.js";

/** Where the writer writes, and how it rolls and splits. */
export interface TorchServeLogWriterOptions {
  /** TorchServe's LOG_LOCATION: `access_log.log`. */
  logDir: string;
  /** TorchServe's METRICS_LOCATION: the two metric files; default logDir. */
  metricsDir?: string;
  /**
   * Roll a file over before the line that would be written to it once it holds at least this
   * many bytes, as log4j2's SizeBasedTriggeringPolicy does (TorchServe: 100 MB); default never.
   */
  rotateBytes?: number;
  /**
   * Split what one write would write into pieces written one after another, as async_logging's
   * buffer flushes do: given its length in bytes, returns the byte offsets to cut at (a cut may
   * fall inside a character). Default: one write.
   */
  cuts?: (byteLength: number) => readonly number[];
  /** Awaited before each rollover of a file, e.g. to let a follower look at it first. */
  beforeRotate?: (file: TorchServeLogFile, path: string) => Promise<void>;
  /** The `hostname:` of each metric line; default `ip-172-31-11-32`. */
  hostname?: string;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const FIRST_TIMESTAMP = 1717105563;

/** The lines of one inference request, per file, without the log4j2 time prefix. */
export interface RequestLines {
  ts_metrics: string[];
  model_metrics: string[];
  access_log: string[];
}

/**
 * The messages TorchServe logs for inference request `i` in `metrics_mode=log`: six frontend
 * metrics in ts_metrics.log, HandlerTime and PredictionTime with its request id in
 * model_metrics.log, and one access line. Values vary with `i` and use Java's double forms.
 */
export function requestLines(i: number, model = "mnist", hostname = "ip-172-31-11-32"): RequestLines {
  const timestamp = FIRST_TIMESTAMP + Math.floor(i / 1000);
  const tail = `|#hostname:${hostname},timestamp:${timestamp}`;
  const id = `${(i % 0xffffffff).toString(16).padStart(8, "0")}-7c1a-4b4e-9f3e-0c2d4e5f6a7b`;
  const modelTail = `|#hostname:${hostname},requestID:${id},timestamp:${timestamp}`;
  const modelDims = `model_name:${model},model_version:default`;
  const handlerMs = 10 + (i % 97) / 4;
  return {
    ts_metrics: [
      `ts_inference_requests_total.Count:1.0|#${modelDims}${tail}`,
      `ts_queue_latency_microseconds.Microseconds:${javaDouble(80 + (i % 13) * 1.5)}|#${modelDims}${tail}`,
      `QueueTime.Milliseconds:${javaDouble(i % 3)}|#Level:Host${tail}`,
      `WorkerThreadTime.Milliseconds:${javaDouble(1 + (i % 2))}|#Level:Host${tail}`,
      `ts_inference_latency_microseconds.Microseconds:${javaDouble(12_000 + (i % 1000) * 1000.5)}|#${modelDims}${tail}`,
      `Requests2XX.Count:1.0|#Level:Host${tail}`,
    ],
    model_metrics: [
      `HandlerTime.ms:${javaDouble(handlerMs)}|#ModelName:${model},Level:Model${modelTail}`,
      `PredictionTime.ms:${javaDouble(handlerMs + 0.01)}|#ModelName:${model},Level:Model${modelTail}`,
    ],
    access_log: [
      `/127.0.0.1:${40000 + (i % 20000)} "POST /predictions/${model} HTTP/1.1" 200 ${12 + (i % 50)}`,
    ],
  };
}

/** `Double.toString`'s forms: `1.0`, `2704.0`, `4.9299189976E7`, `5.0E-4`. */
export function javaDouble(value: number): string {
  const abs = Math.abs(value);
  if (value === 0) return "0.0";
  if (abs >= 1e-3 && abs < 1e7) {
    const text = String(value);
    return text.includes(".") ? text : `${text}.0`;
  }
  const [mantissa = "0", exponent = "0"] = value.toExponential().split("e");
  return `${mantissa.includes(".") ? mantissa : `${mantissa}.0`}E${Number(exponent)}`;
}

/** log4j2's `%d{ISO8601}`: local time, a comma before the milliseconds. */
export function log4jTime(date: Date): string {
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  return (
    `${date.getFullYear()}-${p(date.getMonth() + 1)}-${p(date.getDate())}T` +
    `${p(date.getHours())}:${p(date.getMinutes())}:${p(date.getSeconds())},${p(date.getMilliseconds(), 3)}`
  );
}

interface LiveFile {
  path: string;
  handle: FileHandle;
  size: number;
  // The last archive being gzipped, awaited before the next rollover reuses its name.
  compressing: Promise<void>;
}

/**
 * Writes TorchServe's three log files in log4j2's layout (`<time> - <message>`) and rolls them
 * over as its RollingFile appender does: close, rename to `<name>.<dd-MMM>.log`, create the new
 * empty file, then gzip the archive and delete the uncompressed copy. Keeps every line written,
 * per file, so that a test can compare what a follower received.
 */
export class TorchServeLogWriter {
  /** Every message written, per file, in order, without the time prefix. */
  readonly written: Record<TorchServeLogFile, string[]> = {
    ts_metrics: [],
    model_metrics: [],
    access_log: [],
  };
  /** Rollovers done per file. */
  readonly rotations: Record<TorchServeLogFile, number> = { ts_metrics: 0, model_metrics: 0, access_log: 0 };
  /** The live path of each file. */
  readonly paths: Readonly<Record<TorchServeLogFile, string>>;
  private readonly options: TorchServeLogWriterOptions;
  private readonly live = new Map<TorchServeLogFile, LiveFile>();
  private requests = 0;

  constructor(options: TorchServeLogWriterOptions) {
    this.options = options;
    const metricsDir = options.metricsDir ?? options.logDir;
    this.paths = {
      ts_metrics: join(metricsDir, "ts_metrics.log"),
      model_metrics: join(metricsDir, "model_metrics.log"),
      access_log: join(options.logDir, "access_log.log"),
    };
  }

  /** Creates the directories and the three files, empty or as they are, as TorchServe does at start. */
  async open(): Promise<void> {
    for (const file of Object.keys(this.paths) as TorchServeLogFile[]) {
      await mkdir(dirname(this.paths[file]), { recursive: true });
      const handle = await open(this.paths[file], "a");
      const { size } = await handle.stat();
      this.live.set(file, { path: this.paths[file], handle, size, compressing: Promise.resolve() });
    }
  }

  /** Writes the lines of the next `count` inference requests, each file in one write (or its cuts). */
  async writeRequests(count: number): Promise<void> {
    const batch: RequestLines = { ts_metrics: [], model_metrics: [], access_log: [] };
    for (let n = 0; n < count; n++) {
      const lines = requestLines(this.requests++, "mnist", this.options.hostname);
      batch.ts_metrics.push(...lines.ts_metrics);
      batch.model_metrics.push(...lines.model_metrics);
      batch.access_log.push(...lines.access_log);
    }
    for (const file of Object.keys(batch) as TorchServeLogFile[]) await this.writeLines(file, batch[file]);
  }

  /**
   * Writes messages to one file as log4j2 lines, rolling the file over first whenever it has
   * reached rotateBytes, so a rollover always falls between two lines.
   */
  async writeLines(file: TorchServeLogFile, messages: readonly string[]): Promise<void> {
    const live = this.need(file);
    const limit = this.options.rotateBytes ?? Infinity;
    const time = `${log4jTime(new Date())} - `;
    let pending = "";
    let pendingBytes = 0;
    for (const message of messages) {
      if (this.need(file).size + pendingBytes >= limit) {
        // The hook runs before the file's last lines are written, so that a follower it lets
        // catch up still has lines to read in the old file when the new one appears.
        await this.options.beforeRotate?.(file, live.path);
        await this.put(this.need(file), pending);
        pending = "";
        pendingBytes = 0;
        await this.rollover(file);
      }
      const line = `${time}${message}\n`;
      pending += line;
      pendingBytes += Buffer.byteLength(line);
      this.written[file].push(message);
    }
    await this.put(this.need(file), pending);
  }

  /** Rolls one file over now (the daily rollover, or a test's own), after the beforeRotate hook. */
  async rotate(file: TorchServeLogFile): Promise<void> {
    await this.options.beforeRotate?.(file, this.need(file).path);
    await this.rollover(file);
  }

  private async rollover(file: TorchServeLogFile): Promise<void> {
    const live = this.need(file);
    await live.compressing;
    await live.handle.close();
    const now = new Date();
    const day = `${String(now.getDate()).padStart(2, "0")}-${MONTHS[now.getMonth()] ?? "Jan"}`;
    const archive = join(dirname(live.path), `${file}.${day}.log`);
    await rename(live.path, archive);
    const handle = await open(live.path, "a");
    // Compressed in the background as log4j2's GzipCompressAction does; a same-day rollover
    // overwrites the archive.
    const compressing = pipeline(
      createReadStream(archive),
      createGzip(),
      createWriteStream(`${archive}.gz`),
    ).then(() => unlink(archive));
    // Awaited (and so reported) at the next rollover or close(), not as an unhandled rejection.
    compressing.catch(() => undefined);
    this.live.set(file, { path: live.path, handle, size: 0, compressing });
    this.rotations[file]++;
  }

  /** Waits for the archives being compressed and closes the files. */
  async close(): Promise<void> {
    for (const live of this.live.values()) {
      await live.compressing;
      await live.handle.close();
    }
    this.live.clear();
  }

  private async put(live: LiveFile, text: string): Promise<void> {
    if (text === "") return;
    const bytes = Buffer.from(text);
    const cuts = this.options.cuts?.(bytes.length) ?? [];
    let from = 0;
    for (const cut of [...cuts, bytes.length]) {
      const to = Math.min(Math.max(cut, from), bytes.length);
      if (to > from) await live.handle.write(bytes, from, to - from);
      from = to;
    }
    live.size += bytes.length;
  }

  private need(file: TorchServeLogFile): LiveFile {
    const live = this.live.get(file);
    if (live === undefined) throw new Error(`TorchServeLogWriter: open() first (${file})`);
    return live;
  }
}
