import {
  AggregationTemporality,
  AggregationType,
  type AggregationOption,
  type InstrumentType,
  type PushMetricExporter,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";
import type { Logger } from "../log.js";
import { ExportRequests, type ExportRequestTracker } from "./export-requests.js";

/** `ExportResult` of @opentelemetry/core, taken from the exporter interface (core is not our direct dependency). */
type ExportResult = Parameters<Parameters<PushMetricExporter["export"]>[1]>[0];

/** Whether an export succeeded: core's `ExportResultCode.SUCCESS` is 0 (FAILED is 1). */
function succeeded(result: ExportResult): boolean {
  const code: number = result.code;
  return code === 0;
}

/** A failed export's result (core's `ExportResultCode.FAILED` is 1). */
function failed(error: Error): ExportResult {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- the enum's package (core) is not our dependency
  return { code: 1, error };
}

/** Options of {@link MonitoredExporter}. */
export interface MonitoredExporterOptions {
  /** How the messages name the destination, e.g. `http://127.0.0.1:4318/v1/metrics` (no credentials). */
  target: string;
  logger: Logger;
  /**
   * The most an export may take, retries included (the exporter's timeout, as the OTLP
   * specification means it); then it fails, and its requests are ended when `requests` knows them.
   */
  deadlineMs: number;
  /** Ties the HTTP exporter's requests to exports, so that a deadline can end them; none for gRPC. */
  requests?: ExportRequestTracker;
  /** Strings never to print (header values, user information, query values): masked in failure reasons. */
  secrets?: readonly string[];
  /** Hears the result of every export (serve_otlp_exports_total). */
  onResult?(ok: boolean): void;
  /** Changes what is exported (exponential histograms swapped in, see ExponentialPush). */
  transform?(metrics: ResourceMetrics): ResourceMetrics;
}

/**
 * A PushMetricExporter that forwards everything to another one, gives each export a deadline
 * and logs outages of its destination: one warning when exports start failing, one info line
 * when one succeeds again. The OTLP exporters report failures only through `diag`, once per
 * export, which is either silent or a line every interval; a collector that is down for an hour
 * deserves two lines. Every export ends, and is counted, by its deadline: the HTTP transport's
 * own timeout restarts with every byte, and an answer cut off mid-body counts as a failure.
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

  /** Exports through the wrapped exporter, ends it at its deadline, and watches the result. */
  export(metrics: ResourceMetrics, resultCallback: (result: ExportResult) => void): void {
    const sequence = ++this.started;
    const { deadlineMs, requests: tracker } = this.options;
    const requests = new ExportRequests();
    let settled = false;
    // The one place that sees every way an export ends: its result, or its deadline first.
    const settle = (result: ExportResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      this.options.onResult?.(succeeded(result));
      this.observe(sequence, result);
      resultCallback(result);
    };
    const deadline = setTimeout(() => {
      const error = new Error(`no complete answer within the export timeout (${deadlineMs} ms)`);
      requests.abort(error);
      settle(failed(error));
    }, deadlineMs);
    // Whatever the export holds open (its sockets) keeps the process up until the deadline ends it;
    // the deadline alone need not.
    deadline.unref();
    const exported = this.options.transform?.(metrics) ?? metrics;
    const send = (): void =>
      this.inner.export(exported, (result) => {
        if (succeeded(result) && requests.answerCut) {
          settle(failed(new Error("the collector's answer ended before its body was complete")));
        } else {
          settle(result);
        }
      });
    if (tracker === undefined) send();
    else tracker.run(requests, send);
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
    if (this.failures === 0) {
      const reason = maskSecrets(describeFailure(result.error), this.options.secrets ?? []);
      logger.warn(`OTLP push to ${target} failing: ${reason}`);
    }
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

/**
 * `text` with every secret masked, as written and %-encoded (as a URL prints user information).
 * Secrets under 4 characters are left alone: masking every "1" would garble the message and
 * hide nothing worth hiding.
 */
function maskSecrets(text: string, secrets: readonly string[]): string {
  let masked = text;
  for (const secret of secrets) {
    if (secret.length < 4) continue;
    for (const form of new Set([secret, encodeURIComponent(secret)])) masked = masked.split(form).join("***");
  }
  return masked;
}
