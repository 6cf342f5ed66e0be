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
const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";
const OVERFLOW_ATTRIBUTES: Attributes = { [OVERFLOW_ATTRIBUTE]: true };
/** No series key can equal it: keys end with a NUL. */
const OVERFLOW_KEY = "overflow";
const ALL_PARTS: HistogramParts = { bucket: true, count: true, sum: true };

/** One series: its label text, cumulative value, and sample text until the value changes. */
interface Series {
  readonly attributes: Attributes;
  readonly labels: string;
  value: number | HistogramValue;
  text: string | undefined;
}

interface FamilyState {
  readonly spec: FamilySpec;
  readonly header: string;
  readonly limit: number;
  /** In first-seen order, which is the order the samples are printed in. */
  readonly series: Map<string, Series>;
  /** Series besides the overflow series. */
  real: number;
  histogram: boolean;
  /** Every series' text joined, until one of them changes. */
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
 * touches only the series that changed since the last one and reuses the text of all others.
 * Output is the same as rendering the SDK's own cumulative collection.
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
    switch (metric.dataPointType) {
      case DataPointType.SUM:
        for (const point of metric.dataPoints) {
          const key = this.locate(state, point.attributes);
          const series = state.series.get(key);
          if (series === undefined) this.create(state, key, point.attributes, point.value);
          else this.update(state, series, (series.value as number) + point.value);
        }
        return;
      case DataPointType.GAUGE:
        for (const point of metric.dataPoints) {
          const key = this.locate(state, point.attributes);
          const series = state.series.get(key);
          if (series === undefined) this.create(state, key, point.attributes, point.value);
          else this.update(state, series, point.value);
        }
        return;
      case DataPointType.HISTOGRAM:
        state.histogram = true;
        for (const point of metric.dataPoints) {
          const { buckets, count, sum = 0 } = point.value;
          const key = this.locate(state, point.attributes);
          const series = state.series.get(key);
          if (series === undefined) {
            const value = { boundaries: buckets.boundaries, counts: [...buckets.counts], sum, count };
            this.create(state, key, point.attributes, value);
            continue;
          }
          const total = series.value as HistogramValue;
          for (let i = 0; i < total.counts.length; i++)
            total.counts[i] = (total.counts[i] ?? 0) + (buckets.counts[i] ?? 0);
          total.sum += sum;
          total.count += count;
          this.update(state, series, total);
        }
        return;
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
    isLive?: (family: FamilySpec, attributes: Attributes) => boolean,
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
    isLive: ((family: FamilySpec, attributes: Attributes) => boolean) | undefined,
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
      } else if (!filter.has(name)) {
        return "";
      }
    }
    const whole = parts === ALL_PARTS || (parts.bucket && parts.count && parts.sum);
    if (whole && isLive === undefined) return (state.text ??= this.join(state));
    let out = "";
    for (const series of state.series.values()) {
      if (isLive !== undefined && !isLive(state.spec, series.attributes)) continue;
      out += whole
        ? this.text(state, series)
        : histogramSamples(name, series.labels, series.value as HistogramValue, parts);
    }
    return out;
  }

  private join(state: FamilyState): string {
    let out = "";
    for (const series of state.series.values()) out += this.text(state, series);
    return out;
  }

  private text(state: FamilyState, series: Series): string {
    if (series.text !== undefined) return series.text;
    const { name } = state.spec;
    series.text =
      typeof series.value === "number"
        ? scalarSample(name, series.labels, series.value)
        : histogramSamples(name, series.labels, series.value, ALL_PARTS);
    return series.text;
  }

  /** The key a point adds into: its own series, or the overflow series past the limit. */
  private locate(state: FamilyState, attributes: Attributes): string {
    if (attributes[OVERFLOW_ATTRIBUTE] === true) return OVERFLOW_KEY;
    const key = seriesKey(state.spec.labels, attributes);
    return state.real < state.limit || state.series.has(key) ? key : OVERFLOW_KEY;
  }

  private create(
    state: FamilyState,
    key: string,
    attributes: Attributes,
    value: number | HistogramValue,
  ): void {
    if (key === OVERFLOW_KEY) {
      attributes = OVERFLOW_ATTRIBUTES;
      this.options.onOverflow?.(state.spec.name);
    } else {
      state.real++;
    }
    state.series.set(key, {
      attributes,
      labels: labelPairs(state.spec.labels, attributes),
      value,
      text: undefined,
    });
    state.text = undefined;
  }

  private update(state: FamilyState, series: Series, value: number | HistogramValue): void {
    series.value = value;
    series.text = undefined;
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
 * A series' identity: declared label values in order, then any other attribute by name. Like the
 * SDK's, it does not depend on the order the attributes were given in.
 */
function seriesKey(order: readonly string[], attributes: Attributes): string {
  let key = "";
  let seen = 0;
  for (const label of order) {
    const value = attributes[label];
    if (value === undefined) {
      key += "\u0001\u0000";
    } else {
      key += `${String(value)}\u0000`;
      seen++;
    }
  }
  if (Object.keys(attributes).length > seen) {
    for (const name of Object.keys(attributes).sort()) {
      const value = attributes[name];
      if (!order.includes(name) && value !== undefined) key += `${name}\u0001${String(value)}\u0000`;
    }
  }
  return key;
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
