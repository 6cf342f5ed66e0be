import type { Attributes, Meter } from "@opentelemetry/api";
import type { ViewOptions } from "@opentelemetry/sdk-metrics";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../catalog/types.js";
import type { InstrumentName } from "./naming.js";

/** One catalog metric bound to its OpenTelemetry instrument. */
export interface CatalogInstrument {
  definition: MetricDefinition;
  /** Counter: adds; gauge: sets; histogram: observes. */
  record(value: number, attributes: Attributes): void;
}

/** Creates one instrument per catalog metric, keyed by the TorchServe name. */
export function createCatalogInstruments(
  meter: Meter,
  metrics: readonly MetricDefinition[],
  names: ReadonlyMap<string, InstrumentName>,
): Map<string, CatalogInstrument> {
  const out = new Map<string, CatalogInstrument>();
  for (const def of metrics) {
    const otel = names.get(def.name);
    if (otel === undefined) continue;
    const options = { unit: otel.unit, description: `${def.name} (${def.unit})` };
    let record: CatalogInstrument["record"];
    switch (def.type) {
      case "counter": {
        const counter = meter.createCounter(otel.name, options);
        record = (v, a) => counter.add(v, a);
        break;
      }
      case "gauge": {
        const gauge = meter.createGauge(otel.name, options);
        record = (v, a) => gauge.record(v, a);
        break;
      }
      case "histogram": {
        const histogram = meter.createHistogram(otel.name, {
          ...options,
          advice: { explicitBucketBoundaries: [...(def.buckets ?? DEFAULT_BUCKETS)] },
        });
        record = (v, a) => histogram.record(v, a);
        break;
      }
    }
    out.set(def.name, { definition: def, record });
  }
  return out;
}

/** Views that rename each instrument back to its TorchServe name (units stay those TorchServe reports). */
export function torchServeViews(
  names: ReadonlyMap<string, InstrumentName>,
  meterName: string,
): ViewOptions[] {
  return [...names].map(([torchServeName, otel]) => ({
    meterName,
    instrumentName: otel.name,
    name: torchServeName,
  }));
}
