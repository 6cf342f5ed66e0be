import type { Attributes } from "@opentelemetry/api";
import { DataPointType, type MetricData, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import {
  familyHeader,
  histogramSamples,
  labelPairs,
  scalarSample,
  type FamilySpec,
  type HistogramParts,
  type HistogramValue,
} from "./torchserve-text.js";
import { chunksToString, TextChunks } from "./text-chunks.js";
import {
  OPENMETRICS_EOF,
  openMetricsFamily,
  openMetricsHeader,
  openMetricsHistogramSamples,
  openMetricsScalarSample,
} from "./openmetrics-text.js";
import { bucketIndex, type Exemplar } from "./exemplars.js";
import { writeFamily } from "./protobuf-family.js";
import { ProtobufWriter } from "./protobuf-writer.js";
import { addExponential, type NativeLimits } from "./native-histogram.js";
import type { NativeDelta } from "../telemetry/native-buckets.js";

/** The attribute the SDK puts on the one series that takes every series past the limit. */
export const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";
/** The overflow series' labels, whatever the family's. */
const OVERFLOW_LABELS = labelPairs([], { [OVERFLOW_ATTRIBUTE]: true });
const ALL_PARTS: HistogramParts = { bucket: true, count: true, sum: true };
/** Ends every OpenMetrics exposition; one buffer, so gzip sees the same chunk each scrape. */
const EOF_CHUNK = Buffer.from(OPENMETRICS_EOF);

interface FamilyState {
  readonly spec: FamilySpec;
  /** The HELP and TYPE lines, encoded once. */
  readonly header: Buffer;
  readonly limit: number;
  /**
   * Cumulative values by label text (`a="1",`), which is what tells series apart in the text and
   * costs no more memory than the text itself; in first-seen order, the order they are printed in.
   */
  readonly series: Map<string, number | HistogramValue>;
  /** Series besides the overflow series. */
  real: number;
  histogram: boolean;
  /** The family's samples as encoded chunks, until one of its series changes or goes. */
  text: Buffer[] | undefined;
  /** The family as a delimited protobuf MetricFamily, until one of its series changes or goes. */
  protobuf: Buffer | undefined;
  /** The family as OpenMetrics text, HELP and TYPE included, until one of its series changes or goes. */
  openMetrics: Buffer[] | undefined;
  /** Where the points of the family's last delta went, in their order; dropped on eviction. */
  last: PointOrder | undefined;
  /** The same for its last delta of native buckets. */
  nativeLast: PointOrder | undefined;
  /**
   * The last exemplar per classic bucket (histogram) or the last one (counter), by the label text
   * of a series the family keeps: it goes with the series, so it is never more than one per slot.
   */
  exemplars: Map<string, (Exemplar | undefined)[]> | undefined;
}

/** The exemplars of one series, as {@link SeriesStore.applyExemplars} takes them. */
export interface SeriesExemplars {
  readonly family: string;
  /** The series' attributes, as the SDK's points have them. */
  readonly attributes: Attributes;
  /** Placed by value into the series' own buckets (a counter's: the one). */
  readonly exemplars: readonly (Exemplar | undefined)[];
}

/** Options of {@link SeriesStore}. */
export interface SeriesStoreOptions {
  /** Every family that may be shown; the store looks up new entries when a name is unknown. */
  families: readonly FamilySpec[];
  /** Series kept per family; later ones are added into one `otel.metric.overflow` series. */
  limitOf?: (family: string) => number;
  /** Hears, once per family, that its overflow series was created (again, after an eviction). */
  onOverflow?: (family: string) => void;
  /**
   * Hears every point added, by family and label text (the overflow series' for points past the
   * limit): what series expiry times series by. The label text of a new series is the key the
   * store keeps, so a listener that keeps it costs no second copy.
   */
  onUpdate?: (family: string, labels: string) => void;
  /**
   * The running total of a counter, or sum of a histogram, whose updates were added in turn (as
   * TorchServe adds them), by the attributes of the SDK's point; undefined where there is none.
   * Shown instead of the delta sums added up, which differ in the last bits. `fresh`: the store
   * holds no value for the series (new, or evicted since), `delta` is the point's own.
   */
  exactTotal?: (attributes: Attributes, fresh: boolean, delta: number) => number | undefined;
}

/**
 * The cumulative state behind TorchServe's text, fed with the SDK's delta collections, so a scrape
 * costs the series that changed since the last one, and the text of a family none of whose series
 * changed is reused whole. Output is the same as rendering the SDK's own cumulative collection.
 */
export class SeriesStore {
  private readonly states = new Map<string, FamilyState>();
  private readonly specs = new Map<string, FamilySpec>();
  private indexed = 0;
  private readonly writer = new ProtobufWriter();

  constructor(private readonly options: SeriesStoreOptions) {}

  /** Adds one delta collection (sums and histograms add up; gauges replace). */
  apply(resourceMetrics: ResourceMetrics): void {
    const applied = new Set<string>();
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        this.applyMetric(metric);
        applied.add(metric.descriptor.name);
      }
    }
    // A family left out of a delta had no updates; its last order would only keep the SDK's
    // attribute objects alive, which the SDK itself has let go of by now.
    for (const state of this.states.values()) if (!applied.has(state.spec.name)) state.last = undefined;
  }

  /**
   * Adds one delta of native buckets (see NativeBuckets) into the histogram series of the same
   * labels. Taken before the classic delta that is applied first, so each of its series is
   * already there; a series that is not (evicted since) takes none. The text does not show them.
   */
  applyNative(delta: NativeDelta, limits: NativeLimits): void {
    for (const state of this.states.values()) if (!delta.has(state.spec.name)) state.nativeLast = undefined;
    for (const [name, points] of delta) {
      const spec = this.spec(name);
      const state = spec === undefined ? undefined : this.states.get(spec.name);
      if (state === undefined) continue;
      const order = new PointOrder(state.spec.labels, state.nativeLast);
      for (const { attributes, point } of points) {
        const labels = order.guess(attributes) ?? this.existing(state, order, attributes);
        const value = labels === undefined ? undefined : state.series.get(labels);
        if (value === undefined || typeof value === "number") continue;
        value.native = addExponential(value.native, point, limits);
        state.protobuf = undefined;
      }
      state.nativeLast = order;
    }
  }

  /** Adds one metric's delta points; metrics of no known family are ignored. */
  applyMetric(metric: MetricData): void {
    const spec = this.spec(metric.descriptor.name);
    if (spec === undefined) return;
    const state = this.state(spec);
    const { series } = state;
    const order = new PointOrder(state.spec.labels, state.last);
    switch (metric.dataPointType) {
      case DataPointType.SUM:
        for (const point of metric.dataPoints) {
          const labels = this.find(state, order, point.attributes);
          const total = series.get(labels);
          const exact = this.exact(labels, point.attributes, total === undefined, point.value);
          this.set(
            state,
            labels,
            exact ?? (total === undefined ? point.value : (total as number) + point.value),
          );
        }
        break;
      case DataPointType.GAUGE:
        for (const point of metric.dataPoints)
          this.set(state, this.find(state, order, point.attributes), point.value);
        break;
      case DataPointType.HISTOGRAM:
        state.histogram = true;
        for (const point of metric.dataPoints) {
          const { buckets, count, sum = 0 } = point.value;
          const labels = this.find(state, order, point.attributes);
          const total = series.get(labels) as HistogramValue | undefined;
          const exact = this.exact(labels, point.attributes, total === undefined, sum);
          if (total === undefined) {
            this.set(state, labels, {
              boundaries: buckets.boundaries,
              counts: [...buckets.counts],
              sum: exact ?? sum,
              count,
            });
            continue;
          }
          for (let i = 0; i < total.counts.length; i++) {
            total.counts[i] = (total.counts[i] ?? 0) + (buckets.counts[i] ?? 0);
          }
          total.sum = exact ?? total.sum + sum;
          total.count += count;
          this.changed(state, labels);
        }
        break;
      default:
      // Exponential histograms have no TorchServe text: their family shows HELP and TYPE only.
    }
    state.last = order;
  }

  /**
   * Keeps the newest exemplar per slot of each series named, once {@link apply} has added the
   * observations they were taken from. A series the family does not keep (past its limit, in the
   * overflow series, or a gauge) gets none: exemplars never outnumber the slots of kept series.
   */
  applyExemplars(updates: readonly SeriesExemplars[]): void {
    for (const update of updates) {
      const state = this.states.get(update.family);
      if (state === undefined) continue;
      const labels = labelPairs(state.spec.labels, update.attributes);
      const value = state.series.get(labels);
      if (value === undefined || (typeof value === "number" && state.spec.type !== "counter")) continue;
      const slotCount = typeof value === "number" ? 1 : value.counts.length;
      state.exemplars ??= new Map();
      let kept = state.exemplars.get(labels);
      let changed = false;
      for (const exemplar of update.exemplars) {
        if (exemplar === undefined) continue;
        // The bounds the series was aggregated with, which a configured view may have changed.
        const slot = typeof value === "number" ? 0 : bucketIndex(value.boundaries, exemplar.value);
        if (kept === undefined) {
          kept = new Array<Exemplar | undefined>(slotCount);
          state.exemplars.set(flatten(labels), kept);
        }
        const old = kept[slot];
        if (old === undefined || old.timestampMs <= exemplar.timestampMs) {
          kept[slot] = exemplar;
          changed = true;
        }
      }
      // The text carries no exemplars: only the protobuf and the OpenMetrics are written again.
      if (changed) {
        state.protobuf = undefined;
        state.openMetrics = undefined;
      }
    }
  }

  /**
   * The exemplars of one series by its label text: index i is classic bucket i of a histogram
   * (the last the +Inf one, as {@link HistogramValue.counts}), index 0 a counter's; undefined when
   * the series has none.
   */
  exemplarsOf(family: string, labels: string): ReadonlyArray<Exemplar | undefined> | undefined {
    return this.states.get(family)?.exemplars?.get(labels);
  }

  /** How many exemplars the store keeps, over every series. */
  get exemplarCount(): number {
    let total = 0;
    for (const state of this.states.values()) {
      for (const kept of state.exemplars?.values() ?? []) {
        for (const exemplar of kept) if (exemplar !== undefined) total++;
      }
    }
    return total;
  }

  /**
   * TorchServe's text for these families, in this order, as UTF-8 chunks that are never joined
   * (a family's unchanged text is the same chunks scrape after scrape). With a `filter` (sample
   * names) only matching samples are printed and families left empty vanish; without one, a
   * family with no series still prints its HELP and TYPE.
   */
  render(families: readonly FamilySpec[], filter?: ReadonlySet<string>): Buffer[] {
    const out: Buffer[] = [];
    for (const spec of families) {
      const state = this.state(spec);
      const samples = this.samples(state, filter);
      if (filter !== undefined && samples.length === 0) continue;
      out.push(state.header);
      for (const chunk of samples) out.push(chunk);
    }
    return out;
  }

  /**
   * The same families as delimited protobuf `io.prometheus.client.MetricFamily` messages, one
   * buffer per family, kept while the family is unchanged. Families without series are left out
   * (a MetricFamily needs a Metric). A `filter` keeps a family when it names one of its samples;
   * a histogram goes whole, as one metric it is.
   */
  renderProtobuf(families: readonly FamilySpec[], filter?: ReadonlySet<string>): Buffer[] {
    const out: Buffer[] = [];
    for (const spec of families) {
      const state = this.state(spec);
      if (state.series.size === 0) continue;
      if (filter !== undefined && !this.selected(state, filter)) continue;
      if (state.protobuf === undefined) {
        writeFamily(this.writer, spec, state.histogram, state.series, state.exemplars);
        state.protobuf = this.writer.take();
      }
      out.push(state.protobuf);
    }
    return out;
  }

  /**
   * The same families as OpenMetrics 1.0.0 text, ending with `# EOF`: the samples Prometheus stores
   * from TorchServe's text, with the same names, labels and values (see `openMetricsFamily` for
   * how counters are declared), and the exemplars of `_total` counters and classic buckets. A
   * `filter` keeps the families it names a sample of, as in {@link render}, but a histogram goes
   * whole, as in {@link renderProtobuf}: OpenMetrics wants its +Inf bucket, `_count` and `_sum`
   * together. A family's text is kept while the family is unchanged.
   */
  renderOpenMetrics(families: readonly FamilySpec[], filter?: ReadonlySet<string>): Buffer[] {
    const out: Buffer[] = [];
    for (const spec of families) {
      const state = this.state(spec);
      // As in the text, a filter leaves out the families it leaves without samples.
      if (filter !== undefined && (state.series.size === 0 || !this.selected(state, filter))) continue;
      for (const chunk of (state.openMetrics ??= this.joinOpenMetrics(state))) out.push(chunk);
    }
    out.push(EOF_CHUNK);
    return out;
  }

  /**
   * Forgets one series (expired): its memory goes, it no longer counts against the family's
   * limit, and a later point starts it again from zero, as a new series.
   */
  evict(family: string, labels: string): void {
    const state = this.states.get(family);
    if (state === undefined || !state.series.delete(labels)) return;
    state.exemplars?.delete(labels);
    if (labels !== OVERFLOW_LABELS) state.real--;
    state.text = undefined;
    state.protobuf = undefined;
    state.openMetrics = undefined;
    // The last delta's order may name the evicted series, which must now start again as new.
    state.last = undefined;
    state.nativeLast = undefined;
  }

  /** How many series the store keeps, the overflow series included. */
  get size(): number {
    let total = 0;
    for (const state of this.states.values()) total += state.series.size;
    return total;
  }

  /** Whether a `name[]` filter names one of the family's samples. */
  private selected(state: FamilyState, filter: ReadonlySet<string>): boolean {
    const { name } = state.spec;
    if (!state.histogram) return filter.has(name);
    return filter.has(`${name}_bucket`) || filter.has(`${name}_count`) || filter.has(`${name}_sum`);
  }

  private samples(state: FamilyState, filter: ReadonlySet<string> | undefined): Buffer[] {
    const { name } = state.spec;
    let parts = ALL_PARTS;
    if (filter !== undefined) {
      if (state.histogram) {
        parts = {
          bucket: filter.has(`${name}_bucket`),
          count: filter.has(`${name}_count`),
          sum: filter.has(`${name}_sum`),
        };
        if (!parts.bucket && !parts.count && !parts.sum) return [];
        if (parts.bucket && parts.count && parts.sum) parts = ALL_PARTS;
      } else if (!filter.has(name)) {
        return [];
      }
    }
    if (parts === ALL_PARTS) return (state.text ??= this.join(state, parts));
    return this.join(state, parts);
  }

  private join(state: FamilyState, parts: HistogramParts): Buffer[] {
    const { spec } = state;
    const out = new TextChunks();
    for (const [labels, value] of state.series) {
      out.add(
        typeof value === "number"
          ? scalarSample(spec.name, labels, value)
          : histogramSamples(spec.name, labels, value, parts),
      );
    }
    return out.finish();
  }

  /** The family in OpenMetrics text, its HELP and TYPE first. */
  private joinOpenMetrics(state: FamilyState): Buffer[] {
    const { spec } = state;
    const family = openMetricsFamily(spec, state.histogram, state.series.size > 0);
    const out = new TextChunks();
    out.add(openMetricsHeader(spec, family));
    for (const [labels, value] of state.series) {
      const exemplars = this.exemplarsOf(spec.name, labels);
      out.add(
        typeof value === "number"
          ? openMetricsScalarSample(spec.name, labels, value, family, exemplars?.[0])
          : openMetricsHistogramSamples(spec.name, labels, value, exemplars),
      );
    }
    return out.finish();
  }

  /**
   * {@link locate}, but first trying the series the previous delta had at this place in its
   * order: deltas of the same series tend to come in the same order, and comparing a point's
   * attributes with those of the previous costs far less than writing its label text and looking
   * that up.
   */
  private find(state: FamilyState, order: PointOrder, attributes: Attributes): string {
    const guessed = order.guess(attributes);
    if (guessed !== undefined) return guessed;
    const labels = this.locate(state, attributes);
    if (labels !== OVERFLOW_LABELS) order.keep(attributes, labels);
    return labels;
  }

  /**
   * The label text of the series a native point adds into, as {@link locate} found it for the
   * classic point just before: its own, or the overflow series once the family is at its limit.
   * Kept in `order`. Undefined when the store holds neither (the series was never classic).
   */
  private existing(state: FamilyState, order: PointOrder, attributes: Attributes): string | undefined {
    const overflow = state.series.has(OVERFLOW_LABELS) ? OVERFLOW_LABELS : undefined;
    if (attributes[OVERFLOW_ATTRIBUTE] === true) return overflow;
    const labels = labelPairs(state.spec.labels, attributes);
    if (!state.series.has(labels)) return state.real >= state.limit ? overflow : undefined;
    order.keep(attributes, labels);
    return labels;
  }

  /** The running total of a point's own series; never for the overflow series, which adds up many. */
  private exact(labels: string, attributes: Attributes, fresh: boolean, delta: number): number | undefined {
    const { exactTotal } = this.options;
    if (exactTotal === undefined || labels === OVERFLOW_LABELS) return undefined;
    return exactTotal(attributes, fresh, delta);
  }

  /** The series a point adds into: its own, or the overflow series past the limit. */
  private locate(state: FamilyState, attributes: Attributes): string {
    if (attributes[OVERFLOW_ATTRIBUTE] === true) return this.overflow(state);
    const labels = labelPairs(state.spec.labels, attributes);
    if (state.series.has(labels)) return labels;
    if (state.real >= state.limit) return this.overflow(state);
    state.real++;
    return flatten(labels);
  }

  private overflow(state: FamilyState): string {
    if (!state.series.has(OVERFLOW_LABELS)) this.options.onOverflow?.(state.spec.name);
    return OVERFLOW_LABELS;
  }

  private set(state: FamilyState, labels: string, value: number | HistogramValue): void {
    state.series.set(labels, value);
    this.changed(state, labels);
  }

  private changed(state: FamilyState, labels: string): void {
    state.text = undefined;
    state.protobuf = undefined;
    state.openMetrics = undefined;
    this.options.onUpdate?.(state.spec.name, labels);
  }

  private spec(name: string): FamilySpec | undefined {
    const { families } = this.options;
    // Families are only ever appended (run-time registrations), so index what is new.
    for (; this.indexed < families.length; this.indexed++) {
      const family = families[this.indexed];
      if (family !== undefined) this.specs.set(family.name, family);
    }
    return this.specs.get(name);
  }

  private state(spec: FamilySpec): FamilyState {
    let state = this.states.get(spec.name);
    if (state === undefined) {
      state = {
        spec,
        header: Buffer.from(familyHeader(spec)),
        limit: this.options.limitOf?.(spec.name) ?? Infinity,
        series: new Map(),
        real: 0,
        // Known from the data, not the catalog: a view may aggregate a histogram some other way.
        histogram: false,
        text: undefined,
        protobuf: undefined,
        openMetrics: undefined,
        last: undefined,
        exemplars: undefined,
        nativeLast: undefined,
      };
      this.states.set(spec.name, state);
    }
    return state;
  }
}

/**
 * The points of one delta of a family in the order they came, each with the label text of its
 * series, so that the next delta's points can be matched to theirs by attribute values alone.
 * Only points whose attributes are all declared labels are kept: their label text depends on
 * nothing else. Holds the SDK's attribute objects, which the SDK keeps until its next collection
 * anyway.
 */
class PointOrder {
  private readonly attributes: Attributes[] = [];
  private readonly labels: string[] = [];
  /** Where in the previous order the next point is looked for. */
  private at = 0;

  constructor(
    private readonly declared: readonly string[],
    private readonly previous: PointOrder | undefined,
  ) {}

  /**
   * The label text of the previous delta's point at this place (or, after one that went away,
   * the next place) if its attributes are the same as `attributes`; kept for the next delta too.
   */
  guess(attributes: Attributes): string | undefined {
    const previous = this.previous;
    if (previous === undefined) return undefined;
    for (let at = this.at; at < this.at + 2; at++) {
      const candidate = previous.attributes[at];
      if (candidate !== undefined && this.same(candidate, attributes)) {
        this.at = at + 1;
        const labels = previous.labels[at] as string;
        this.attributes.push(attributes);
        this.labels.push(labels);
        return labels;
      }
    }
    return undefined;
  }

  /** Keeps a point found without a guess, if its label text depends on its declared labels only. */
  keep(attributes: Attributes, labels: string): void {
    if (Object.keys(attributes).length !== this.defined(attributes)) return;
    this.attributes.push(attributes);
    this.labels.push(labels);
  }

  /**
   * Whether `attributes` have exactly `kept`'s values (which are declared labels only), so that
   * their label text is the same. Strictly equal values print alike; NaN, which is not equal to
   * itself, only misses the guess.
   */
  private same(kept: Attributes, attributes: Attributes): boolean {
    for (const key of this.declared) if (kept[key] !== attributes[key]) return false;
    return Object.keys(attributes).length === this.defined(attributes);
  }

  /** How many of the declared labels have a value. */
  private defined(attributes: Attributes): number {
    let count = 0;
    for (const key of this.declared) if (attributes[key] !== undefined) count++;
    return count;
  }
}

/**
 * A flat copy of a string. Text built with `+=` is a rope: a tree of small pieces that takes
 * several times the memory of its characters. A kept series' labels are flattened once;
 * `replace` returns a new, flat string.
 */
function flatten(text: string): string {
  return text.replace(/^/, "");
}

/**
 * Renders collected cumulative metrics as TorchServe's Prometheus text, families in `families`
 * order: a one-off {@link SeriesStore} (see its `render`), joined into one string, so for data
 * whose text fits in one (V8's limit is ~512 MiB).
 */
export function renderTorchServeText(
  families: readonly FamilySpec[],
  data: ReadonlyMap<string, MetricData>,
  filter?: ReadonlySet<string>,
): string {
  const store = new SeriesStore({ families });
  for (const metric of data.values()) store.applyMetric(metric);
  return chunksToString(store.render(families, filter));
}
