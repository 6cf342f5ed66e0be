import { resourceFromAttributes } from "@opentelemetry/resources";
import type { Attributes } from "@opentelemetry/api";
import { MeterProvider, type MetricReader, type ViewOptions } from "@opentelemetry/sdk-metrics";
import type { MetricDefinition } from "../catalog/types.js";
import type { MetricsFormat } from "../config/types.js";
import type { Logger } from "../log.js";
import { PullReader } from "../exposition/pull-reader.js";
import type { FamilySpec } from "../exposition/torchserve-text.js";
import { createCatalogInstrument, torchServeView, type CatalogInstrument } from "./instruments.js";
import { InstrumentNamer } from "./naming.js";
import { MetricRecorder } from "./recorder.js";

/** The meter's (instrumentation scope's) name. */
export const METER_NAME = "serve-metrics";

/** One service's OpenTelemetry pipeline: provider, pull reader, recorder and the families it exposes. */
export interface Telemetry {
  provider: MeterProvider;
  reader: PullReader;
  recorder: MetricRecorder;
  /** TorchServe families in catalog order (run-time registrations last), for the TorchServe renderer. */
  families: readonly FamilySpec[];
  /** Adds a metric after start (model_metrics_auto_detect); throws if the name is taken. */
  register(def: MetricDefinition): void;
}

/** Options of {@link createTelemetry}. */
export interface TelemetryOptions {
  /** The catalog plus any built-in extras, in exposition order. */
  metrics: readonly MetricDefinition[];
  /** `torchserve` adds the views that rename instruments to TorchServe names; `otel` keeps instrument names. */
  format: MetricsFormat;
  hostname: string;
  logger: Logger;
  /** More readers besides the pull reader (periodic OTLP push); they see the same views. */
  readers?: MetricReader[];
  /** More views, applied after the renaming ones (e.g. from otel-config.yaml). */
  views?: ViewOptions[];
  /** More resource attributes (they win over service.name and host.name). */
  resource?: Attributes;
}

/** Builds one MeterProvider with a pull reader and one instrument per metric. */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const { metrics, format, hostname, logger } = options;
  const namer = new InstrumentNamer();
  const names = metrics.map((def) => ({ def, otel: namer.name(def) }));
  const reader = new PullReader();
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ "service.name": "serve-metrics", "host.name": hostname }),
    readers: [reader],
    views:
      format === "torchserve" ? names.map(({ def, otel }) => torchServeView(def.name, otel, METER_NAME)) : [],
  });
  const meter = provider.getMeter(METER_NAME);
  const instruments = new Map<string, CatalogInstrument>();
  const families: FamilySpec[] = [];
  const add = (def: MetricDefinition, instrument: CatalogInstrument): void => {
    instruments.set(def.name, instrument);
    families.push({ name: def.name, type: def.type, unit: def.unit, labels: def.dimensions });
  };
  for (const { def, otel } of names) add(def, createCatalogInstrument(meter, def, otel));
  return {
    provider,
    reader,
    recorder: new MetricRecorder(instruments, hostname, logger),
    families,
    register: (def) => {
      if (instruments.has(def.name)) throw new Error(`metric ${def.name} is already registered`);
      // Views are fixed once the provider exists, so a late metric is created under its exposed name.
      let otel = namer.name(def);
      if (format === "torchserve") {
        namer.reserve(def.name);
        otel = { ...otel, name: def.name };
      }
      add(def, createCatalogInstrument(meter, def, otel));
    },
  };
}
