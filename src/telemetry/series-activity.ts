import type { Attributes } from "@opentelemetry/api";
import { labelPairs } from "../exposition/torchserve-text.js";

/**
 * When each series the series store keeps was last updated, so that series idle for longer than
 * `series_expiry_seconds` are evicted (the store forgets them, and so does this). It tracks only
 * what the store reports, so a label set that went into a family's overflow series is never
 * tracked on its own. A pinned series (a live worker's WorkerLoadTime, written once at start)
 * never expires until it is unpinned.
 */
export class SeriesActivity {
  /** Last update by label text ({@link labelPairs}), per metric. */
  private readonly seen = new Map<string, Map<string, number>>();
  /** Pinned label texts per metric: as many as there are live workers. */
  private readonly pinned = new Map<string, Set<string>>();
  /** No tracked series can expire before this (the oldest update at the last sweep, plus the expiry). */
  private nextDue = Infinity;

  constructor(
    /** Idle time after which a series is evicted; 0 keeps every series (TorchServe's behaviour). */
    readonly expireAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether expiry is on at all; when off, nothing is tracked. */
  get enabled(): boolean {
    return this.expireAfterMs > 0;
  }

  /** How many series are tracked. */
  get size(): number {
    let total = 0;
    for (const series of this.seen.values()) total += series.size;
    return total;
  }

  /** Notes an update of a series by its label text, as the store keeps it. */
  touch(metric: string, labels: string): void {
    if (!this.enabled) return;
    const at = this.now();
    let series = this.seen.get(metric);
    if (series === undefined) {
      series = new Map();
      this.seen.set(metric, series);
    }
    // Setting an existing key keeps the key the map already holds (the store's flat copy).
    series.set(labels, at);
    if (at + this.expireAfterMs < this.nextDue) this.nextDue = at + this.expireAfterMs;
  }

  /** Keeps a series whatever its idle time (until {@link unpin}). */
  pin(metric: string, dimensions: readonly string[], attributes: Attributes): void {
    if (!this.enabled) return;
    let labels = this.pinned.get(metric);
    if (labels === undefined) {
      labels = new Set();
      this.pinned.set(metric, labels);
    }
    labels.add(labelPairs(dimensions, attributes));
  }

  /** Lets a pinned series age from now on (a worker died). */
  unpin(metric: string, dimensions: readonly string[], attributes: Attributes): void {
    if (!this.enabled) return;
    const key = labelPairs(dimensions, attributes);
    const labels = this.pinned.get(metric);
    if (labels?.delete(key) !== true) return;
    if (labels.size === 0) this.pinned.delete(metric);
    if (this.seen.get(metric)?.has(key) === true) this.touch(metric, key);
  }

  /**
   * Forgets every series idle past the expiry and hands each one to `evict`. Costs nothing until
   * the oldest tracked update could have expired; then one pass over the tracked series.
   */
  expire(evict: (metric: string, labels: string) => void): void {
    const now = this.now();
    if (!this.enabled || now <= this.nextDue) return;
    let oldest = Infinity;
    for (const [metric, series] of this.seen) {
      const pins = this.pinned.get(metric);
      for (const [labels, at] of series) {
        if (pins?.has(labels) === true) {
          // A pinned series ages from its unpinning, not from its last update.
          series.set(labels, now);
          oldest = Math.min(oldest, now);
        } else if (now - at > this.expireAfterMs) {
          series.delete(labels);
          evict(metric, labels);
        } else {
          oldest = Math.min(oldest, at);
        }
      }
      if (series.size === 0) this.seen.delete(metric);
    }
    this.nextDue = oldest + this.expireAfterMs;
  }
}
