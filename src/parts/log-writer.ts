import type { Logger } from "../log.js";
import { MetricsLogWriter } from "../exposition/log-writer.js";
import type { MetricsMode } from "../config/types.js";
import type { MetricRecorder } from "../telemetry/recorder.js";
import type { ServicePart } from "./part.js";

/** What `metrics_mode=log|legacy` writes, and where. */
export interface LogWriterOptions {
  /** METRICS_LOCATION, resolved. */
  directory: string;
  mode: Exclude<MetricsMode, "prometheus">;
  recorder: MetricRecorder;
  logger: Logger;
}

/**
 * The log-mode writer as a part: from start() every update is appended to ts_metrics.log or
 * model_metrics.log; stop() closes the files. Stopped late, so that what the stop itself counts
 * (the drain's answers) is written too.
 */
export class LogWriterPart implements ServicePart {
  readonly name = "metrics log writer";
  private writer: MetricsLogWriter | undefined;

  constructor(private readonly options: LogWriterOptions) {}

  activity(): string {
    return `metrics_mode=${this.options.mode}`;
  }

  start(): Promise<void> {
    const { directory, mode, logger, recorder } = this.options;
    const writer = new MetricsLogWriter({ directory, mode, logger });
    this.writer = writer;
    recorder.addListener((event) => writer.write(event));
    logger.info(`metrics_mode=${mode}: writing ts_metrics.log and model_metrics.log in ${directory}`);
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.writer?.stop();
    return Promise.resolve();
  }
}
