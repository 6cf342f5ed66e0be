import { resourceFromAttributes } from "@opentelemetry/resources";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import type { Catalog } from "../catalog/types.js";
import type { MetricsFormat } from "../config/types.js";
import type { Logger } from "../log.js";
import { PullReader } from "../exposition/pull-reader.js";
import type { FamilySpec } from "../exposition/torchserve-text.js";
import { createCatalogInstruments, torchServeViews } from "./instruments.js";
import { instrumentNames } from "./naming.js";
import { MetricRecorder } from "./recorder.js";

/** The meter's (instrumentation scope's) name. */
export const METER_NAME = "serve-metrics";

/** One service's OpenTelemetry pipeline: provider, pull reader, recorder and the families it exposes. */
export interface Telemetry {
  provider: MeterProvider;
  reader: PullReader;
  recorder: MetricRecorder;
  /** TorchServe families in catalog order, for the TorchServe renderer. */
  families: FamilySpec[];
}

/** Options of {@link createTelemetry}. */
export interface TelemetryOptions {
  catalog: Catalog;
  /** `torchserve` adds the views that rename instruments to TorchServe names; `otel` keeps instrument names. */
  format: MetricsFormat;
  hostname: string;
  logger: Logger;
}

/** Builds one MeterProvider with a pull reader and one instrument per catalog metric. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const { catalog, format, hostname, logger } = options;
  const names = instrumentNames(catalog.metrics);
  const reader = new PullReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ "service.name": "serve-metrics", "host.name": hostname }),
    readers: [reader],
    views: format === "torchserve" ? torchServeViews(names, METER_NAME) : [],
  });
  const instruments = createCatalogInstruments(provider.getMeter(METER_NAME), catalog.metrics, names);
  return {
    provider,
    reader,
    recorder: new MetricRecorder(instruments, hostname, logger),
    families: catalog.metrics.map((m) => ({
      name: m.name,
      type: m.type,
      unit: m.unit,
      labels: m.dimensions,
    })),
  };
}
