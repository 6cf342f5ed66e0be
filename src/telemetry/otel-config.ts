import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { resolve } from "node:path";
import type { Attributes } from "@opentelemetry/api";
import {
  createConfigFactory,
  type AggregationConfigModel,
  type ConfigurationModel,
  type OtlpGrpcMetricExporterConfigModel,
  type OtlpHttpMetricExporterConfigModel,
  type PeriodicMetricReaderConfigModel,
  type ViewConfigModel,
} from "@opentelemetry/configuration";
import { OTLPMetricExporter as OtlpGrpcMetricExporter } from "@opentelemetry/exporter-metrics-otlp-grpc";
import {
  AggregationTemporalityPreference,
  OTLPMetricExporter as OtlpJsonMetricExporter,
} from "@opentelemetry/exporter-metrics-otlp-http";
import { OTLPMetricExporter as OtlpProtoMetricExporter } from "@opentelemetry/exporter-metrics-otlp-proto";
import {
  AggregationType,
  InstrumentType,
  PeriodicExportingMetricReader,
  type AggregationOption,
  type IAttributesProcessor,
  type MetricReader,
  type PushMetricExporter,
  type ResourceMetrics,
  type ViewOptions,
} from "@opentelemetry/sdk-metrics";
import { parseDocument } from "yaml";
import { ConfigError } from "../config/errors.js";
import { redactUrl, urlSecrets } from "../config/redact.js";
import type { Logger } from "../log.js";
import { ExponentialPush, histogramTemporality } from "./exponential-push.js";
import { ExportRequestTracker } from "./export-requests.js";
import { checkHeaders, parseKeyValueList } from "./key-value-list.js";
import { MonitoredExporter } from "./monitored-exporter.js";
import { METER_NAME } from "./pipeline.js";

/** What the service pushes, built from otel-config.yaml or the standard OTEL_* variables. */
export interface PushConfig {
  /** One periodic reader per push destination, each exporter wrapped in a {@link MonitoredExporter}. */
  readers: MetricReader[];
  /** `meter_provider.views`, for createTelemetry to merge into each instrument's view. */
  views: ViewOptions[];
  /** Resource attributes from the file (or OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME). */
  resource: Attributes;
  /** One line per reader for the start log, e.g. `OTLP http/protobuf push to http://…/v1/metrics every 60 s`. */
  describe: string[];
  /** The readers whose exporters want exponential histograms, for createTelemetry to feed. */
  exponential: ExponentialPush[];
}

/** Options of {@link loadPushConfig}. */
export interface LoadPushConfigOptions {
  /** otel-config.yaml (`--otel-config`); undefined: `env.OTEL_CONFIG_FILE`, else the OTEL_* variables. */
  file: string | undefined;
  /** Where OTEL_* variables and the file's `${VAR:-default}` substitutions are read. */
  env: NodeJS.ProcessEnv;
  /** Receives warnings about settings that are ignored. */
  logger: Logger;
  /** Hears the result of every export of every reader (serve_otlp_exports_total). */
  onExport?(ok: boolean): void;
}

/** What a reader needs of {@link LoadPushConfigOptions}. */
type ReaderOptions = Pick<LoadPushConfigOptions, "logger" | "onExport">;

/**
 * Reads the push configuration: the OpenTelemetry declarative configuration file when one is
 * named (it then wins over every OTEL_* variable but those it substitutes), else the standard
 * OTEL_METRICS_EXPORTER / OTEL_EXPORTER_OTLP_* variables, which push only when asked to.
 * @throws ConfigError (exitCode 2) naming the file and the setting, or the variable, that is wrong.
 */
export function loadPushConfig(opts: LoadPushConfigOptions): PushConfig {
  const file = opts.file ?? nonBlank(opts.env.OTEL_CONFIG_FILE);
  return file === undefined ? fromEnvironment(opts.env, opts) : fromFile(resolve(file), opts);
}

/** Nothing to push (fresh arrays each time: the caller owns what it gets). */
function noPush(resource: Attributes = {}): PushConfig {
  return { readers: [], views: [], resource, describe: [], exponential: [] };
}

// ---------------------------------------------------------------------------------------------
// otel-config.yaml

function fromFile(path: string, opts: LoadPushConfigOptions): PushConfig {
  const fail = (problem: string, key?: string, value?: unknown): never => {
    throw new ConfigError(problem, {
      file: path,
      key,
      value: value === undefined ? undefined : typeof value === "string" ? value : JSON.stringify(value),
    });
  };
  const model = parseConfigFile(path, opts.env, fail);
  const warn = (message: string): void => opts.logger.warn(`${path}: ${message}`);
  const ignored = ["tracer_provider", "logger_provider"].filter((key) => model[key] !== undefined);
  if (ignored.length > 0) warn(`${ignored.join(", ")} ignored: serve-metrics exports metrics only`);
  if (model.disabled === true) {
    opts.logger.info(`${path}: disabled: true, so nothing is pushed`);
    return noPush();
  }
  const resource = resourceAttributes(model, fail);
  const meterProvider = model.meter_provider;
  if (meterProvider === undefined) {
    warn("has no meter_provider, so nothing is pushed");
    return noPush(resource);
  }
  const readers: MetricReader[] = [];
  const describe: string[] = [];
  const exponential: ExponentialPush[] = [];
  meterProvider.readers.forEach((reader, i) => {
    const at = `meter_provider.readers[${i}]`;
    if (reader.pull !== undefined) {
      warn(
        `${at}.pull ignored: serve-metrics serves pull (Prometheus) metrics itself, on metrics_address ` +
          `(config.properties), in TorchServe's format`,
      );
    }
    if (reader.periodic !== undefined) {
      const built = periodicReader(reader.periodic, `${at}.periodic`, fail, opts);
      readers.push(built.reader);
      describe.push(built.describe);
      if (built.exponential !== undefined) exponential.push(built.exponential);
    } else if (reader.pull === undefined) {
      fail("names neither periodic nor pull", at);
    }
  });
  const views = (meterProvider.views ?? []).flatMap((view, i) =>
    viewOptions(view, `meter_provider.views[${i}]`, fail, warn),
  );
  return { readers, views, resource, describe, exponential };
}

type Fail = (problem: string, key?: string, value?: unknown) => never;

/** Parses, substitutes and validates the file with @opentelemetry/configuration. */
function parseConfigFile(path: string, env: NodeJS.ProcessEnv, fail: Fail): ConfigurationModel {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    return fail(
      `cannot read the OpenTelemetry config file (${errorMessage(err)}); check --otel-config or OTEL_CONFIG_FILE`,
    );
  }
  // The library turns a YAML syntax error into a schema complaint about the half-parsed result
  // ("/meter_provider must be object"); YAML's own message says which line is broken.
  const doc = parseDocument(text, { version: "1.2" });
  const syntax = doc.errors[0];
  if (syntax !== undefined) fail(`is not valid YAML: ${oneLine(syntax.message)}`);
  let parsed: unknown;
  try {
    // Some faults (an alias with no anchor) only show when the document is built.
    parsed = doc.toJS();
  } catch (err) {
    return fail(`is not valid YAML: ${oneLine(errorMessage(err))}`);
  }
  try {
    // createConfigFactory() takes the file from process.env.OTEL_CONFIG_FILE and nothing else, and
    // substitutes ${VAR:-default} from process.env. The service's environment is `env` (an
    // embedder's or a test's, not necessarily the process's), so process.env is swapped for the
    // duration of this synchronous call, which no other code can observe, and restored after.
    return withProcessEnv({ ...env, OTEL_CONFIG_FILE: path }, () => createConfigFactory().getConfigModel());
  } catch (err) {
    return fail(describeLibraryError(errorMessage(err), path, parsed));
  }
}

/** The library's message without its repeated file prefix, JSON pointers as dotted paths, on one line. */
function describeLibraryError(message: string, path: string, parsed: unknown): string {
  const detail = message
    .replace(/^Invalid OpenTelemetry config file: /, "")
    .replace(`${path}: `, "")
    .trim();
  return detail
    .split(/\s*\n\s*/)
    .map((line) => {
      const match = /^(\/\S*) (.*)$/.exec(line);
      if (match === null) return line;
      const [, pointer = "", problem = ""] = match;
      // ajv does not say which property is extra; listing the keys there makes a typo easy to spot.
      const keys = problem === "must NOT have additional properties" ? keysAt(parsed, pointer) : undefined;
      return `${pointerToPath(pointer)} ${problem}${keys === undefined ? "" : ` (found: ${keys.join(", ")})`}`;
    })
    .join("; ");
}

/** `/meter_provider/readers/0/periodic` → `meter_provider.readers[0].periodic`. */
function pointerToPath(pointer: string): string {
  if (pointer === "") return "the top level";
  return pointer
    .slice(1)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce(
      (acc, part) => (/^\d+$/.test(part) ? `${acc}[${part}]` : acc === "" ? part : `${acc}.${part}`),
      "",
    );
}

function keysAt(parsed: unknown, pointer: string): string[] | undefined {
  let node = parsed;
  for (const part of pointer.split("/").slice(1)) {
    if (typeof node !== "object" || node === null) return undefined;
    node = (node as Record<string, unknown>)[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return typeof node === "object" && node !== null && !Array.isArray(node) ? Object.keys(node) : undefined;
}

/** `resource.attributes` and `resource.attributes_list` (the list loses to the explicit attributes). */
function resourceAttributes(model: ConfigurationModel, fail: Fail): Attributes {
  const attributes: Attributes = {};
  const list = model.resource?.attributes_list;
  if (typeof list === "string") {
    const parsed = parseKeyValueList(list, "attribute");
    if (typeof parsed === "string") fail(parsed, "resource.attributes_list");
    Object.assign(attributes, parsed);
  }
  for (const { name, value } of model.resource?.attributes ?? []) {
    if (value !== null) attributes[name] = value;
  }
  return attributes;
}

// ---------------------------------------------------------------------------------------------
// Readers and exporters

const DEFAULT_INTERVAL_MS = 60_000;
const DEFAULT_READER_TIMEOUT_MS = 30_000;
const DEFAULT_EXPORTER_TIMEOUT_MS = 10_000;
const MAX_TIMER_MS = 2 ** 31 - 1;
/** How long after grpc-js's own deadline the monitor gives up on a gRPC export (see otlpGrpc). */
const GRPC_DEADLINE_GRACE_MS = 1000;

/** A periodic reader over one monitored OTLP exporter, and its start-log line. */
function periodicReader(
  model: PeriodicMetricReaderConfigModel,
  at: string,
  fail: Fail,
  opts: ReaderOptions,
): { reader: MetricReader; describe: string; exponential: ExponentialPush | undefined } {
  const { logger, onExport } = opts;
  const interval = milliseconds(model.interval, DEFAULT_INTERVAL_MS, `${at}.interval`, fail);
  if (interval === 0) fail("must be more than 0 milliseconds", `${at}.interval`, 0);
  // 0 means "no limit"; the SDK refuses a timeout longer than the interval, so the interval is the most it can be.
  const timeout = milliseconds(model.timeout, DEFAULT_READER_TIMEOUT_MS, `${at}.timeout`, fail);
  const readerTimeout = timeout === 0 ? interval : Math.min(timeout, interval);

  const entries = Object.entries(model.exporter).filter(([, value]) => value !== undefined);
  const [entry, extra] = entries;
  if (entry === undefined) return fail("names no exporter", `${at}.exporter`);
  if (extra !== undefined) {
    fail(
      `names ${entries.length} exporters (${entries.map(([k]) => k).join(", ")}); use one reader per exporter`,
      `${at}.exporter`,
    );
  }
  const [kind] = entry;
  const exporterAt = `${at}.exporter.${kind}`;
  let destination: Destination;
  if (kind === "otlp_http") {
    destination = otlpHttp(model.exporter.otlp_http ?? {}, exporterAt, readerTimeout, fail);
  } else if (kind === "otlp_grpc") {
    destination = otlpGrpc(model.exporter.otlp_grpc ?? {}, exporterAt, readerTimeout, fail, logger);
  } else {
    return fail(
      `is not supported: serve-metrics pushes with otlp_http or otlp_grpc (the pull endpoint is metrics_address)`,
      exporterAt,
    );
  }
  if (model.producers !== undefined) {
    fail("is not supported (serve-metrics has no metric producers)", `${at}.producers`);
  }
  const batch = model["max_export_batch_size/development"];
  const limits = model.cardinality_limits;
  const exponential = destination.exponential
    ? new ExponentialPush(histogramTemporality(destination.temporality))
    : undefined;
  const reader = new PeriodicExportingMetricReader({
    exporter: new MonitoredExporter(destination.exporter, {
      target: redactUrl(destination.url),
      deadlineMs: destination.deadlineMs,
      requests: destination.requests,
      secrets: destination.secrets,
      logger,
      onResult: onExport,
      ...(exponential && { transform: (metrics: ResourceMetrics) => exponential.swap(metrics) }),
    }),
    ...(exponential && { metricProducers: [exponential] }),
    exportIntervalMillis: interval,
    exportTimeoutMillis: readerTimeout,
    ...(typeof batch === "number" && { maxExportBatchSize: batch }),
    ...(limits != null && {
      cardinalityLimits: {
        default: limits.default ?? undefined,
        counter: limits.counter ?? undefined,
        gauge: limits.gauge ?? undefined,
        histogram: limits.histogram ?? undefined,
        observableCounter: limits.observable_counter ?? undefined,
        observableGauge: limits.observable_gauge ?? undefined,
        observableUpDownCounter: limits.observable_up_down_counter ?? undefined,
        upDownCounter: limits.up_down_counter ?? undefined,
      },
    }),
  });
  const temporality =
    destination.temporality === "cumulative" ? "" : `, ${destination.temporality} temporality`;
  return {
    reader,
    exponential,
    describe: `OTLP ${destination.protocol} push to ${redactUrl(destination.url)} every ${interval / 1000} s${temporality}`,
  };
}

/** One built exporter, what the start log says about it, and what its monitor needs. */
interface Destination {
  exporter: PushMetricExporter;
  /** Whether it asked for exponential histograms (default_histogram_aggregation). */
  exponential: boolean;
  protocol: "http/protobuf" | "http/json" | "grpc";
  url: string;
  temporality: Temporality;
  /** The exporter's timeout: the most one export may take, retries included. */
  deadlineMs: number;
  /** How the monitor ends an HTTP export's requests at its deadline; none for gRPC (see otlpGrpc). */
  requests?: ExportRequestTracker;
  /** Header values and the URL's credentials, masked in any message that might quote them. */
  secrets: string[];
}

type Temporality = "cumulative" | "delta" | "low_memory";

const TEMPORALITY: Readonly<Record<Temporality, AggregationTemporalityPreference>> = {
  cumulative: AggregationTemporalityPreference.CUMULATIVE,
  delta: AggregationTemporalityPreference.DELTA,
  low_memory: AggregationTemporalityPreference.LOWMEMORY,
};

/** The settings otlp_http and otlp_grpc share, checked. */
function commonExporterSettings(
  model: NonNullable<OtlpHttpMetricExporterConfigModel | OtlpGrpcMetricExporterConfigModel>,
  at: string,
  readerTimeout: number,
  fail: Fail,
  transport: "http" | "grpc",
) {
  const compression = model.compression ?? "none";
  if (compression !== "gzip" && compression !== "none") {
    fail("is not one of gzip, none", `${at}.compression`, compression);
  }
  // 0 means "no limit"; the reader stops waiting at its own timeout anyway, so that is the limit.
  const timeout = milliseconds(model.timeout, DEFAULT_EXPORTER_TIMEOUT_MS, `${at}.timeout`, fail);
  const headers: Record<string, string> = {};
  if (typeof model.headers_list === "string") {
    const parsed = parseKeyValueList(model.headers_list, "header");
    if (typeof parsed === "string") fail(parsed, `${at}.headers_list`);
    const problem = checkHeaders(parsed, transport);
    if (problem !== undefined) fail(problem, `${at}.headers_list`);
    Object.assign(headers, parsed);
  }
  for (const [i, { name, value }] of (model.headers ?? []).entries()) {
    if (value === null) continue;
    const problem = checkHeaders({ [name]: value }, transport);
    if (problem !== undefined) fail(problem, `${at}.headers[${i}]`);
    headers[name] = value;
  }
  const temporality: Temporality = model.temporality_preference ?? "cumulative";
  return {
    gzip: compression === "gzip",
    timeoutMillis: timeout === 0 ? readerTimeout : timeout,
    headers,
    temporalityPreference: TEMPORALITY[temporality],
    temporality,
    ...(model.default_histogram_aggregation === "base2_exponential_bucket_histogram" && {
      aggregationPreference: (type: InstrumentType): AggregationOption =>
        type === InstrumentType.HISTOGRAM
          ? { type: AggregationType.EXPONENTIAL_HISTOGRAM }
          : { type: AggregationType.DEFAULT },
    }),
  };
}

/**
 * The environment the exporters are constructed under. They merge OTEL_EXPORTER_OTLP_* from
 * process.env into whatever they are given (headers are even added up), which would let the
 * host's variables leak into a configuration that says otherwise; so they see only this. Two
 * settings go through it on purpose: compression (the option's type is an enum of a package we do
 * not depend on) and gRPC headers (the option is a @grpc/grpc-js Metadata, same reason).
 */
function exporterEnvironment(gzip: boolean, grpcHeaders?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  if (gzip) env.OTEL_EXPORTER_OTLP_METRICS_COMPRESSION = "gzip";
  if (grpcHeaders !== undefined && Object.keys(grpcHeaders).length > 0) {
    env.OTEL_EXPORTER_OTLP_METRICS_HEADERS = Object.entries(grpcHeaders)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join(",");
  }
  return env;
}

function otlpHttp(
  model: NonNullable<OtlpHttpMetricExporterConfigModel>,
  at: string,
  readerTimeout: number,
  fail: Fail,
): Destination {
  const url = model.endpoint ?? "http://localhost:4318/v1/metrics";
  checkUrl(url, `${at}.endpoint`, fail);
  const common = commonExporterSettings(model, at, readerTimeout, fail, "http");
  const tls = model.tls ?? {};
  const read = (key: "ca_file" | "cert_file" | "key_file"): Buffer | undefined => {
    const file = tls[key];
    if (file == null) return undefined;
    try {
      return readFileSync(file);
    } catch (err) {
      return fail(`cannot be read (${errorMessage(err)})`, `${at}.tls.${key}`, file);
    }
  };
  const ca = read("ca_file");
  const cert = read("cert_file");
  const key = read("key_file");
  if ((cert === undefined) !== (key === undefined)) {
    fail("cert_file and key_file go together (a client certificate needs its key)", `${at}.tls`);
  }
  // Every request the exporter makes goes through this tracker's agent, so that the export's
  // deadline can end it.
  const requests = new ExportRequestTracker();
  const options = {
    url,
    headers: common.headers,
    timeoutMillis: common.timeoutMillis,
    temporalityPreference: common.temporalityPreference,
    ...(common.aggregationPreference && { aggregationPreference: common.aggregationPreference }),
    // keepAlive is what the exporter uses when it builds the agent itself.
    httpAgentOptions: requests.agentFactory({ keepAlive: true, ca, cert, key }),
  };
  const json = model.encoding === "json";
  const exporter = withProcessEnv(exporterEnvironment(common.gzip), () =>
    json ? new OtlpJsonMetricExporter(options) : new OtlpProtoMetricExporter(options),
  );
  return {
    exporter,
    exponential: common.aggregationPreference !== undefined,
    protocol: json ? "http/json" : "http/protobuf",
    url,
    temporality: common.temporality,
    deadlineMs: common.timeoutMillis,
    requests,
    secrets: [...urlSecrets(url), ...Object.values(common.headers)],
  };
}

function otlpGrpc(
  model: NonNullable<OtlpGrpcMetricExporterConfigModel>,
  at: string,
  readerTimeout: number,
  fail: Fail,
  logger: Logger,
): Destination {
  const tls = model.tls ?? {};
  for (const key of ["ca_file", "cert_file", "key_file"] as const) {
    if (tls[key] != null) {
      fail(
        "is not supported for otlp_grpc (gRPC over https uses the system's trusted CAs); use otlp_http for custom certificates",
        `${at}.tls.${key}`,
        tls[key],
      );
    }
  }
  let url = model.endpoint ?? "http://localhost:4317";
  // Without a scheme the exporter would pick its credentials from process.env at the first
  // export; tls.insecure decides here instead, as the configuration schema says it should.
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(url)) url = `${tls.insecure === true ? "http" : "https"}://${url}`;
  checkUrl(url, `${at}.endpoint`, fail);
  const { protocol, hostname } = new URL(url);
  if (protocol === "https:" && isIP(hostname.replace(/^\[|\]$/g, "")) !== 0) {
    // @grpc/grpc-js always sends the host as the TLS server name (SNI), which RFC 6066 forbids
    // for an IP address; Node then prints DEP0123 once. No exporter option reaches that setting,
    // so the line before it says what it means.
    logger.warn(
      `OTLP grpc push to ${redactUrl(url)}: @grpc/grpc-js sends the IP address as the TLS server name, ` +
        "so Node warns once about it (DEP0123); the collector's certificate is still checked against " +
        "that address. Use a host name in the endpoint to avoid the warning.",
    );
  }
  const common = commonExporterSettings(model, at, readerTimeout, fail, "grpc");
  const options = {
    url,
    timeoutMillis: common.timeoutMillis,
    temporalityPreference: common.temporalityPreference,
    ...(common.aggregationPreference && { aggregationPreference: common.aggregationPreference }),
  };
  const exporter = withProcessEnv(
    exporterEnvironment(common.gzip, common.headers),
    () => new OtlpGrpcMetricExporter(options),
  );
  // gRPC's own deadline is already one per call, whatever the collector sends meanwhile, and its
  // error says where the call stood (connecting, waiting for an answer); the monitor's deadline,
  // a moment later, only ends an export that grpc-js would leave unanswered.
  return {
    exporter,
    exponential: common.aggregationPreference !== undefined,
    protocol: "grpc",
    url,
    temporality: common.temporality,
    deadlineMs: common.timeoutMillis + GRPC_DEADLINE_GRACE_MS,
    secrets: [...urlSecrets(url), ...Object.values(common.headers)],
  };
}

// ---------------------------------------------------------------------------------------------
// Views

const INSTRUMENT_TYPES: Readonly<Record<string, InstrumentType>> = {
  counter: InstrumentType.COUNTER,
  gauge: InstrumentType.GAUGE,
  histogram: InstrumentType.HISTOGRAM,
  up_down_counter: InstrumentType.UP_DOWN_COUNTER,
  observable_counter: InstrumentType.OBSERVABLE_COUNTER,
  observable_gauge: InstrumentType.OBSERVABLE_GAUGE,
  observable_up_down_counter: InstrumentType.OBSERVABLE_UP_DOWN_COUNTER,
};

/** One configured view as sdk ViewOptions; none when its selector cannot pick one of our instruments. */
function viewOptions(
  view: ViewConfigModel,
  at: string,
  fail: Fail,
  warn: (m: string) => void,
): ViewOptions[] {
  const { selector, stream } = view;
  if (selector.unit != null) {
    fail(
      "is not supported: select by instrument_name and instrument_type",
      `${at}.selector.unit`,
      selector.unit,
    );
  }
  if (selector.meter_name != null && selector.meter_name !== METER_NAME) {
    warn(
      `${at} selects meter ${JSON.stringify(selector.meter_name)}; the only meter is ${METER_NAME}, so it is ignored`,
    );
    return [];
  }
  if (selector.meter_version != null || selector.meter_schema_url != null) {
    warn(
      `${at} selects a meter version or schema URL; the ${METER_NAME} meter has neither, so it is ignored`,
    );
    return [];
  }
  const options: ViewOptions = {};
  if (selector.instrument_name != null) options.instrumentName = selector.instrument_name;
  if (selector.instrument_type != null) {
    const type = INSTRUMENT_TYPES[selector.instrument_type];
    if (type !== undefined) options.instrumentType = type;
  }
  if (stream.name != null) {
    // Every instrument a view selects gets its own copy of the view, so a name would be given to
    // several streams at once; the specification asks for the same refusal.
    if (selector.instrument_name == null || /[*?]/.test(selector.instrument_name)) {
      fail(
        "needs a selector.instrument_name without wildcards (it would name several streams)",
        `${at}.stream.name`,
        stream.name,
      );
    }
    options.name = stream.name;
  }
  if (stream.description != null) options.description = stream.description;
  if (stream.aggregation_cardinality_limit != null) {
    options.aggregationCardinalityLimit = stream.aggregation_cardinality_limit;
  }
  if (stream.aggregation !== undefined) {
    options.aggregation = aggregation(stream.aggregation, `${at}.stream.aggregation`, fail);
  }
  const keys = stream.attribute_keys;
  if (keys !== undefined)
    options.attributesProcessors = [attributeKeysProcessor(keys.included, keys.excluded)];
  return [options];
}

function aggregation(model: AggregationConfigModel, at: string, fail: Fail): AggregationOption {
  const kinds = Object.keys(model).filter((k) => (model as Record<string, unknown>)[k] !== undefined);
  if (kinds.length !== 1)
    fail(`must name exactly one aggregation (found: ${kinds.join(", ") || "none"})`, at);
  if (model.drop !== undefined) return { type: AggregationType.DROP };
  if (model.sum !== undefined) return { type: AggregationType.SUM };
  if (model.last_value !== undefined) return { type: AggregationType.LAST_VALUE };
  if (model.base2_exponential_bucket_histogram !== undefined) {
    const { max_size, record_min_max } = model.base2_exponential_bucket_histogram ?? {};
    return {
      type: AggregationType.EXPONENTIAL_HISTOGRAM,
      options: { maxSize: max_size ?? undefined, recordMinMax: record_min_max ?? undefined },
    };
  }
  if (model.explicit_bucket_histogram !== undefined) {
    const { boundaries, record_min_max } = model.explicit_bucket_histogram ?? {};
    // Without boundaries the instrument keeps its own buckets (the catalog's, or request_duration_buckets).
    if (boundaries === undefined) return { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM };
    const unsorted = boundaries.findIndex((b, i) => i > 0 && b <= (boundaries[i - 1] ?? -Infinity));
    if (unsorted !== -1) {
      fail("must increase strictly", `${at}.explicit_bucket_histogram.boundaries`, boundaries);
    }
    return {
      type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM,
      options: { boundaries: [...boundaries], recordMinMax: record_min_max ?? undefined },
    };
  }
  return { type: AggregationType.DEFAULT };
}

/**
 * Keeps the attributes whose keys match `included` (all when omitted) and not `excluded`; both
 * take `*` and `?` wildcards, which the SDK's allow and deny lists do not.
 */
function attributeKeysProcessor(included?: string[], excluded?: string[]): IAttributesProcessor {
  const include = included?.map(wildcard);
  const exclude = excluded?.map(wildcard) ?? [];
  return {
    process: (incoming) => {
      const kept: Attributes = {};
      for (const [key, value] of Object.entries(incoming)) {
        if (include !== undefined && !include.some((re) => re.test(key))) continue;
        if (exclude.some((re) => re.test(key))) continue;
        kept[key] = value;
      }
      return kept;
    },
  };
}

function wildcard(pattern: string): RegExp {
  const source = pattern
    .replace(/[.+^${}()|[\]\\]/g, "\\$&")
    .replace(/\*/g, ".*")
    .replace(/\?/g, ".");
  return new RegExp(`^${source}$`);
}

// ---------------------------------------------------------------------------------------------
// OTEL_* environment variables

const PROTOCOLS = ["http/protobuf", "http/json", "grpc"];

/**
 * OTEL_METRICS_EXPORTER and OTEL_EXPORTER_OTLP_*. Unlike the specification's default (`otlp`),
 * nothing is pushed unless OTEL_METRICS_EXPORTER says `otlp` or an OTLP endpoint variable is set:
 * the service's main output is its pull endpoint, and a push to a collector nobody runs would
 * only log failures.
 */
function fromEnvironment(env: NodeJS.ProcessEnv, opts: ReaderOptions): PushConfig {
  const { logger } = opts;
  const fail = (envVar: string, problem: string): never => {
    throw new ConfigError(problem, { envVar, value: printable(envVar, env[envVar]) });
  };
  const resource = environmentResource(env, fail);
  if (/^true$/i.test(env.OTEL_SDK_DISABLED?.trim() ?? "")) return noPush(resource);

  const exporters = (env.OTEL_METRICS_EXPORTER ?? "")
    .split(",")
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s !== "");
  for (const name of exporters) {
    if (name === "prometheus") {
      logger.warn(
        "OTEL_METRICS_EXPORTER=prometheus ignored: serve-metrics serves pull (Prometheus) metrics itself, on metrics_address",
      );
    } else if (name !== "otlp" && name !== "none") {
      fail(
        "OTEL_METRICS_EXPORTER",
        `${JSON.stringify(name)} is not supported; use otlp or none (prometheus: see metrics_address)`,
      );
    }
  }
  const endpointSet =
    nonBlank(env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) !== undefined ||
    nonBlank(env.OTEL_EXPORTER_OTLP_ENDPOINT) !== undefined;
  const push =
    exporters.length === 0 ? endpointSet : exporters.includes("otlp") && !exporters.includes("none");
  if (!push) return noPush(resource);

  const factoryEnv = checkedOtlpEnvironment(env, fail);
  // The library builds the model from process.env only; see parseConfigFile for why it is swapped.
  const model = withProcessEnv(factoryEnv, () => createConfigFactory().getConfigModel());
  const periodic = model.meter_provider?.readers[0]?.periodic;
  if (periodic === undefined)
    throw new Error("@opentelemetry/configuration built no periodic reader from OTEL_METRICS_EXPORTER=otlp");
  // The variables were checked above, so this only fires on a combination the checks missed.
  const unexpected: Fail = (problem, key, value) => {
    const shown =
      value === undefined ? "" : ` ${JSON.stringify(typeof value === "string" ? redactUrl(value) : value)}`;
    throw new ConfigError(`OTLP settings from the environment: ${key ?? ""}${shown} ${problem}`);
  };
  const built = periodicReader(periodic, "meter_provider.readers[0].periodic", unexpected, opts);
  return {
    readers: [built.reader],
    views: [],
    resource,
    describe: [built.describe],
    exponential: built.exponential === undefined ? [] : [built.exponential],
  };
}

/**
 * Checks the OTLP variables the library would silently drop or misread, and returns the
 * environment to give it: OTEL_METRICS_EXPORTER=otlp, the temporality spelled as it expects.
 */
function checkedOtlpEnvironment(
  env: NodeJS.ProcessEnv,
  fail: (envVar: string, problem: string) => never,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env, OTEL_METRICS_EXPORTER: "otlp" };
  const check = (name: string, test: (value: string) => boolean, expected: string): void => {
    const value = nonBlank(env[name]);
    if (value !== undefined && !test(value.trim()))
      fail(name, `${JSON.stringify(printable(name, value))} is not ${expected}`);
  };
  const protocol =
    nonBlank(env.OTEL_EXPORTER_OTLP_METRICS_PROTOCOL) ?? nonBlank(env.OTEL_EXPORTER_OTLP_PROTOCOL);
  const transport = protocol?.trim() === "grpc" ? "grpc" : "http";
  for (const scope of ["", "METRICS_"]) {
    check(
      `OTEL_EXPORTER_OTLP_${scope}PROTOCOL`,
      (v) => PROTOCOLS.includes(v),
      `one of ${PROTOCOLS.join(", ")}`,
    );
    check(`OTEL_EXPORTER_OTLP_${scope}ENDPOINT`, isHttpUrl, "an http:// or https:// URL");
    check(`OTEL_EXPORTER_OTLP_${scope}TIMEOUT`, isMilliseconds, "a whole number of milliseconds");
    check(`OTEL_EXPORTER_OTLP_${scope}COMPRESSION`, (v) => v === "gzip" || v === "none", "one of gzip, none");
    // Headers carry secrets: the problem names the header, never the value or the variable's text.
    const headersVar = `OTEL_EXPORTER_OTLP_${scope}HEADERS`;
    const headers = nonBlank(env[headersVar]);
    if (headers !== undefined) {
      const parsed = parseKeyValueList(headers, "header");
      const problem = typeof parsed === "string" ? parsed : checkHeaders(parsed, transport);
      if (problem !== undefined) fail(headersVar, problem);
    }
    for (const file of ["CERTIFICATE", "CLIENT_KEY", "CLIENT_CERTIFICATE"]) {
      const name = `OTEL_EXPORTER_OTLP_${scope}${file}`;
      check(name, isReadable, "a readable file");
      // Same limit as otlp_grpc.tls in the file (see otlpGrpc).
      if (protocol?.trim() === "grpc" && nonBlank(env[name]) !== undefined) {
        fail(
          name,
          "is not supported with grpc (gRPC over https uses the system's trusted CAs); use http/protobuf",
        );
      }
    }
  }
  check(
    "OTEL_METRIC_EXPORT_INTERVAL",
    (v) => isMilliseconds(v) && Number(v) > 0,
    "a whole number of milliseconds above 0",
  );
  check("OTEL_METRIC_EXPORT_TIMEOUT", isMilliseconds, "a whole number of milliseconds");
  // The specification spells it `lowmemory`; the library only knows the file's `low_memory` and
  // silently falls back to cumulative on anything else.
  const temporality = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE";
  const preference = nonBlank(env[temporality])?.trim().toLowerCase();
  if (preference !== undefined) {
    const normalized = preference === "lowmemory" ? "low_memory" : preference;
    if (!(normalized in TEMPORALITY))
      fail(temporality, `${JSON.stringify(env[temporality])} is not one of cumulative, delta, lowmemory`);
    out[temporality] = normalized;
  }
  // The library appends "/v1/metrics" to the base endpoint as text; a trailing slash would double it.
  const base = nonBlank(env.OTEL_EXPORTER_OTLP_ENDPOINT)?.trim();
  if (base !== undefined) {
    out.OTEL_EXPORTER_OTLP_ENDPOINT = base.replace(/\/+$/, "");
    // Appended as text, the path would land after a query (`?api_key=k/v1/metrics`): for a base
    // with a query, the HTTP endpoint is made here, with the path where a path goes.
    if (
      /[?#]/.test(base) &&
      transport === "http" &&
      nonBlank(env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) === undefined
    ) {
      const url = new URL(base);
      url.pathname = `${url.pathname.replace(/\/+$/, "")}/v1/metrics`;
      out.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = url.href;
    }
  }
  return out;
}

/** OTEL_RESOURCE_ATTRIBUTES (percent-decoded, as the specification says) and OTEL_SERVICE_NAME, which wins. */
function environmentResource(
  env: NodeJS.ProcessEnv,
  fail: (envVar: string, problem: string) => never,
): Attributes {
  const attributes: Attributes = {};
  const list = nonBlank(env.OTEL_RESOURCE_ATTRIBUTES);
  if (list !== undefined) {
    const parsed = parseKeyValueList(list, "attribute");
    if (typeof parsed === "string") fail("OTEL_RESOURCE_ATTRIBUTES", parsed);
    Object.assign(attributes, parsed);
  }
  const serviceName = nonBlank(env.OTEL_SERVICE_NAME);
  if (serviceName !== undefined) attributes["service.name"] = serviceName;
  return attributes;
}

// ---------------------------------------------------------------------------------------------
// Helpers

/** Runs `fn` with `process.env` replaced by `env`; see the callers for why. */
function withProcessEnv<T>(env: NodeJS.ProcessEnv, fn: () => T): T {
  const saved = process.env;
  process.env = env;
  try {
    return fn();
  } finally {
    process.env = saved;
  }
}

/**
 * What an error may quote of a variable's value: nothing of a header list, an endpoint with its
 * user information and query masked, any other value as it is.
 */
function printable(envVar: string, value: string | undefined): string | undefined {
  if (value === undefined || /_HEADERS$/.test(envVar)) return undefined;
  return /_ENDPOINT$/.test(envVar) ? redactUrl(value) : value;
}

/** A millisecond setting: the default when absent, else a whole number ≥ 0 a timer can hold. */
function milliseconds(value: number | null | undefined, fallback: number, key: string, fail: Fail): number {
  if (value == null) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > MAX_TIMER_MS) {
    fail(`must be a whole number of milliseconds from 0 to ${MAX_TIMER_MS}`, key, value);
  }
  return value;
}

/** Refuses what is not an http(s) URL, quoting it with its user information and query masked. */
function checkUrl(url: string, key: string, fail: Fail): void {
  if (!isHttpUrl(url)) fail("is not an http:// or https:// URL", key, redactUrl(url));
}

function isHttpUrl(text: string): boolean {
  try {
    const { protocol } = new URL(text);
    return protocol === "http:" || protocol === "https:";
  } catch {
    return false;
  }
}

function isMilliseconds(text: string): boolean {
  return /^\d+$/.test(text) && Number(text) <= MAX_TIMER_MS;
}

function isReadable(path: string): boolean {
  try {
    readFileSync(path);
    return true;
  } catch {
    return false;
  }
}

function nonBlank(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function oneLine(text: string): string {
  return (text.split("\n")[0] ?? text).trim().replace(/:$/, "");
}
