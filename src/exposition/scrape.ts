import type { Attributes } from "@opentelemetry/api";
import type { ResourceMetrics } from "@opentelemetry/sdk-metrics";
import type { MetricsFormat, MetricsMode } from "../config/types.js";
import type { SeriesActivity } from "../telemetry/series-activity.js";
import type { PendingExemplars } from "../telemetry/pending-exemplars.js";
import type { Logger } from "../log.js";
import { renderOtelChunks } from "./otel-text.js";
import type { PullReader } from "./pull-reader.js";
import { OPENMETRICS_EOF } from "./openmetrics-text.js";
import { OVERFLOW_ATTRIBUTE, SeriesStore, type SeriesExemplars } from "./series-store.js";
import { chunksToString } from "./text-chunks.js";
import type { FamilySpec } from "./torchserve-text.js";
import type { NativeLimits } from "./native-histogram.js";
import type { NativeDelta } from "../telemetry/native-buckets.js";

/** The three counters legacy mode keeps on /metrics. */
const LEGACY_FAMILIES = new Set([
  "ts_inference_requests_total",
  "ts_inference_latency_microseconds",
  "ts_queue_latency_microseconds",
]);

/**
 * The expositions a scrape can render: TorchServe's text (0.0.4), delimited protobuf
 * `io.prometheus.client.MetricFamily` messages, or OpenMetrics 1.0.0 text (the last two in
 * TorchServe naming only).
 */
export type ExpositionFormat = "text" | "protobuf" | "openmetrics";

/** What scrapes render and how. */
export interface ScrapeOptions {
  mode: MetricsMode;
  /** `torchserve` needs a delta-temporality reader; `otel` a cumulative one. */
  format: MetricsFormat;
  /**
   * Evicts series idle past series_expiry_seconds (TorchServe naming only): the store forgets
   * them, so they leave /metrics, stop counting against the series limit, and free their memory.
   */
  activity?: SeriesActivity;
  /** Series kept per family (TorchServe naming; the SDK enforces it per collection only). */
  seriesLimit?: (family: string) => number;
  /** Hears the names of metrics whose series overflowed their limit. */
  onOverflow?: (metric: string) => void;
  /** Running totals added in TorchServe's order (see SeriesStoreOptions.exactTotal). */
  exactTotal?: (attributes: Attributes, fresh: boolean, delta: number) => number | undefined;
  /** Exemplars recorded since the last collection, which the store keeps (TorchServe naming). */
  exemplars?: PendingExemplars | undefined;
  /** Where native buckets come from (TorchServe naming, native_histograms). */
  native?: { take(): NativeDelta; limits: NativeLimits } | undefined;
}

/**
 * Collects from the pull reader and renders the text `/metrics` answers with. In TorchServe
 * naming the reader hands over deltas, which a {@link SeriesStore} adds up, so a scrape costs
 * what changed since the last one plus joining cached text.
 */
export class Scraper {
  private readonly store: SeriesStore | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  /** Scrapes queued but not begun, by filter: a scrape that arrives meanwhile joins its filter's. */
  private readonly waiting = new Map<string, Promise<Buffer[]>>();

  constructor(
    private readonly reader: PullReader,
    private readonly families: readonly FamilySpec[],
    private readonly options: ScrapeOptions,
    private readonly logger: Logger,
  ) {
    if (options.format === "torchserve") {
      const { activity } = options;
      this.store = new SeriesStore({
        families,
        limitOf: options.seriesLimit,
        onOverflow: options.onOverflow,
        exactTotal: options.exactTotal,
        onUpdate: activity?.enabled === true ? (family, labels) => activity.touch(family, labels) : undefined,
      });
    }
  }

  /**
   * The exposition for a `name[]` filter (undefined: everything) as UTF-8 chunks, to be written
   * in turn and never joined (the whole text may be longer than a string can be); none in log mode.
   * Scrapes with the same filter that arrive while one is waiting for its turn share its
   * collection and its chunks (by reference), so concurrent scrapers hold one body, not one each.
   */
  async scrapeChunks(
    filter: ReadonlySet<string> | undefined,
    format: ExpositionFormat = "text",
  ): Promise<Buffer[]> {
    // An OpenMetrics exposition, even an empty one, must end with `# EOF`.
    if (this.options.mode === "log") return format === "openmetrics" ? [Buffer.from(OPENMETRICS_EOF)] : [];
    const key = `${format} ${filter === undefined ? "*" : JSON.stringify([...filter].sort())}`;
    let result = this.waiting.get(key);
    if (result === undefined) {
      // A delta collection holds only what came after the previous one: if two scrapes overlapped,
      // the later could render before the earlier's deltas were in the store. A scrape joins
      // only one that has not begun, so it sees everything recorded before it arrived.
      const mine: Promise<Buffer[]> = this.queue.then(() => {
        this.waiting.delete(key);
        return this.collect(filter, format);
      });
      result = mine;
      this.waiting.set(key, mine);
      this.queue = mine.catch(() => undefined);
    }
    // Each caller gets its own array of the shared chunks.
    return [...(await result)];
  }

  /** Whether {@link scrapeChunks} can render protobuf and OpenMetrics: in TorchServe naming. */
  get protobuf(): boolean {
    return this.store !== undefined;
  }

  /** {@link scrapeChunks} as one string (which V8 limits to ~512 MiB). */
  async scrape(filter: ReadonlySet<string> | undefined): Promise<string> {
    return chunksToString(await this.scrapeChunks(filter));
  }

  /**
   * Collects without rendering. Every other reader's collection is also kept for this one until
   * it collects, so with OTLP push on and nobody scraping that backlog would grow without end.
   */
  drain(): Promise<void> {
    const result = this.queue.then(async () => {
      // Taken first: each one's observation was recorded before, so this collection holds it.
      const exemplars = this.options.exemplars?.take();
      const native = this.options.native?.take();
      const resourceMetrics = await this.take();
      if (this.store === undefined) return;
      this.applyTo(this.store, resourceMetrics, native, exemplars);
    });
    this.queue = result.catch(() => undefined);
    return result;
  }

  private async take(): Promise<ResourceMetrics> {
    const { resourceMetrics, errors } = await this.reader.collect();
    for (const err of errors) this.logger.warn(`collection: ${String(err)}`);
    return resourceMetrics;
  }

  /**
   * Applies both deltas, classic first, then the exemplars of what they hold, then evicts what
   * expired. The native delta was taken
   * before the classic one was collected: whatever was recorded in between is in the classic
   * delta now and in the native one next time, so every native point's series is in the store.
   */
  private applyTo(
    store: SeriesStore,
    resourceMetrics: ResourceMetrics,
    native: NativeDelta | undefined,
    exemplars: readonly SeriesExemplars[] | undefined,
  ): void {
    store.apply(resourceMetrics);
    const limits = this.options.native?.limits;
    if (native !== undefined && limits !== undefined) store.applyNative(native, limits);
    if (exemplars !== undefined) store.applyExemplars(exemplars);
    this.expire(store);
  }

  /** Evicts the series idle past the expiry, if it is on. */
  private expire(store: SeriesStore): void {
    this.options.activity?.expire((family, labels) => store.evict(family, labels));
  }

  private async collect(
    filter: ReadonlySet<string> | undefined,
    format: ExpositionFormat,
  ): Promise<Buffer[]> {
    // Taken first: each one's observation was recorded before, so this collection holds it.
    const exemplars = this.options.exemplars?.take();
    const native = this.options.native?.take();
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
      return renderOtelChunks(resourceMetrics, filter);
    }
    this.applyTo(this.store, resourceMetrics, native, exemplars);
    const shown =
      this.options.mode === "legacy"
        ? this.families.filter((f) => LEGACY_FAMILIES.has(f.name))
        : this.families;
    switch (format) {
      case "protobuf":
        return this.store.renderProtobuf(shown, filter);
      case "openmetrics":
        return this.store.renderOpenMetrics(shown, filter);
      default:
        return this.store.render(shown, filter);
    }
  }
}
