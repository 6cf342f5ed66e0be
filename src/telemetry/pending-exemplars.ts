import type { Attributes } from "@opentelemetry/api";
import { bucketIndex, exemplarLabelsFit, type Exemplar } from "../exposition/exemplars.js";

/**
 * Where the exemplars of one series wait for the next scrape: the last one per classic bucket of
 * a histogram (by the bounds it was declared with), or the one last one of a counter. Made once
 * per series by its recorder and kept with it.
 */
export interface ExemplarTarget {
  /** The TorchServe family name, as the series store knows it. */
  readonly family: string;
  /** The series' attributes, from which the store finds its label text. */
  readonly attributes: Attributes;
  /** The histogram's declared bucket bounds; empty for a counter (one slot). */
  readonly boundaries: readonly number[];
  /** Since the last {@link PendingExemplars.take}; undefined while there is none. */
  slots: (Exemplar | undefined)[] | undefined;
}

/** The exemplars of one series taken for the series store. */
export interface ExemplarUpdate {
  readonly family: string;
  readonly attributes: Attributes;
  /** At most one per slot, later ones first replaced earlier ones. */
  readonly exemplars: readonly (Exemplar | undefined)[];
}

/**
 * Series whose exemplars may be waiting at most; past that, exemplars of further series wait for
 * the next scrape. Bounds the queue when nobody scrapes while series come and go.
 */
const MAX_WAITING_SERIES = 10_000;

/**
 * The exemplars recorded since the last scrape, series by series, each series queued once: an
 * observation with an exemplar costs a bucket lookup, one small object and a slot write. A
 * recording without a trace context or request id never comes here.
 */
export class PendingExemplars {
  private waiting: ExemplarTarget[] = [];
  /** Exemplars dropped: a label set past OpenMetrics' 128 characters, or a full queue. */
  dropped = 0;

  /**
   * Keeps `labels` as the latest exemplar of `value` (observed at `timestampMs`, default now) for
   * its slot of `target`. A label set past OpenMetrics' 128 characters is dropped; `fits` says the
   * caller knows it is within (a trace context always is).
   */
  offer(
    target: ExemplarTarget,
    labels: Readonly<Record<string, string>>,
    value: number,
    timestampMs = Date.now(),
    fits = false,
  ): void {
    if (!fits && !exemplarLabelsFit(labels)) {
      this.dropped++;
      return;
    }
    let slots = target.slots;
    if (slots === undefined) {
      if (this.waiting.length >= MAX_WAITING_SERIES) {
        this.dropped++;
        return;
      }
      slots = target.slots = new Array<Exemplar | undefined>(target.boundaries.length + 1);
      this.waiting.push(target);
    }
    const slot = target.boundaries.length === 0 ? 0 : bucketIndex(target.boundaries, value);
    slots[slot] = { labels, value, timestampMs };
  }

  /** Everything waiting, in the order its series first got one; the queue starts over, empty. */
  take(): ExemplarUpdate[] {
    const out: ExemplarUpdate[] = [];
    for (const target of this.waiting) {
      const { slots } = target;
      target.slots = undefined;
      if (slots !== undefined) {
        out.push({ family: target.family, attributes: target.attributes, exemplars: slots });
      }
    }
    this.waiting = [];
    return out;
  }

  /** Series with exemplars waiting. */
  get size(): number {
    return this.waiting.length;
  }
}
