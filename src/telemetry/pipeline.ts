import { resourceFromAttributes } from "@opentelemetry/resources";
import type { Attributes } from "@opentelemetry/api";
import {
  AggregationTemporality,
  AggregationType,
  InstrumentType,
  MeterProvider,
  type IAttributesProcessor,
  type MetricReader,
  type ViewOptions,
} from "@opentelemetry/sdk-metrics";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../catalog/types.js";
import type { MetricsFormat } from "../config/types.js";
import type { Logger } from "../log.js";
import { PullReader } from "../exposition/pull-reader.js";
import type { FamilySpec } from "../exposition/torchserve-text.js";
import type { NativeLimits } from "../exposition/native-histogram.js";
import { NativeBuckets, type NativeDelta } from "./native-buckets.js";
import { gaugeHistogram, planGaugeHistograms, type GaugeHistogram } from "./gauge-histograms.js";
import { NATIVE_SCOPE_PREFIX, type ExponentialPush } from "./exponential-push.js";
import { createCatalogInstrument, type CatalogInstrument, type NativeTargets } from "./instruments.js";
import { InstrumentNamer, type InstrumentName } from "./naming.js";
import { PendingExemplars } from "./pending-exemplars.js";
import { PendingUpdates } from "./pending-updates.js";
import { MetricRecorder, type BoundGaugeHistogram } from "./recorder.js";
import { otelSampleNames, SampleNameOwners, torchServeSampleNames } from "./sample-names.js";

/** The meter's (instrumentation scope's) name. */
export const METER_NAME = "serve-metrics";
/** The meter of metrics registered after start, which one wildcard view can cover. */
const LATE_METER_NAME = "serve-metrics.auto-detected";
/** The exponential push provider's meters, of catalog histograms and of those registered later. */
const NATIVE_METER_NAME = NATIVE_SCOPE_PREFIX;
const NATIVE_LATE_METER_NAME = `${NATIVE_SCOPE_PREFIX}.auto-detected`;

/** Which histograms also get native (exponential) buckets, and how fine. */
export interface NativeHistogramOptions {
  /** TorchServe names of the histograms; a declared one that is no histogram is warned about. */
  families: readonly string[];
  /** The finest resolution kept (Prometheus' schema, -4 to 8). */
  schema: number;
  /** Buckets per sign at most; past it the resolution halves. */
  maxBuckets: number;
}

/** Where the native buckets of {@link NativeHistogramOptions} are collected from. */
export interface NativeCollection {
  /** The native points recorded since the previous take, by family. */
  take(): NativeDelta;
  limits: NativeLimits;
}

/** One service's OpenTelemetry pipeline: provider, pull reader, recorder and the families it exposes. */
export interface Telemetry {
  provider: MeterProvider;
  reader: PullReader;
  recorder: MetricRecorder;
  /** TorchServe families in catalog order (run-time registrations last), for the TorchServe renderer. */
  families: readonly FamilySpec[];
  /** Series kept per family: max_series_per_metric, or a configured view's cardinality limit. */
  seriesLimit(family: string): number;
  /**
   * Adds a metric after start (model_metrics_auto_detect); throws {@link MetricRegistrationError}
   * if the name is taken or one of its sample names is another family's.
   */
  register(def: MetricDefinition): void;
  /**
   * The running total, each update added in turn as TorchServe adds them, of the counter or
   * histogram series an SDK point with these attributes belongs to; for the TorchServe text (see
   * PendingUpdates.totalOf).
   */
  readonly exactTotal: (attributes: Attributes, fresh: boolean, delta: number) => number | undefined;
  /**
   * The exemplars recorded since the last scrape (traceparent, request ids), for the series store;
   * undefined in OTel naming, whose exposition shows none.
   */
  readonly exemplars: PendingExemplars | undefined;
  /** The native buckets' reader, in TorchServe naming when some histogram has them. */
  native: NativeCollection | undefined;
}

/** A metric that cannot be added at run time; says which and why. */
export class MetricRegistrationError extends Error {
  constructor(
    readonly metric: string,
    readonly reason: string,
  ) {
    super(`${metric}: ${reason}`);
    this.name = "MetricRegistrationError";
  }
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
  /**
   * Views from otel-config.yaml. Each is merged into the one view of every instrument it selects
   * (`instrumentName`, `*` wildcards allowed, and `instrumentType`), since two views matching one
   * instrument would export it twice; the TorchServe name still wins in torchserve format.
   */
  views?: ViewOptions[];
  /** More resource attributes (they win over service.name and host.name). */
  resource?: Attributes;
  /** Series kept per metric; later ones go to one `otel.metric.overflow=true` series. Default 50,000. */
  maxSeriesPerMetric?: number;
  /**
   * Gauges whose every value is also observed into a histogram per model (see
   * {@link gaugeHistogram}); default none (the service passes its `histogram_gauges`, by default
   * `DEFAULT_HISTOGRAM_GAUGES`). A name not declared yet gets its histogram when
   * model_metrics_auto_detect registers it as a gauge.
   */
  histogramGauges?: readonly string[];
  /** Bucket bounds, in seconds, of those histograms for gauges in a time unit; default TorchServe's. */
  histogramGaugeBuckets?: readonly number[];
  /** Whether recordInference counts responses in Requests2XX/4XX/5XX; default true (see MetricRecorder). */
  inferenceResponses?: boolean;
  /** Whether a known model's ts_* counters start at zero (`torchserve_zero_series`); default false. */
  torchServeZeroSeries?: boolean;
  /** Whether exemplars are kept for /metrics (TorchServe naming only); default true. False in log mode. */
  exemplars?: boolean;
  /**
   * Histograms that also get native buckets, for the protobuf exposition (TorchServe naming only;
   * ignored in OTel naming). Default none.
   */
  nativeHistograms?: NativeHistogramOptions;
  /** Push readers that want those histograms as OpenTelemetry exponential histograms. */
  exponentialPush?: readonly ExponentialPush[];
}

/**
 * Builds one MeterProvider with a pull reader and one instrument per metric. In TorchServe naming
 * the pull reader takes deltas, which the scraper's series store adds up; in OTel naming it stays
 * cumulative.
 */
export function createTelemetry(options: TelemetryOptions): Telemetry {
  const { metrics, format, hostname, logger } = options;
  const limit = options.maxSeriesPerMetric ?? 50_000;
  const histogramGauges = new Set(options.histogramGauges ?? []);
  const histogramBuckets = options.histogramGaugeBuckets ?? DEFAULT_BUCKETS;
  const namer = new InstrumentNamer();
  // Two families rendering one sample name make the exposition invalid (a second HELP, or samples
  // a parser files under the wrong family). Checked by TorchServe name in both formats, so a
  // metric is accepted or refused alike in each; in OTel naming the exporter's names are checked too.
  const tsSamples = new SampleNameOwners();
  const otelSamples = new SampleNameOwners();
  const names: { def: MetricDefinition; otel: InstrumentName }[] = [];
  const claim = (def: MetricDefinition, otel: InstrumentName): void => {
    tsSamples.claim(def.name, torchServeSampleNames(def.name, def.type));
    otelSamples.claim(def.name, otelSampleNames(otel.name, def.type));
    names.push({ def, otel });
  };
  for (const def of metrics) claim(def, namer.name(def));
  const plan = planGaugeHistograms(metrics, [...histogramGauges], histogramBuckets);
  for (const reason of plan.skipped) logger.warn(`histogram gauges: ${reason}`);
  const gaugeHistograms = new Map<string, BoundGaugeHistogram>();
  const planned = new Map<string, GaugeHistogram>();
  for (const h of plan.histograms) {
    const clash = tsSamples.clash(torchServeSampleNames(h.definition.name, "histogram"));
    if (clash !== undefined) {
      logger.warn(
        `histogram gauges: ${h.gauge} gets no histogram: ${clash.sample} is a sample of ${clash.family}`,
      );
      continue;
    }
    let otel = namer.name(h.definition, h.otelName);
    while (otelSamples.clash(otelSampleNames(otel.name, "histogram")) !== undefined) {
      otel = namer.name(h.definition, h.otelName);
    }
    claim(h.definition, otel);
    planned.set(h.definition.name, h);
  }
  const reader = new PullReader(
    format === "torchserve" ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE,
  );
  const limits = new Map<string, number>();
  const resource = resourceFromAttributes({
    "service.name": "serve-metrics",
    "host.name": hostname,
    ...options.resource,
  });
  const nativeNames = new Set(format === "torchserve" ? (options.nativeHistograms?.families ?? []) : []);
  /** The classic stream's series limit and attribute processors of each native family. */
  const nativeStreams = new Map<string, { limit: number; processors?: IAttributesProcessor[] }>();
  const nativeViews: ViewOptions[] = [];
  const provider = new MeterProvider({
    resource,
    readers: [reader, ...(options.readers ?? [])],
    views: [
      ...names.map(({ def, otel }) => {
        const merged = (options.views ?? [])
          .filter((v) => selects(v, otel.name, def.type))
          .reduce<ViewOptions>((acc, v) => ({ ...acc, ...withoutSelectors(v) }), {});
        if (merged.aggregationCardinalityLimit !== undefined) {
          limits.set(def.name, merged.aggregationCardinalityLimit - 1);
        }
        if (def.type === "histogram" && nativeNames.has(def.name)) {
          // The same series as the classic stream: the same attribute keys and series limit.
          nativeStreams.set(def.name, {
            limit: (merged.aggregationCardinalityLimit ?? limit + 1) - 1,
            ...(merged.attributesProcessors && { processors: merged.attributesProcessors }),
          });
          nativeViews.push({
            aggregationCardinalityLimit: merged.aggregationCardinalityLimit ?? limit + 1,
            ...(merged.attributesProcessors && { attributesProcessors: merged.attributesProcessors }),
            meterName: NATIVE_METER_NAME,
            instrumentName: def.name,
          });
        }
        return {
          // The SDK's limit counts the overflow series too.
          aggregationCardinalityLimit: limit + 1,
          ...merged,
          meterName: METER_NAME,
          instrumentName: otel.name,
          ...(format === "torchserve" && { name: def.name }),
        };
      }),
      { meterName: LATE_METER_NAME, instrumentName: "*", aggregationCardinalityLimit: limit + 1 },
    ],
  });
  const meter = provider.getMeter(METER_NAME);
  const lateMeter = provider.getMeter(LATE_METER_NAME);
  const exponentialPush = options.exponentialPush ?? [];
  const nativeOptions = options.nativeHistograms;
  const nativeBuckets =
    nativeOptions !== undefined && nativeNames.size > 0
      ? new NativeBuckets(nativeOptions.maxBuckets, nativeOptions.schema)
      : undefined;
  const pushProvider =
    nativeOptions !== undefined && nativeBuckets !== undefined
      ? exponentialPushProvider(nativeOptions, nativeViews, resource, limit, exponentialPush)
      : undefined;
  if (exponentialPush.length > 0 && nativeBuckets === undefined) {
    logger.warn(
      "OTLP push: default_histogram_aggregation=base2_exponential_bucket_histogram applies to the histograms " +
        "in native_histograms, in TorchServe naming (metrics_format=torchserve); none here, so histograms go out classic",
    );
  }
  for (const name of nativeNames) {
    const def = metrics.find((m) => m.name === name);
    if (def !== undefined && def.type !== "histogram") {
      logger.warn(`native_histograms: ${name} is a ${def.type}, not a histogram: it gets no native buckets`);
    }
  }
  /** Where a histogram in native_histograms also goes: its native family, and the exponential push. */
  const nativeOf = (def: MetricDefinition, late: boolean): NativeTargets | undefined => {
    if (nativeBuckets === undefined || def.type !== "histogram" || !nativeNames.has(def.name))
      return undefined;
    const stream = nativeStreams.get(def.name) ?? { limit };
    return {
      family: nativeBuckets.family(def.name, def.dimensions, stream.limit, stream.processors),
      push: pushProvider?.getMeter(late ? NATIVE_LATE_METER_NAME : NATIVE_METER_NAME),
    };
  };
  const instruments = new Map<string, CatalogInstrument>();
  const families: FamilySpec[] = [];
  const add = (def: MetricDefinition, instrument: CatalogInstrument): void => {
    instruments.set(def.name, instrument);
    families.push({ name: def.name, type: def.type, unit: def.unit, labels: def.dimensions });
  };
  for (const { def, otel } of names) {
    const instrument = createCatalogInstrument(meter, def, otel, nativeOf(def, false));
    add(def, instrument);
    const h = planned.get(def.name);
    if (h !== undefined) gaugeHistograms.set(h.gauge, { spec: h, instrument });
  }
  /** Adds a metric after start under `preferred` (OTel naming), or throws MetricRegistrationError. */
  const registerLate = (def: MetricDefinition, preferred?: string): CatalogInstrument => {
    if (instruments.has(def.name)) throw new MetricRegistrationError(def.name, "already registered");
    const samples = torchServeSampleNames(def.name, def.type);
    const clash = tsSamples.clash(samples);
    if (clash !== undefined) {
      throw new MetricRegistrationError(
        def.name,
        `a ${def.type} of this name renders ${clash.sample}, a sample name of ${clash.family}`,
      );
    }
    // Views are fixed once the provider exists, so a late metric is created under its exposed name.
    let otel = namer.name(def, preferred);
    if (format === "torchserve") {
      namer.reserve(def.name);
      otel = { ...otel, name: def.name };
    } else {
      // The namer's names are unique, but the exporter's can still meet (`_total`, `_count`,
      // collapsed `__`): take the namer's next name then, as for any other taken name.
      while (otelSamples.clash(otelSampleNames(otel.name, def.type)) !== undefined) {
        otel = namer.name(def, preferred);
      }
    }
    tsSamples.claim(def.name, samples);
    otelSamples.claim(def.name, otelSampleNames(otel.name, def.type));
    const instrument = createCatalogInstrument(lateMeter, def, otel, nativeOf(def, true));
    add(def, instrument);
    return instrument;
  };
  const pending = new PendingUpdates(meter);
  const exemplars =
    format === "torchserve" && options.exemplars !== false ? new PendingExemplars() : undefined;
  return {
    provider,
    reader,
    exactTotal: (attributes, fresh, delta) => pending.totalOf(attributes, fresh, delta),
    exemplars,
    recorder: new MetricRecorder(
      instruments,
      hostname,
      logger,
      pending,
      gaugeHistograms,
      options.inferenceResponses,
      options.torchServeZeroSeries,
      exemplars,
    ),
    families,
    native: nativeBuckets &&
      nativeOptions && {
        take: () => nativeBuckets.take(),
        limits: { schema: nativeOptions.schema, maxBuckets: nativeOptions.maxBuckets },
      },
    seriesLimit: (family) => limits.get(family) ?? limit,
    register: (def) => {
      registerLate(def);
      if (!histogramGauges.has(def.name) || gaugeHistograms.has(def.name)) return;
      // An auto-detected gauge named in the list gets its histogram now; the gauge stays either way.
      const h = gaugeHistogram(def, histogramBuckets);
      if (h === undefined) {
        logger.warn(`histogram gauges: ${def.name} is a ${def.type}, not a gauge: it gets no histogram`);
        return;
      }
      try {
        gaugeHistograms.set(h.gauge, { spec: h, instrument: registerLate(h.definition, h.otelName) });
      } catch (err) {
        if (!(err instanceof MetricRegistrationError)) throw err;
        logger.warn(`histogram gauges: ${def.name} gets no histogram: ${err.message}`);
      }
    },
  };
}

/**
 * A provider of its own for the OTLP pushes that ask for exponential histograms (see
 * ExponentialPush), each reading it with its own temporality; none when no push asks. Its
 * histograms are those in native_histograms, under their TorchServe names, with OpenTelemetry's
 * exponential aggregation. Every reader of the main provider would otherwise aggregate and
 * export them as a second stream of each histogram.
 */
function exponentialPushProvider(
  options: NativeHistogramOptions,
  views: readonly ViewOptions[],
  resource: ReturnType<typeof resourceFromAttributes>,
  limit: number,
  pushes: readonly ExponentialPush[],
): MeterProvider | undefined {
  if (pushes.length === 0) return undefined;
  const aggregation = {
    type: AggregationType.EXPONENTIAL_HISTOGRAM,
    options: { maxSize: options.maxBuckets, recordMinMax: false },
  } as const;
  const readers = pushes.map((push) => {
    const reader = new PullReader(push.temporality);
    push.attach(reader);
    return reader;
  });
  return new MeterProvider({
    resource,
    readers,
    views: [
      ...views.map((view) => ({ ...view, aggregation })),
      {
        meterName: NATIVE_LATE_METER_NAME,
        instrumentName: "*",
        aggregation,
        aggregationCardinalityLimit: limit + 1,
      },
    ],
  });
}

const INSTRUMENT_TYPES: Readonly<Record<MetricDefinition["type"], InstrumentType>> = {
  counter: InstrumentType.COUNTER,
  gauge: InstrumentType.GAUGE,
  histogram: InstrumentType.HISTOGRAM,
};

/** Whether a configured view's selectors pick this instrument. */
function selects(view: ViewOptions, instrumentName: string, type: MetricDefinition["type"]): boolean {
  if (view.instrumentType !== undefined && view.instrumentType !== INSTRUMENT_TYPES[type]) return false;
  if (view.instrumentName === undefined) return true;
  const pattern = new RegExp(
    `^${view.instrumentName
      .replace(/[.+^${}()|[\]\\]/g, "\\$&")
      .replace(/\*/g, ".*")
      .replace(/\?/g, ".")}$`,
  );
  return pattern.test(instrumentName);
}

/** The stream part of a view (name, aggregation, attributes, cardinality): its defined fields, no selectors. */
function withoutSelectors(view: ViewOptions): ViewOptions {
  const stream: ViewOptions = {};
  if (view.name !== undefined) stream.name = view.name;
  if (view.description !== undefined) stream.description = view.description;
  if (view.aggregation !== undefined) stream.aggregation = view.aggregation;
  if (view.attributesProcessors !== undefined) stream.attributesProcessors = view.attributesProcessors;
  if (view.aggregationCardinalityLimit !== undefined) {
    stream.aggregationCardinalityLimit = view.aggregationCardinalityLimit;
  }
  return stream;
}
