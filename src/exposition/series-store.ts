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

/** The attribute the SDK puts on the one series that takes every series past the limit. */
export const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";
/** The overflow series' labels, whatever the family's. */
const OVERFLOW_LABELS = labelPairs([], { [OVERFLOW_ATTRIBUTE]: true });
const ALL_PARTS: HistogramParts = { bucket: true, count: true, sum: true };

interface FamilyState {
  readonly spec: FamilySpec;
  readonly header: string;
  readonly limit: number;
  /**
   * Cumulative values by label text (`a="1",`), which is what tells series apart in the text and
   * costs no more memory than the text itself; in first-seen order, the order they are printed in.
   */
  readonly series: Map<string, number | HistogramValue>;
  /** Series besides the overflow series. */
  real: number;
  histogram: boolean;
  /** The family's samples, until one of its series changes. */
  text: string | undefined;
}

/** Options of {@link SeriesStore}. */
export interface SeriesStoreOptions {
  /** Every family that may be shown; the store looks up new entries when a name is unknown. */
  families: readonly FamilySpec[];
  /** Series kept per family; later ones are added into one `otel.metric.overflow` series. */
  limitOf?: (family: string) => number;
  /** Hears, once per family, that its overflow series was created. */
  onOverflow?: (family: string) => void;
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

  constructor(private readonly options: SeriesStoreOptions) {}

  /** Adds one delta collection (sums and histograms add up; gauges replace). */
  apply(resourceMetrics: ResourceMetrics): void {
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) this.applyMetric(metric);
    }
  }

  /** Adds one metric's delta points; metrics of no known family are ignored. */
  applyMetric(metric: MetricData): void {
    const spec = this.spec(metric.descriptor.name);
    if (spec === undefined) return;
    const state = this.state(spec);
    const { series } = state;
    switch (metric.dataPointType) {
      case DataPointType.SUM:
        for (const point of metric.dataPoints) {
          const labels = this.locate(state, point.attributes);
          const total = series.get(labels);
          this.set(state, labels, total === undefined ? point.value : (total as number) + point.value);
        }
        break;
      case DataPointType.GAUGE:
        for (const point of metric.dataPoints)
          this.set(state, this.locate(state, point.attributes), point.value);
        break;
      case DataPointType.HISTOGRAM:
        state.histogram = true;
        for (const point of metric.dataPoints) {
          const { buckets, count, sum = 0 } = point.value;
          const labels = this.locate(state, point.attributes);
          const total = series.get(labels) as HistogramValue | undefined;
          if (total === undefined) {
            this.set(state, labels, {
              boundaries: buckets.boundaries,
              counts: [...buckets.counts],
              sum,
              count,
            });
            continue;
          }
          for (let i = 0; i < total.counts.length; i++) {
            total.counts[i] = (total.counts[i] ?? 0) + (buckets.counts[i] ?? 0);
          }
          total.sum += sum;
          total.count += count;
          state.text = undefined;
        }
        break;
      default:
      // Exponential histograms have no TorchServe text: their family shows HELP and TYPE only.
    }
  }

  /**
   * TorchServe's text for these families, in this order. With a `filter` (sample names) only
   * matching samples are printed and families left empty vanish; without one, a family with no
   * series still prints its HELP and TYPE. `isLive` leaves out the series it refuses.
   */
  render(
    families: readonly FamilySpec[],
    filter?: ReadonlySet<string>,
    isLive?: (family: FamilySpec, labels: string) => boolean,
  ): string {
    let out = "";
    for (const spec of families) {
      const state = this.state(spec);
      const samples = this.samples(state, filter, isLive);
      if (filter !== undefined && samples === "") continue;
      out += state.header;
      out += samples;
    }
    return out;
  }

  private samples(
    state: FamilyState,
    filter: ReadonlySet<string> | undefined,
    isLive: ((family: FamilySpec, labels: string) => boolean) | undefined,
  ): string {
    const { name } = state.spec;
    let parts = ALL_PARTS;
    if (filter !== undefined) {
      if (state.histogram) {
        parts = {
          bucket: filter.has(`${name}_bucket`),
          count: filter.has(`${name}_count`),
          sum: filter.has(`${name}_sum`),
        };
        if (!parts.bucket && !parts.count && !parts.sum) return "";
        if (parts.bucket && parts.count && parts.sum) parts = ALL_PARTS;
      } else if (!filter.has(name)) {
        return "";
      }
    }
    if (parts === ALL_PARTS && isLive === undefined) return (state.text ??= flatten(this.join(state, parts)));
    return this.join(state, parts, isLive);
  }

  private join(
    state: FamilyState,
    parts: HistogramParts,
    isLive?: (family: FamilySpec, labels: string) => boolean,
  ): string {
    const { spec } = state;
    let out = "";
    for (const [labels, value] of state.series) {
      if (isLive !== undefined && !isLive(spec, labels)) continue;
      out +=
        typeof value === "number"
          ? scalarSample(spec.name, labels, value)
          : histogramSamples(spec.name, labels, value, parts);
    }
    return out;
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
    state.text = undefined;
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
        header: familyHeader(spec),
        limit: this.options.limitOf?.(spec.name) ?? Infinity,
        series: new Map(),
        real: 0,
        // Known from the data, not the catalog: a view may aggregate a histogram some other way.
        histogram: false,
        text: undefined,
      };
      this.states.set(spec.name, state);
    }
    return state;
  }
}

/**
 * A flat copy of a string. Text built with `+=` is a rope: a tree of small pieces that takes
 * several times the memory of its characters. Kept text (a series' labels, a family's samples)
 * is flattened once; `replace` returns a new, flat string.
 */
function flatten(text: string): string {
  return text.replace(/^/, "");
}

/**
 * Renders collected cumulative metrics as TorchServe's Prometheus text, families in `families`
 * order: a one-off {@link SeriesStore} (see its `render`).
 */
export function renderTorchServeText(
  families: readonly FamilySpec[],
  data: ReadonlyMap<string, MetricData>,
  filter?: ReadonlySet<string>,
): string {
  const store = new SeriesStore({ families });
  for (const metric of data.values()) store.applyMetric(metric);
  return store.render(families, filter);
}
