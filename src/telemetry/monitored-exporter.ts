import {
  AggregationTemporality,
  AggregationType,
  type AggregationOption,
  type InstrumentType,
  type PushMetricExporter,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import type { Logger } from "../log.js";

/** `ExportResult` of @opentelemetry/core, taken from the exporter interface (core is not our direct dependency). */
type ExportResult = Parameters<Parameters<PushMetricExporter["export"]>[1]>[0];

/** Whether an export succeeded: core's `ExportResultCode.SUCCESS` is 0 (FAILED is 1). */
function succeeded(result: ExportResult): boolean {
  const code: number = result.code;
  return code === 0;
}

/** Options of {@link MonitoredExporter}. */
export interface MonitoredExporterOptions {
  /** How the messages name the destination, e.g. `http://127.0.0.1:4318/v1/metrics`. */
  target: string;
  logger: Logger;
  /** Hears the result of every export (serve_otlp_exports_total). */
  onResult?(ok: boolean): void;
}

/**
 * A PushMetricExporter that forwards everything to another one and logs outages of its
 * destination: one warning when exports start failing, one info line when one succeeds again.
 * The OTLP exporters report failures only through `diag`, once per export, which is either
 * silent or a line every interval; a collector that is down for an hour deserves two lines.
 */
export class MonitoredExporter implements PushMetricExporter {
  private readonly inner: PushMetricExporter;
  private readonly options: MonitoredExporterOptions;
  /** Sequence number of the latest export started. */
  private started = 0;
  /** Sequence number of the export whose result last decided the state. */
  private decided = 0;
  /** Failed exports since the last success; > 0 means the destination is considered down. */
  private failures = 0;

  constructor(inner: PushMetricExporter, options: MonitoredExporterOptions) {
    this.inner = inner;
    this.options = options;
  }

  /** Exports through the wrapped exporter and watches the result on its way back. */
  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const sequence = ++this.started;
    this.inner.export(metrics, (result) => {
      this.options.onResult?.(succeeded(result));
      this.observe(sequence, result);
      resultCallback(result);
    });
  }

  /** Whether the destination is currently considered down (the last decisive export failed). */
  get failing(): boolean {
    return this.failures > 0;
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  /** The wrapped exporter's temporality (cumulative when it has no preference, as the SDK does). */
  selectAggregationTemporality(instrumentType: InstrumentType): AggregationTemporality {
    return this.inner.selectAggregationTemporality?.(instrumentType) ?? AggregationTemporality.CUMULATIVE;
  }

  /** The wrapped exporter's aggregation (the default when it has no preference, as the SDK does). */
  selectAggregation(instrumentType: InstrumentType): AggregationOption {
    return this.inner.selectAggregation?.(instrumentType) ?? { type: AggregationType.DEFAULT };
  }

  private observe(sequence: number, result: ExportResult): void {
    // Exports overlap when the reader stops waiting before the exporter's own timeout, so results
    // can arrive out of order. The newest export with a result tells the destination's state; an
    // older one finishing late (a hung request timing out after a newer one succeeded) does not.
    if (sequence < this.decided) return;
    this.decided = sequence;
    const { target, logger } = this.options;
    if (succeeded(result)) {
      if (this.failures > 0) {
        const n = this.failures;
        logger.info(`OTLP push to ${target} recovered after ${n} failed export${n === 1 ? "" : "s"}`);
        this.failures = 0;
      }
      return;
    }
    if (this.failures === 0) logger.warn(`OTLP push to ${target} failing: ${describeFailure(result.error)}`);
    this.failures++;
  }
}

/** One line about why an export failed; the OTLP exporters' errors carry an HTTP status as `code`. */
function describeFailure(error: Error | undefined): string {
  if (error === undefined) return "unknown error";
  const message = error.message.replace(/\s*\n\s*/g, " ").trim() || error.name;
  // The HTTP exporters' words for "every attempt got 429, 502, 503 or 504" name no status at all.
  if (message === "Export failed with retryable status") {
    return "the collector kept answering a retryable HTTP status (429, 502, 503 or 504)";
  }
  const code: unknown = (error as Error & { code?: unknown }).code;
  return typeof code === "number" && !message.includes(String(code)) ? `${message} (HTTP ${code})` : message;
}
