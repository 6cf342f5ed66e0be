import type { Attributes, Meter } from "@opentelemetry/api";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../catalog/types.js";
import type { InstrumentName } from "./naming.js";
import type { NativeFamily } from "./native-buckets.js";

/** One catalog metric bound to its OpenTelemetry instrument. */
export interface CatalogInstrument {
  definition: MetricDefinition;
  /** Counter: adds; gauge: sets; histogram: observes. */
  record(value: number, attributes: Attributes): void;
}

/** Where a histogram with native buckets also observes every value. */
export interface NativeTargets {
  /** Its native buckets for /metrics. */
  family: NativeFamily;
  /** The exponential push provider's meter, when an OTLP push asks for exponential histograms. */
  push: Meter | undefined;
}

/**
 * Creates the instrument of one catalog metric under the given OpenTelemetry name and unit. A
 * histogram given `native` targets also observes every value into its native buckets, and into
 * a histogram named as the family of the exponential push provider's meter, if there is one.
 */
export function createCatalogInstrument(
  meter: Meter,
  def: MetricDefinition,
  otel: InstrumentName,
  native?: NativeTargets,
): CatalogInstrument {
  const options = { unit: otel.unit, description: `${def.name} (${def.unit})` };
  switch (def.type) {
    case "counter": {
      const counter = meter.createCounter(otel.name, options);
      return { definition: def, record: (v, a) => counter.add(v, a) };
    }
    case "gauge": {
      const gauge = meter.createGauge(otel.name, options);
      return { definition: def, record: (v, a) => gauge.record(v, a) };
    }
    case "histogram": {
      const histogram = meter.createHistogram(otel.name, {
        ...options,
        advice: { explicitBucketBoundaries: [...(def.buckets ?? DEFAULT_BUCKETS)] },
      });
      if (native === undefined) return { definition: def, record: (v, a) => histogram.record(v, a) };
      const { family } = native;
      const pushed = native.push?.createHistogram(def.name, options);
      return {
        definition: def,
        record: (v, a) => {
          histogram.record(v, a);
          family.record(v, a);
          pushed?.record(v, a);
        },
      };
    }
  }
}
