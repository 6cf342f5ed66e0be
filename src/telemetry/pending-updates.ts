import type { Attributes, Meter } from "@opentelemetry/api";
import type { CatalogInstrument } from "./instruments.js";

/** A series of a counter or gauge whose updates may wait for the next collection. */
export interface PendingSeries {
  readonly instrument: CatalogInstrument;
  readonly attributes: Attributes;
  /** The increments since the last collection (counter), or the latest value (gauge). */
  pending: number;
  dirty: boolean;
  /**
   * A counter's total, or a histogram's sum, with each update added in turn as TorchServe adds
   * them (see {@link PendingUpdates.totalOf}); unused for gauges.
   */
  total: number;
  /** What the TorchServe text shows is `total - base`: not 0 once the series store restarted it. */
  base?: number;
  /** Whether the TorchServe text has shown this series (so a later start is a restart). */
  shown?: boolean;
}

/**
 * Counter increments and gauge values of the service's own hot series (one inference request
 * updates six), added up here and handed to the SDK once per collection instead of once per
 * update: the SDK hashes a series' attributes on every update, which costs far more than the
 * addition. Every collection, by any reader, takes them first, so nothing recorded before a
 * collection starts is missing from it. The SDK adds an interval's updates from zero in the
 * same order, so its totals are the same to the last bit as recording each update. TorchServe's
 * own totals are not: it adds each update to the running total (`((t + a) + b) + c`, not
 * `t + ((a + b) + c)`), so every tracked series also keeps that running total, which the
 * TorchServe text shows instead of the SDK's.
 */
export class PendingUpdates {
  private readonly dirty: PendingSeries[] = [];
  private readonly gauges = new Set<CatalogInstrument>();
  /** Tracked series by their attributes object, which is the one the SDK hands back in its points. */
  private readonly tracked = new WeakMap<Attributes, PendingSeries>();

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
    series.total += value;
  }

  /**
   * Keeps the running total of a counter or histogram series, bound once and kept, every update
   * of which goes through {@link add} (counter) or adds to `total` itself (histogram), so that
   * {@link totalOf} can answer for the SDK's points of this series.
   */
  track(series: PendingSeries): void {
    this.tracked.set(series.attributes, series);
  }

  /**
   * The running total of a tracked series by the attributes of an SDK point: a counter's value or
   * a histogram's sum as TorchServe would show it; undefined for any other point. `fresh` says
   * the asker holds no value for the series: the first time, the total is shown from zero; after
   * that the asker forgot it (series expiry), and it starts again from the point's `delta`.
   */
  totalOf(attributes: Attributes, fresh: boolean, delta: number): number | undefined {
    const series = this.tracked.get(attributes);
    if (series === undefined) return undefined;
    if (fresh) {
      series.base = series.shown === true ? series.total - delta : 0;
      series.shown = true;
    }
    return series.base === undefined || series.base === 0 ? series.total : series.total - series.base;
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
