import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";
import type { MetricsFormat, MetricsMode } from "../config/types.js";
import type { SeriesActivity } from "../telemetry/series-activity.js";
import type { Logger } from "../log.js";
import { renderOtelText } from "./otel-text.js";
import type { PullReader } from "./pull-reader.js";
import { OVERFLOW_ATTRIBUTE, SeriesStore } from "./series-store.js";
import type { FamilySpec } from "./torchserve-text.js";

/** The three counters legacy mode keeps on /metrics. */
const LEGACY_FAMILIES = new Set([
  "ts_inference_requests_total",
  "ts_inference_latency_microseconds",
  "ts_queue_latency_microseconds",
]);

/** What scrapes render and how. */
export interface ScrapeOptions {
  mode: MetricsMode;
  /** `torchserve` needs a delta-temporality reader; `otel` a cumulative one. */
  format: MetricsFormat;
  /** Leaves out series idle past series_expiry_seconds (TorchServe naming only). */
  activity?: SeriesActivity;
  /** Series kept per family (TorchServe naming; the SDK enforces it per collection only). */
  seriesLimit?: (family: string) => number;
  /** Hears the names of metrics whose series overflowed their limit. */
  onOverflow?: (metric: string) => void;
}

/**
 * Collects from the pull reader and renders the text `/metrics` answers with. In TorchServe
 * naming the reader hands over deltas, which a {@link SeriesStore} adds up, so a scrape costs
 * what changed since the last one plus joining cached text.
 */
export class Scraper {
  private readonly store: SeriesStore | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly reader: PullReader,
    private readonly families: readonly FamilySpec[],
    private readonly options: ScrapeOptions,
    private readonly logger: Logger,
  ) {
    if (options.format === "torchserve") {
      this.store = new SeriesStore({
        families,
        limitOf: options.seriesLimit,
        onOverflow: options.onOverflow,
      });
    }
  }

  /** The exposition for a `name[]` filter (undefined: everything); empty in log mode. */
  scrape(filter: ReadonlySet<string> | undefined): Promise<string> {
    if (this.options.mode === "log") return Promise.resolve("");
    // A delta collection holds only what came after the previous one: if two scrapes overlapped,
    // the later could render before the earlier's deltas were in the store.
    const result = this.queue.then(() => this.collect(filter));
    this.queue = result.catch(() => undefined);
    return result;
  }

  /**
   * Collects without rendering. Every other reader's collection is also kept for this one until
   * it collects, so with OTLP push on and nobody scraping that backlog would grow without end.
   */
  drain(): Promise<void> {
    const result = this.queue.then(async () => {
      this.store?.apply(await this.take());
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async take(): Promise<ResourceMetrics> {
    const { resourceMetrics, errors } = await this.reader.collect();
    for (const err of errors) this.logger.warn(`collection: ${String(err)}`);
    return resourceMetrics;
  }

  private async collect(filter: ReadonlySet<string> | undefined): Promise<string> {
    const resourceMetrics = await this.take();
    if (this.store === undefined) {
      const { onOverflow } = this.options;
      if (onOverflow !== undefined) {
        for (const scope of resourceMetrics.scopeMetrics) {
          for (const metric of scope.metrics) {
            // The SDK adds the overflow series when the limit is first passed, so it is the last one.
            const last = metric.dataPoints[metric.dataPoints.length - 1];
            if (last?.attributes[OVERFLOW_ATTRIBUTE] === true) onOverflow(metric.descriptor.name);
          }
        }
      }
      return renderOtelText(resourceMetrics, filter);
    }
    this.store.apply(resourceMetrics);
    const shown =
      this.options.mode === "legacy"
        ? this.families.filter((f) => LEGACY_FAMILIES.has(f.name))
        : this.families;
    const { activity } = this.options;
    const isLive = activity?.enabled
      ? (family: FamilySpec, labels: string) => activity.isLive(family.name, labels)
      : undefined;
    return this.store.render(shown, filter, isLive);
  }
}
