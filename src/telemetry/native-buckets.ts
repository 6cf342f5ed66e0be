import type { Attributes } from "@opentelemetry/api";
import type { IAttributesProcessor } from "@opentelemetry/sdk-metrics";
// OpenTelemetry's own exponential histogram aggregation, used without the SDK's instrument: the
// SDK hashes a series' attributes on every record of every stream, which for a second stream of
// the same histogram cost far more than the aggregation itself (bench/RESULTS.md, "Record").
import { ExponentialHistogramAccumulation } from "@opentelemetry/sdk-metrics/build/src/aggregator/ExponentialHistogram.js";
import { Buckets } from "@opentelemetry/sdk-metrics/build/src/aggregator/exponential-histogram/Buckets.js";
import { getMapping } from "@opentelemetry/sdk-metrics/build/src/aggregator/exponential-histogram/mapping/getMapping.js";
import type { ExponentialPoint } from "../exposition/native-histogram.js";
import { OVERFLOW_ATTRIBUTE } from "../exposition/series-store.js";

/** One native point of a delta: the series' attributes (as the classic stream has them) and its buckets. */
export interface NativePoint {
  attributes: Attributes;
  point: ExponentialPoint;
}

/** The native points recorded since the previous {@link NativeBuckets.take}, by family name. */
export type NativeDelta = ReadonlyMap<string, readonly NativePoint[]>;

interface Series {
  attributes: Attributes;
  accumulation: ExponentialHistogramAccumulation;
}

/** OpenTelemetry's finest scale, where its exponential histograms start. */
const MAX_SCALE = 20;

/** An empty accumulation of at most `maxBuckets` per sign, starting at `scale`. */
function accumulation(maxBuckets: number, scale: number): ExponentialHistogramAccumulation {
  const infinite = Number.POSITIVE_INFINITY;
  return new ExponentialHistogramAccumulation(
    [0, 0],
    maxBuckets,
    false,
    0,
    0,
    0,
    infinite,
    -infinite,
    new Buckets(),
    new Buckets(),
    getMapping(scale),
  );
}

const OVERFLOW: Attributes = Object.freeze({ [OVERFLOW_ATTRIBUTE]: true });
const OVERFLOW_KEY = "\u0001overflow";

/**
 * The native buckets of one histogram family between two collections: one OpenTelemetry
 * exponential accumulation per series, found by the values of its declared dimensions, and past
 * the series limit one overflow series, as the SDK does for the classic stream.
 */
export class NativeFamily {
  private series = new Map<string, Series>();
  /**
   * The same series by the recorder's frozen attributes objects (a bound series keeps one for
   * good), which spares building and hashing the key on every observation; never a fresh object,
   * so it holds no more entries than the recorder has bound series.
   */
  private byObject = new Map<Attributes, Series>();

  constructor(
    readonly name: string,
    private readonly dimensions: readonly string[],
    private readonly limit: number,
    private readonly maxBuckets: number,
    /** The classic stream's attribute processors (otel-config attribute_keys), applied alike. */
    private readonly processors: readonly IAttributesProcessor[] = [],
    /** The scale a series' accumulation starts at (see {@link NativeBuckets}). */
    private readonly scale = MAX_SCALE,
  ) {}

  /**
   * Observes a value, as the classic histogram does: a negative one is dropped (the SDK drops it),
   * a non-finite one only makes its series exist (how a zero series starts).
   */
  record(value: number, attributes: Attributes): void {
    if (value < 0) return;
    const known = this.byObject.get(attributes);
    if (known !== undefined) {
      known.accumulation.record(value);
      return;
    }
    let attrs = attributes;
    for (const processor of this.processors) attrs = processor.process(attrs);
    let key = this.key(attrs);
    let series = this.series.get(key);
    if (series === undefined) {
      if (this.series.size >= this.limit) {
        key = OVERFLOW_KEY;
        attrs = OVERFLOW;
        series = this.series.get(key);
      }
      if (series === undefined) {
        series = {
          attributes: attrs,
          accumulation: accumulation(this.maxBuckets, this.scale),
        };
        this.series.set(key, series);
      }
    }
    if (Object.isFrozen(attributes)) this.byObject.set(attributes, series);
    series.accumulation.record(value);
  }

  /** The points since the last take; the family starts over empty. */
  take(): NativePoint[] {
    const out: NativePoint[] = [];
    for (const { attributes, accumulation } of this.series.values()) {
      out.push({ attributes, point: accumulation.toPointValue() });
    }
    this.series = new Map();
    this.byObject = new Map();
    return out;
  }

  /**
   * The declared dimensions' values, which tell the recorder's series apart: it writes those and
   * no other attribute (an undeclared dimension is refused before it records).
   */
  private key(attributes: Attributes): string {
    let key = "";
    for (const dimension of this.dimensions) {
      const value = attributes[dimension];
      key += value === undefined ? "\u0001" : `${String(value)}\u0000`;
    }
    return key;
  }
}

/** Every native family of a pipeline, taken together at each collection. */
export class NativeBuckets {
  private readonly families: NativeFamily[] = [];

  /**
   * `scale`: where each series' accumulation starts, the finest it can be. The store keeps no finer
   * than native_histogram_schema, so starting there gives the same buckets for about half the
   * collection's cost (bench/RESULTS.md, "Protobuf exposition"): an accumulation started at
   * OpenTelemetry's finest scale (20) spreads a few observations over up to maxBuckets buckets,
   * each copied at every collection, to be merged down to the schema.
   */
  constructor(
    private readonly maxBuckets: number,
    private readonly scale = MAX_SCALE,
  ) {}

  /** Adds a family (at start or when a histogram is registered later). */
  family(
    name: string,
    dimensions: readonly string[],
    limit: number,
    processors?: readonly IAttributesProcessor[],
  ): NativeFamily {
    const family = new NativeFamily(name, dimensions, limit, this.maxBuckets, processors, this.scale);
    this.families.push(family);
    return family;
  }

  /** Every family's points since the last take. */
  take(): NativeDelta {
    const delta = new Map<string, NativePoint[]>();
    for (const family of this.families) {
      const points = family.take();
      if (points.length > 0) delta.set(family.name, points);
    }
    return delta;
  }
}
