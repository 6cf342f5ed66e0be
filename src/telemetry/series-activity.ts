import type { Attributes } from "@opentelemetry/api";
import { labelPairs } from "../exposition/torchserve-text.js";

/**
 * When each series was last updated, so `/metrics` can leave out series idle for longer than
 * `series_expiry_seconds` (the SDK never deletes a cumulative series). A pinned series (a live
 * worker's WorkerLoadTime, written once at start) never expires until it is unpinned.
 */
export class SeriesActivity {
  private readonly seen = new Map<string, Map<string, number>>();

  constructor(
    /** Idle time after which a series is left out; 0 keeps every series (TorchServe's behaviour). */
    readonly expireAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether expiry is on at all; when off, nothing is tracked. */
  get enabled(): boolean {
    return this.expireAfterMs > 0;
  }

  /** Notes an update of a series. */
  touch(metric: string, dimensions: readonly string[], attributes: Attributes): void {
    if (!this.enabled) return;
    const series = this.seriesOf(metric);
    const key = labelPairs(dimensions, attributes);
    if (series.get(key) !== Infinity) series.set(key, this.now());
  }

  /** Keeps a series whatever its idle time (until {@link unpin}). */
  pin(metric: string, dimensions: readonly string[], attributes: Attributes): void {
    if (this.enabled) this.seriesOf(metric).set(labelPairs(dimensions, attributes), Infinity);
  }

  /** Lets a pinned series age from now on (a worker died). */
  unpin(metric: string, dimensions: readonly string[], attributes: Attributes): void {
    if (this.enabled) this.seriesOf(metric).set(labelPairs(dimensions, attributes), this.now());
  }

  /**
   * Whether a series, by its label text ({@link labelPairs}), should still be shown; series never
   * touched (e.g. overflow) are shown.
   */
  isLive(metric: string, labels: string): boolean {
    if (!this.enabled) return true;
    const last = this.seen.get(metric)?.get(labels);
    return last === undefined || this.now() - last <= this.expireAfterMs;
  }

  private seriesOf(metric: string): Map<string, number> {
    let series = this.seen.get(metric);
    if (series === undefined) {
      series = new Map();
      this.seen.set(metric, series);
    }
    return series;
  }
}
