import { mkdirSync, openSync, closeSync, writeSync, statSync, fstatSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import type { MetricsMode } from "../config/types.js";
import type { Logger } from "../log.js";
import type { RecordEvent } from "../telemetry/recorder.js";
import { formatJavaDouble } from "./java-double.js";

/** The counters that stay on /metrics in legacy mode, and so are not logged there. */
const LEGACY_PROMETHEUS = new Set([
  "ts_inference_requests_total",
  "ts_inference_latency_microseconds",
  "ts_queue_latency_microseconds",
]);

/** log4j's ISO8601 layout, as TorchServe's log lines start: `2024-01-02T10:11:12,345` (local time). */
export function log4jTimestamp(date: Date): string {
  const pad = (n: number, width = 2): string => String(n).padStart(width, "0");
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())},${pad(date.getMilliseconds(), 3)}`
  );
}

/**
 * One update as TorchServe logs it, after the `<time> - ` prefix:
 * `Name.Unit:value|#Dim:v,...|#hostname:host,timestamp:s` (model metrics add `requestID:<id>,`).
 */
export function formatMetricLogLine(event: RecordEvent, date: Date): string {
  const { definition, value, attributes } = event;
  let host = "";
  const dims: string[] = [];
  for (const dim of definition.dimensions) {
    const v = attributes[dim];
    if (dim === "Hostname" || dim === "hostname") host = String(v ?? "");
    else if (v !== undefined) dims.push(`${dim}:${String(v)}`);
  }
  const request = definition.section === "model_metrics" ? `requestID:${event.requestId ?? ""},` : "";
  const seconds = Math.floor(date.getTime() / 1000);
  return `${definition.name}.${event.unit ?? definition.unit}:${formatJavaDouble(value)}|#${dims.join(",")}|#hostname:${host},${request}timestamp:${seconds}`;
}

/** Where and how the log-mode writer writes. */
export interface MetricsLogWriterOptions {
  /** `METRICS_LOCATION`; created if missing. */
  directory: string;
  mode: Extract<MetricsMode, "log" | "legacy">;
  logger: Logger;
  /** How often to notice that logrotate renamed a file away; default 1000 ms. */
  checkIntervalMs?: number;
}

interface LogFile {
  path: string;
  fd: number | undefined;
  ino: number;
  // Opening or writing failing (a removed directory, a full disk): each logged when it starts
  // and when it ends, not at every check or update.
  openFailing: boolean;
  writeFailing: boolean;
  // Lines written nowhere since the last one that was: not open, or the write failed.
  dropped: number;
  // The file ends in part of a lost line that could not be taken back: the next line starts
  // with a newline, so that the fragment stands alone instead of gluing onto it.
  endsMidLine: boolean;
}

/**
 * metrics_mode=log and legacy: appends every update to `ts_metrics.log` (frontend, system and
 * serve-metrics' own metrics) or `model_metrics.log` (backend metrics). Reopens both files on
 * SIGHUP and when the path no longer names the open file, so logrotate's rename works without
 * copytruncate. Writes are synchronous appends: a line is on disk before the update returns.
 * A file that cannot be written (a full disk) loses its lines until it can again; that is
 * logged when it starts and when it ends, with the count of lines lost. A line is written whole
 * or counted lost: a write that the disk cuts short is completed, or its part taken back.
 */
export class MetricsLogWriter {
  private readonly files: { ts: LogFile; model: LogFile };
  private timer: NodeJS.Timeout | undefined;
  private readonly onHangup = (): void => this.reopen();

  constructor(private readonly options: MetricsLogWriterOptions) {
    mkdirSync(options.directory, { recursive: true });
    this.files = {
      ts: logFile(join(options.directory, "ts_metrics.log")),
      model: logFile(join(options.directory, "model_metrics.log")),
    };
    this.reopen();
    this.timer = setInterval(() => this.reopenIfMoved(), options.checkIntervalMs ?? 1000);
    this.timer.unref();
    process.on("SIGHUP", this.onHangup);
  }

  /** Writes one update, unless legacy mode keeps it on /metrics instead. */
  write(event: RecordEvent): void {
    if (this.options.mode === "legacy" && LEGACY_PROMETHEUS.has(event.definition.name)) return;
    const file = event.definition.section === "model_metrics" ? this.files.model : this.files.ts;
    if (file.fd === undefined) {
      // Never opened (that was logged), or stopped.
      if (file.openFailing) file.dropped++;
      return;
    }
    const now = new Date();
    try {
      const line = `${log4jTimestamp(now)} - ${formatMetricLogLine(event, now)}\n`;
      appendWhole(file, file.fd, file.endsMidLine ? `\n${line}` : line);
    } catch (err) {
      file.dropped++;
      if (file.writeFailing) return;
      file.writeFailing = true;
      this.options.logger.error(
        `cannot write ${file.path}: ${(err as Error).message}; its metric lines are dropped until it can be written again`,
      );
      return;
    }
    if (file.dropped > 0) {
      this.options.logger.info(
        `writing ${file.path} again; ${file.dropped} metric lines could not be written before this one`,
      );
    }
    file.writeFailing = false;
    file.dropped = 0;
  }

  /** Closes and reopens both files (logrotate's postrotate sends SIGHUP). */
  reopen(): void {
    for (const file of [this.files.ts, this.files.model]) this.open(file);
  }

  /** Stops watching and closes the files. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    process.off("SIGHUP", this.onHangup);
    for (const file of [this.files.ts, this.files.model]) {
      if (file.fd !== undefined) closeSync(file.fd);
      file.fd = undefined;
      if (file.dropped > 0) {
        this.options.logger.warn(`stopping with ${file.dropped} metric lines not written to ${file.path}`);
      }
      file.dropped = 0;
    }
  }

  private open(file: LogFile): void {
    try {
      const fd = openSync(file.path, "a");
      if (file.fd !== undefined) closeSync(file.fd);
      file.fd = fd;
      const { ino } = fstatSync(fd);
      // A fragment at the end of the file rotated away is no concern of the new one.
      if (ino !== file.ino) file.endsMidLine = false;
      file.ino = ino;
    } catch (err) {
      if (file.openFailing) return;
      file.openFailing = true;
      const meanwhile =
        file.fd === undefined
          ? "its metric lines are dropped until it can be opened"
          : "its metric lines still go to the file open before";
      this.options.logger.error(`cannot open ${file.path}: ${(err as Error).message}; ${meanwhile}`);
      return;
    }
    if (file.openFailing) this.options.logger.info(`opened ${file.path} again`);
    file.openFailing = false;
  }

  private reopenIfMoved(): void {
    for (const file of [this.files.ts, this.files.model]) {
      let ino: number | undefined;
      try {
        ino = statSync(file.path).ino;
      } catch {
        ino = undefined; // renamed away and not yet recreated: we create it
      }
      // Not open (opening failed): try again, the directory or the disk may be back.
      if (ino !== file.ino || file.fd === undefined) this.open(file);
    }
  }
}

function logFile(path: string): LogFile {
  return {
    path,
    fd: undefined,
    ino: 0,
    openFailing: false,
    writeFailing: false,
    dropped: 0,
    endsMidLine: false,
  };
}

/**
 * Appends `text` (one line) whole, or throws with nothing of it left in the file. `writeSync`
 * may write only part (a disk filling up, a file size limit): the rest is written until it is
 * all there or a write fails; then the part already written is truncated away, so that the
 * next line does not continue a half one. Where that fails too, the file is marked to end
 * mid-line and the next line begins on a line of its own.
 */
function appendWhole(file: LogFile, fd: number, text: string): void {
  const bytes = Buffer.from(text);
  let written = 0;
  try {
    while (written < bytes.length) {
      const n = writeSync(fd, bytes, written, bytes.length - written);
      if (n <= 0) throw new Error("the file took no more bytes");
      written += n;
    }
  } catch (err) {
    if (written > 0) {
      try {
        // The file is opened for appending by this writer alone: its last `written` bytes are ours.
        ftruncateSync(fd, fstatSync(fd).size - written);
      } catch {
        file.endsMidLine = true;
      }
    }
    throw err;
  }
  file.endsMidLine = false;
}
