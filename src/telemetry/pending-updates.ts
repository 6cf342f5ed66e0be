import type { Attributes, Meter } from "@opentelemetry/api";
import type { CatalogInstrument } from "./instruments.js";

/** A series of a counter or gauge whose updates may wait for the next collection. */
export interface PendingSeries {
  readonly instrument: CatalogInstrument;
  readonly attributes: Attributes;
  /** The increments since the last collection (counter), or the latest value (gauge). */
  pending: number;
  dirty: boolean;
}

/**
 * Counter increments and gauge values of the service's own hot series (one inference request
 * updates six), added up here and handed to the SDK once per collection instead of once per
 * update: the SDK hashes a series' attributes on every update, which costs far more than the
 * addition. Every collection, by any reader, takes them first, so nothing recorded before a
 * collection starts is missing from it. The SDK adds an interval's updates from zero in the
 * same order, so the totals are the same to the last bit.
 */
export class PendingUpdates {
  private readonly dirty: PendingSeries[] = [];
  private readonly gauges = new Set<CatalogInstrument>();

  /**
   * Hands pending updates over at the start of every collection of `meter`: its observable
   * callbacks run before its synchronous instruments are read. The observable gauge exists only
   * to carry the callback; it never observes anything, so it is never exported.
   */
  constructor(meter: Meter) {
    const carrier = meter.createObservableGauge("serve_metrics.pending_updates");
    meter.addBatchObservableCallback(() => {
      this.flush();
    }, [carrier]);
  }

  /** Adds to a counter series. */
  add(series: PendingSeries, value: number): void {
    this.mark(series);
    series.pending += value;
  }

  /** Sets a gauge series. */
  set(series: PendingSeries, value: number): void {
    this.mark(series);
    series.pending = value;
    this.gauges.add(series.instrument);
  }

  /** Whether a value of this gauge is waiting (a direct update must then flush first). */
  holdsGauge(instrument: CatalogInstrument): boolean {
    return this.gauges.size > 0 && this.gauges.has(instrument);
  }

  /** Records every pending update into its instrument. */
  flush(): void {
    for (const series of this.dirty) {
      series.dirty = false;
      series.instrument.record(series.pending, series.attributes);
    }
    this.dirty.length = 0;
    this.gauges.clear();
  }

  private mark(series: PendingSeries): void {
    if (series.dirty) return;
    series.dirty = true;
    series.pending = 0;
    this.dirty.push(series);
  }
}
