import type { Attributes, Meter } from "@opentelemetry/api";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../catalog/types.js";
import type { InstrumentName } from "./naming.js";

/** One catalog metric bound to its OpenTelemetry instrument. */
export interface CatalogInstrument {
  definition: MetricDefinition;
  /** Counter: adds; gauge: sets; histogram: observes. */
  record(value: number, attributes: Attributes): void;
}

/**
 * Creates the instrument of one catalog metric under the given OpenTelemetry name and unit. A
 * histogram given a `native` meter also observes every value into a histogram of that meter
 * named as the family, whose view aggregates it into exponential buckets.
 */
export function createCatalogInstrument(
  meter: Meter,
  def: MetricDefinition,
  otel: InstrumentName,
  native?: Meter,
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
      const exponential = native.createHistogram(def.name, options);
      return {
        definition: def,
        record: (v, a) => {
          histogram.record(v, a);
          exponential.record(v, a);
        },
      };
    }
  }
}
