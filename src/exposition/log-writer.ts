import { mkdirSync, openSync, closeSync, writeSync, statSync, fstatSync } from "node:fs";
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
}

/**
 * metrics_mode=log and legacy: appends every update to `ts_metrics.log` (frontend, system and
 * serve-metrics' own metrics) or `model_metrics.log` (backend metrics). Reopens both files on
 * SIGHUP and when the path no longer names the open file, so logrotate's rename works without
 * copytruncate. Writes are synchronous appends: a line is on disk before the update returns.
 */
export class MetricsLogWriter {
  private readonly files: { ts: LogFile; model: LogFile };
  private timer: NodeJS.Timeout | undefined;
  private readonly onHangup = (): void => this.reopen();

  constructor(private readonly options: MetricsLogWriterOptions) {
    mkdirSync(options.directory, { recursive: true });
    this.files = {
      ts: { path: join(options.directory, "ts_metrics.log"), fd: undefined, ino: 0 },
      model: { path: join(options.directory, "model_metrics.log"), fd: undefined, ino: 0 },
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
    if (file.fd === undefined) return;
    const now = new Date();
    try {
      writeSync(file.fd, `${log4jTimestamp(now)} - ${formatMetricLogLine(event, now)}\n`);
    } catch (err) {
      this.options.logger.error(`cannot write ${file.path}: ${(err as Error).message}`);
    }
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
    }
  }

  private open(file: LogFile): void {
    try {
      const fd = openSync(file.path, "a");
      if (file.fd !== undefined) closeSync(file.fd);
      file.fd = fd;
      file.ino = fstatSync(fd).ino;
    } catch (err) {
      this.options.logger.error(`cannot open ${file.path}: ${(err as Error).message}`);
    }
  }

  private reopenIfMoved(): void {
    for (const file of [this.files.ts, this.files.model]) {
      let ino: number | undefined;
      try {
        ino = statSync(file.path).ino;
      } catch {
        ino = undefined; // renamed away and not yet recreated: we create it
      }
      if (ino !== file.ino) this.open(file);
    }
  }
}
