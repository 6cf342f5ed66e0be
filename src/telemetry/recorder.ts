import type { Attributes } from "@opentelemetry/api";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../catalog/types.js";
import type { Logger } from "../log.js";
import type { GpuSample } from "../sources/gpu.js";
import type { HostSample } from "../sources/host.js";
import {
  INFERENCE_ERRORS,
  INFERENCE_RESPONSES,
  QUEUE_DEPTH,
  REJECTED_LINES,
  REQUEST_DURATION,
  STATUS_CLASSES,
  statusClass,
  type ErrorReason,
} from "./extra-metrics.js";
import type { GaugeHistogram } from "./gauge-histograms.js";
import { LIFECYCLE_INSTRUMENT_NAMES } from "./lifecycle-metrics.js";
import type { CatalogInstrument } from "./instruments.js";
import type { ExemplarTarget, PendingExemplars } from "./pending-exemplars.js";
import type { PendingSeries, PendingUpdates } from "./pending-updates.js";

/** A metric update that cannot be applied; says which metric and why. */
export class MetricRecordError extends Error {
  constructor(
    readonly metric: string,
    readonly reason: string,
  ) {
    super(`${metric}: ${reason}`);
    this.name = "MetricRecordError";
  }
}

/** One applied update, for listeners such as the log-mode writer. */
export interface RecordEvent {
  definition: MetricDefinition;
  value: number;
  attributes: Attributes;
  /** The request a backend metric line named, if any. */
  requestId: string | undefined;
  /** The unit word the line was written with, if it came from a line (TorchServe logs that one). */
  unit: string | undefined;
}

/** Where an update came from, when it came from a `[METRICS]` line. */
export interface LineContext {
  requestId?: string | undefined;
  unit?: string | undefined;
}

/** One inference request as the frontend saw it. Times in milliseconds. */
export interface InferenceRecord {
  model: string;
  /** The version the request named; `default` when it named none. */
  version?: string | undefined;
  /** HTTP status sent to the client; undefined when it left before one was sent (no response is counted). */
  status: number | undefined;
  /** Arrival to response. */
  latencyMs: number;
  /** Arrival to dispatch to a worker; 0 if there was no queue. */
  queueMs?: number | undefined;
  /** Time the worker itself spent; the rest of dispatch-to-response is WorkerThreadTime. */
  backendMs?: number | undefined;
  /**
   * Why it failed, counted in serve_inference_errors_total; undefined: `client_closed` when no
   * status was sent, `worker_error` for a status of 500 or more (the server's own), else no error.
   */
  reason?: ErrorReason | undefined;
  /**
   * The W3C trace context the request came with (see parseTraceparent): its latency and response
   * get it as an exemplar `{trace_id, span_id}`.
   */
  trace?: TraceContext | undefined;
}

/** The ids of a W3C `traceparent`, lowercase hex. */
export interface TraceContext {
  /** 32 hex digits. */
  traceId: string;
  /** 16 hex digits: the caller's span, the parent of whatever the request does. */
  spanId: string;
}

/**
 * One access-log line of a followed TorchServe for a model request. Times in milliseconds. Its
 * Requests2XX/4XX/5XX and ts_* counters are not recorded from it: TorchServe's own metric lines
 * count those.
 */
export interface AccessRecord {
  model: string;
  /** The version the URI named; `default` when it named none. */
  version: string;
  /** The HTTP status TorchServe sent. */
  status: number;
  /** The line's time from the full request to the response. */
  latencyMs: number;
  /** The followed TorchServe's hostname; default this service's. */
  hostname?: string | undefined;
}

/** A gauge's histogram (see {@link GaugeHistogram}) bound to its instrument. */
export interface BoundGaugeHistogram {
  spec: GaugeHistogram;
  instrument: CatalogInstrument;
}

/** A model worker becoming ready. */
export interface WorkerLoadRecord {
  /** `W-<port>-<model>_<version>`, see {@link workerName}. */
  workerName: string;
  loadTimeMs: number;
}

/** TorchServe's worker name: `W-<port>-<model>_<version>`. */
export function workerName(port: number, model: string, version: string): string {
  return `W-${port}-${model}_${version}`;
}

/** One series of one instrument, its attributes resolved once; its exemplars wait with it. */
type BoundSeries = PendingSeries & { exemplars?: ExemplarTarget | undefined };

/** A series of the service's own metrics, bound once by {@link MetricRecorder.ownSeries}. */
export type OwnSeries = PendingSeries;

/** A series a metric line writes, bound once by {@link MetricRecorder.bindLine}. */
export type LineSeries = PendingSeries;

/** What recordInference records per model version besides the response classes, in this order. */
const INFERENCE_METRICS = [
  "ts_inference_requests_total",
  "ts_inference_latency_microseconds",
  "ts_queue_latency_microseconds",
  "QueueTime",
  "WorkerThreadTime",
  REQUEST_DURATION,
] as const;

/** The series of one model version, resolved on its first request. */
interface ModelSeries {
  requests: BoundSeries | undefined;
  latency: BoundSeries | undefined;
  queue: BoundSeries | undefined;
  queueTime: BoundSeries | undefined;
  workerThread: BoundSeries | undefined;
  duration: BoundSeries | undefined;
  /** serve_inference_responses_total by status class: 2XX, 4XX, 5XX. */
  responses: Readonly<Record<(typeof STATUS_CLASSES)[number], BoundSeries | undefined>>;
  /** serve_inference_errors_total by reason, bound on the first error of each (not started at 0). */
  errors: Map<ErrorReason, BoundSeries | undefined>;
}

/**
 * TorchServe's frontend and system metrics (its default catalog's `ts_metrics`): TorchServe's
 * frontend writes these and no others, in any version, and so does the service's.
 */
export const TORCHSERVE_FRONTEND_METRICS: ReadonlySet<string> = new Set([
  "Requests2XX",
  "Requests4XX",
  "Requests5XX",
  ...INFERENCE_METRICS.filter((name) => name !== REQUEST_DURATION),
  "WorkerLoadTime",
  "CPUUtilization",
  "MemoryUsed",
  "MemoryAvailable",
  "MemoryUtilization",
  "DiskUsage",
  "DiskAvailable",
  "DiskUtilization",
  "GPUUtilization",
  "GPUMemoryUsed",
  "GPUMemoryUtilization",
]);

/**
 * Every metric the service writes itself: the frontend's, the host's and GPUs', and its own
 * serve_* metrics. A `[METRICS]` line never writes or auto-detects one of these names, even where a
 * custom catalog dropped it.
 */
export const SERVICE_METRICS: ReadonlySet<string> = new Set([
  ...TORCHSERVE_FRONTEND_METRICS,
  REQUEST_DURATION,
  INFERENCE_RESPONSES,
  INFERENCE_ERRORS,
  QUEUE_DEPTH,
  REJECTED_LINES,
  ...Object.keys(LIFECYCLE_INSTRUMENT_NAMES),
]);

/** Why a `[METRICS]` line was not applied: the `reason` label of serve_metric_lines_rejected_total. */
export type RejectedLineReason =
  /** Not a metric line (the parser's reason says why). */
  | "malformed"
  /** A metric the catalog does not declare, auto-detection off or full. */
  | "undeclared"
  /** A metric lines may not write: a frontend, system or serve_* metric. */
  | "forbidden"
  /** A label value longer than max_label_value_length. */
  | "oversized"
  /** Anything else the metric cannot take: a label it lacks or reserves, a value it refuses. */
  | "invalid";

/**
 * The largest magnitude a counter increment or histogram observation may have. Totals are sums of
 * updates, so with each update this bounded a total stays finite for more than 10^292 updates;
 * one unbounded update (1e308) twice would leave a counter or a histogram's sum at ±Inf for good.
 */
export const MAX_ACCUMULATED_UPDATE = Number.MAX_SAFE_INTEGER;

/** Model versions whose series recordInference keeps resolved. */
const MAX_CACHED_MODELS = 1000;
/** Gauge-histogram series whose exemplar targets are kept (started over when full). */
const MAX_GAUGE_EXEMPLAR_SERIES = 10_000;

/**
 * Records into the catalog's instruments. Labels are bound by name and written in catalog order;
 * the frontend's own metrics fill their labels from context, so a custom catalog may drop a
 * metric (it is then not recorded) but not ask for a label the frontend cannot know.
 */
export class MetricRecorder {
  private readonly warned = new Set<string>();
  private readonly listeners: ((event: RecordEvent) => void)[] = [];
  /** Resolved series of recordInference and recordAccess by model and version, and of recordResponse by family. */
  private readonly inference = new Map<string, ModelSeries>();
  private readonly responses = new Map<string, BoundSeries | null>();
  /** Series bound by bindLine, by metric and label values. */
  private readonly lineSeries = new Map<string, LineSeries>();
  /** Exemplar targets of gauge-histogram series, by histogram, model and host. */
  private readonly gaugeExemplars = new Map<string, ExemplarTarget>();

  constructor(
    private readonly instruments: ReadonlyMap<string, CatalogInstrument>,
    private readonly hostname: string,
    private readonly logger: Logger,
    /** Where the service's own counter and gauge series wait for the next collection. */
    private readonly pending: PendingUpdates,
    /**
     * By gauge name, the histogram every value of the gauge is also observed into; the pipeline
     * adds to it when an auto-detected gauge gets one.
     */
    private readonly gaugeHistograms: ReadonlyMap<string, BoundGaugeHistogram> = new Map(),
    /**
     * Whether recordInference counts its response in Requests2XX/4XX/5XX; false next to a
     * followed TorchServe, whose own lines count its responses.
     */
    private readonly inferenceResponses = true,
    /**
     * Whether {@link modelKnown} also starts the ts_* counters at zero (`torchserve_zero_series`);
     * TorchServe prints them only from a model's first request.
     */
    private readonly torchServeZeroSeries = false,
    /**
     * Where exemplars wait for the scrape that shows them; none (exemplars are not kept) where
     * nothing can show them.
     */
    private readonly exemplars?: PendingExemplars,
  ) {}

  /**
   * Hears every update accepted from now on, when it is recorded (a pending one reaches the SDK
   * at the next collection).
   */
  addListener(listener: (event: RecordEvent) => void): void {
    this.listeners.push(listener);
  }

  /** The declaration of `name`, if the catalog (or a run-time registration) has one. */
  definition(name: string): MetricDefinition | undefined {
    return this.instruments.get(name)?.definition;
  }

  /**
   * Records a catalog metric by name: counters add, gauges set, histograms observe. `Hostname`
   * (or `hostname`) defaults to this host. Throws {@link MetricRecordError} on an unknown metric,
   * a missing or undeclared dimension, or a value the metric cannot take.
   */
  record(
    name: string,
    value: number,
    dimensions: Readonly<Record<string, string>> = {},
    line: LineContext = {},
  ): void {
    const instrument = this.declared(name);
    checkValue(instrument.definition, value);
    this.apply(instrument, value, this.attributesOf(instrument, dimensions), line);
  }

  /**
   * The series a metric line writes, checked as {@link record} checks its name and dimensions, for
   * {@link recordLine}. Lines naming the same labels get the same series object, whatever the
   * order of their dimensions, so that a gauge's updates stay in order.
   * @throws MetricRecordError on an unknown metric, a missing or undeclared dimension.
   */
  bindLine(name: string, dimensions: Readonly<Record<string, string>>): LineSeries {
    const instrument = this.declared(name);
    const attributes = this.attributesOf(instrument, dimensions);
    let key = name;
    for (const dim of instrument.definition.dimensions) key += `\u0000${String(attributes[dim])}`;
    let series = this.lineSeries.get(key);
    if (series === undefined) {
      // Callers bound how many series they bind (MetricLineIngest caches at most a few thousand).
      series = { instrument, attributes: Object.freeze(attributes), pending: 0, dirty: false, total: 0 };
      if (instrument.definition.type !== "gauge") this.pending.track(series);
      this.lineSeries.set(key, series);
    }
    return series;
  }

  /**
   * Records into a series from {@link bindLine} as {@link record} would: counters add, gauges set,
   * histograms observe. Counters and gauges wait for the next collection, like the frontend's own
   * series, which spares the SDK's hashing of the attributes on every line.
   * @throws MetricRecordError on a value the metric cannot take.
   */
  recordLine(series: LineSeries, value: number, line: LineContext = {}): void {
    checkValue(series.instrument.definition, value);
    this.recordInto(series, value, line);
  }

  /**
   * Sets a gauge series from {@link bindLine} to a value it held before this service started
   * (read back from a log): no listener hears it and no histogram observes it, since it is no new
   * update. Ignored for a counter or histogram, whose history must not be counted.
   */
  primeGauge(series: LineSeries, value: number): void {
    if (series.instrument.definition.type !== "gauge" || !Number.isFinite(value)) return;
    this.pending.set(series, value);
  }

  private declared(name: string): CatalogInstrument {
    const instrument = this.instruments.get(name);
    if (instrument === undefined) throw new MetricRecordError(name, "not declared in the metrics catalog");
    return instrument;
  }

  /** The attributes of an update: each declared dimension from `dimensions` (Hostname: this host). */
  private attributesOf(
    instrument: CatalogInstrument,
    dimensions: Readonly<Record<string, string>>,
  ): Attributes {
    const def = instrument.definition;
    const name = def.name;
    const attributes: Attributes = {};
    for (const dim of def.dimensions) {
      // Own properties only: a dimension named `constructor` or `toString` that the caller left
      // out must be missing, not Object.prototype's function (which no exporter can render).
      const given =
        (Object.hasOwn(dimensions, dim) ? dimensions[dim] : undefined) ??
        (dim === "Hostname" || dim === "hostname" ? this.hostname : undefined);
      if (given === undefined) throw new MetricRecordError(name, `dimension ${dim} is missing`);
      attributes[dim] = given;
    }
    for (const dim of Object.keys(dimensions)) {
      if (!def.dimensions.includes(dim)) {
        throw new MetricRecordError(
          name,
          `dimension ${dim} is not declared (declared: ${def.dimensions.join(", ")})`,
        );
      }
    }
    return attributes;
  }

  /** Counts one HTTP response in Requests2XX, Requests4XX or Requests5XX. */
  recordResponse(status: number): void {
    const family = `Requests${statusClass(status)}`;
    let series = this.responses.get(family);
    if (series === undefined) {
      series = this.bind(family, { Level: "Host" }) ?? null;
      this.responses.set(family, series);
    }
    this.recordBound(series ?? undefined, 1);
  }

  /**
   * Records one inference request: its response class (host-wide and per model), the ts_*
   * counters, the frontend gauges and serve_request_duration_seconds.
   */
  recordInference(r: InferenceRecord): void {
    const queueMs = r.queueMs ?? 0;
    const series = this.modelSeries(r.model, r.version ?? "default");
    if (r.status !== undefined) {
      if (this.inferenceResponses) this.recordResponse(r.status);
      this.recordBound(series.responses[statusClass(r.status)], 1);
    }
    const reason =
      r.reason ?? (r.status === undefined ? "client_closed" : r.status >= 500 ? "worker_error" : undefined);
    if (reason !== undefined) this.recordBound(this.errorSeries(series, r, reason), 1);
    this.recordBound(series.requests, 1);
    this.recordBound(series.latency, r.latencyMs * 1000);
    this.recordBound(series.queue, queueMs * 1000);
    this.recordBound(series.queueTime, queueMs);
    this.recordBound(series.workerThread, Math.max(0, r.latencyMs - queueMs - (r.backendMs ?? 0)));
    this.recordBound(series.duration, r.latencyMs / 1000);
    if (r.trace !== undefined && this.exemplars !== undefined) {
      // 63 characters: within OpenMetrics' 128 for an exemplar's labels, whatever the ids.
      const labels = { trace_id: r.trace.traceId, span_id: r.trace.spanId };
      const now = Date.now();
      this.offerExemplar(series.duration, labels, r.latencyMs / 1000, now);
      if (r.status !== undefined) this.offerExemplar(series.responses[statusClass(r.status)], labels, 1, now);
    }
  }

  /** Keeps an exemplar of a bound counter or histogram series for the next scrape. */
  private offerExemplar(
    series: BoundSeries | undefined,
    labels: Readonly<Record<string, string>>,
    value: number,
    timestampMs: number,
  ): void {
    // The SDK drops what is not a finite, non-negative value: no exemplar for an uncounted one.
    if (series === undefined || this.exemplars === undefined || !(value >= 0 && value < Infinity)) return;
    const def = series.instrument.definition;
    series.exemplars ??= {
      family: def.name,
      attributes: series.attributes,
      boundaries: def.type === "histogram" ? (def.buckets ?? DEFAULT_BUCKETS) : [],
      slots: undefined,
    };
    this.exemplars.offer(series.exemplars, labels, value, timestampMs, true);
  }

  /** The serve_inference_errors_total series of a model version and reason, bound on first use. */
  private errorSeries(series: ModelSeries, r: InferenceRecord, reason: ErrorReason): BoundSeries | undefined {
    if (series.errors.has(reason)) return series.errors.get(reason);
    const bound = this.bind(INFERENCE_ERRORS, {
      model_name: r.model,
      model_version: r.version ?? "default",
      reason,
    });
    series.errors.set(reason, bound);
    return bound;
  }

  /**
   * Records one access-log line of a followed TorchServe: serve_request_duration_seconds and the
   * per-model response class. A 404 is left out: TorchServe answers it for models it does not
   * serve, and a name taken from a client's URI must not make series (the frontend does the same).
   */
  recordAccess(r: AccessRecord): void {
    if (r.status === 404) return;
    const series = this.modelSeries(r.model, r.version, r.hostname);
    this.recordBound(series.responses[statusClass(r.status)], 1);
    this.recordBound(series.duration, r.latencyMs / 1000);
  }

  /**
   * A model version is known (configured in the frontend, or shown by a followed TorchServe, on
   * its `hostname`): its serve_inference_responses_total series (each status class) and
   * serve_request_duration_seconds exist from now on at zero, so that `rate()` reads 0 before the
   * first request instead of nothing; with `torchserve_zero_series` the ts_* counters too. Calling
   * it again does nothing.
   */
  modelKnown(model: string, version: string, hostname = this.hostname): void {
    this.modelSeries(model, version, hostname);
  }

  /** The series of one model version on one host, resolved when it is first known (and zeroed then). */
  private modelSeries(model: string, version: string, hostname = this.hostname): ModelSeries {
    const key =
      hostname === this.hostname ? `${model}\u0000${version}` : `${model}\u0000${version}\u0000${hostname}`;
    let series = this.inference.get(key);
    if (series === undefined) {
      const context = {
        model_name: model,
        model_version: version,
        ModelName: model,
        Level: "Host",
        hostname,
        Hostname: hostname,
      };
      const [requests, latency, queue, queueTime, workerThread, duration] = INFERENCE_METRICS.map((name) =>
        this.bind(name, context),
      );
      const response = (status_class: string): BoundSeries | undefined =>
        this.bind(INFERENCE_RESPONSES, { ...context, status_class });
      series = {
        requests,
        latency,
        queue,
        queueTime,
        workerThread,
        duration,
        responses: { "2XX": response("2XX"), "4XX": response("4XX"), "5XX": response("5XX") },
        errors: new Map(),
      };
      // Models come from configuration, but the public API takes any name: keep the cache bounded.
      if (this.inference.size >= MAX_CACHED_MODELS) this.inference.clear();
      this.inference.set(key, series);
      for (const zero of [series.duration, ...Object.values(series.responses)]) this.startAtZero(zero);
      if (this.torchServeZeroSeries) for (const zero of [requests, latency, queue]) this.startAtZero(zero);
    }
    return series;
  }

  /**
   * Makes a counter or histogram series exist with nothing counted: a counter gets 0 added, a
   * histogram a NaN observation, which the SDK's (explicit and exponential) histograms drop after
   * creating the series, so it shows with every bucket, its count and its sum at 0.
   */
  private startAtZero(series: BoundSeries | undefined): void {
    if (series === undefined) return;
    const type = series.instrument.definition.type;
    if (type === "counter") this.pending.add(series, 0);
    else if (type === "histogram") series.instrument.record(Number.NaN, series.attributes);
  }

  /** Sets how many requests for `model` wait for a worker. */
  recordQueueDepth(model: string, depth: number): void {
    this.recordBuiltin(QUEUE_DEPTH, depth, { model_name: model });
  }

  /** Counts a `[METRICS]` line that was not applied, by where it came from and why. */
  recordRejectedLine(source: string, reason: RejectedLineReason): void {
    this.recordBuiltin(REJECTED_LINES, 1, { source, reason });
  }

  /** Records how long a worker took to become ready. */
  recordWorkerLoad(r: WorkerLoadRecord): void {
    this.recordBuiltin("WorkerLoadTime", r.loadTimeMs, { WorkerName: r.workerName, Level: "Host" });
  }

  /** Records a host reading and GPU readings (DeviceId = the GPU's index). */
  recordSystem(host: HostSample | undefined, gpus: readonly GpuSample[]): void {
    const context = { Level: "Host" };
    if (host !== undefined) {
      if (host.cpuUtilization !== undefined)
        this.recordBuiltin("CPUUtilization", host.cpuUtilization, context);
      this.recordBuiltin("MemoryUsed", host.memoryUsedMiB, context);
      this.recordBuiltin("MemoryAvailable", host.memoryAvailableMiB, context);
      this.recordBuiltin("MemoryUtilization", host.memoryUtilization, context);
      this.recordBuiltin("DiskUsage", host.diskUsedGiB, context);
      this.recordBuiltin("DiskAvailable", host.diskAvailableGiB, context);
      this.recordBuiltin("DiskUtilization", host.diskUtilization, context);
    }
    for (const gpu of gpus) {
      const device = { Level: "Host", DeviceId: String(gpu.index) };
      if (gpu.utilization !== undefined) this.recordBuiltin("GPUUtilization", gpu.utilization, device);
      if (gpu.memoryUsedMiB !== undefined) this.recordBuiltin("GPUMemoryUsed", gpu.memoryUsedMiB, device);
      if (gpu.memoryUtilization !== undefined)
        this.recordBuiltin("GPUMemoryUtilization", gpu.memoryUtilization, device);
    }
  }

  /**
   * A series of one of the service's own counters or gauges, its labels taken from `context`
   * (hostname defaults to this host), for {@link recordOwn}; undefined when the catalog dropped it.
   */
  ownSeries(name: string, context: Readonly<Record<string, string>>): OwnSeries | undefined {
    return this.bind(name, context);
  }

  /**
   * Adds to (counter) or sets (gauge) a series from {@link ownSeries}; it reaches the SDK at the
   * next collection. Not handed to listeners: the log-mode files keep TorchServe's metrics only.
   */
  recordOwn(series: OwnSeries, value: number): void {
    if (!this.accepts(series.instrument, value)) return;
    if (series.instrument.definition.type === "counter") this.pending.add(series, value);
    else if (series.instrument.definition.type === "gauge") this.pending.set(series, value);
  }

  /** Records one of the service's own metrics, taking each declared label from `context`. */
  private recordBuiltin(name: string, value: number, context: Readonly<Record<string, string>>): void {
    const series = this.bind(name, context, false);
    if (series !== undefined && this.accepts(series.instrument, value)) {
      this.apply(series.instrument, value, series.attributes, {});
    }
  }

  /**
   * The instrument and attributes of one of the service's own series, each declared label taken
   * from `context`; undefined (warned about once) when the catalog dropped the metric or asks for
   * a label the service cannot fill. A counter or histogram series is tracked (its running total
   * kept, see {@link PendingUpdates.track}) unless `track` is false: a series bound for one update.
   */
  private bind(
    name: string,
    context: Readonly<Record<string, string>>,
    track = true,
  ): BoundSeries | undefined {
    const instrument = this.instruments.get(name);
    if (instrument === undefined) return undefined; // dropped from a custom catalog: not exposed
    const attributes: Attributes = {};
    for (const dim of instrument.definition.dimensions) {
      const v =
        (Object.hasOwn(context, dim) ? context[dim] : undefined) ??
        (dim === "Hostname" || dim === "hostname" ? this.hostname : undefined);
      if (v === undefined) {
        this.warnOnce(
          name,
          `${name}: not recorded, the catalog asks for dimension ${dim} which serve-metrics cannot fill`,
        );
        return undefined;
      }
      attributes[dim] = v;
    }
    // Shared by every update of the series, and handed to listeners: nobody may change it.
    const series: BoundSeries = {
      instrument,
      attributes: Object.freeze(attributes),
      pending: 0,
      dirty: false,
      total: 0,
      exemplars: undefined,
    };
    if (track && instrument.definition.type !== "gauge") this.pending.track(series);
    return series;
  }

  /**
   * Records into a series bound once and kept (so each one waits in {@link PendingUpdates} at
   * most once): counters and gauges wait for the next collection, histograms go straight in.
   */
  private recordBound(series: BoundSeries | undefined, value: number): void {
    if (series === undefined || !this.accepts(series.instrument, value)) return;
    this.recordInto(series, value, {});
  }

  /** Counters and gauges wait in {@link PendingUpdates}, histograms go straight in. */
  private recordInto(series: BoundSeries, value: number, line: LineContext): void {
    const { instrument, attributes } = series;
    switch (instrument.definition.type) {
      case "counter":
        this.pending.add(series, value);
        break;
      case "gauge":
        this.pending.set(series, value);
        this.observeGauge(instrument, value, attributes, line.requestId);
        break;
      case "histogram":
        // The SDK drops a negative observation, so its running sum must not take it either.
        if (value >= 0) series.total += value;
        instrument.record(value, attributes);
    }
    this.notify(instrument, value, attributes, line);
  }

  /** Whether a builtin value fits its metric; warns once per metric when not. */
  private accepts(instrument: CatalogInstrument, value: number): boolean {
    if (Number.isFinite(value) && (instrument.definition.type !== "counter" || value >= 0)) return true;
    const name = instrument.definition.name;
    this.warnOnce(`${name}:value`, `${name}: dropped value ${value} (not a finite, allowed number)`);
    return false;
  }

  private apply(
    instrument: CatalogInstrument,
    value: number,
    attributes: Attributes,
    line: LineContext,
  ): void {
    // A gauge keeps its last value: one still waiting must not land after this newer one.
    if (this.pending.holdsGauge(instrument)) this.pending.flush();
    instrument.record(value, attributes);
    this.observeGauge(instrument, value, attributes, line.requestId);
    this.notify(instrument, value, attributes, line);
  }

  /**
   * Observes a gauge's value into its histogram, if the gauge has one: model_name from the gauge's
   * ModelName (or model_name), hostname from its Hostname (or hostname), the value in seconds for
   * a time gauge. Listeners do not hear it: it is derived, not a metric update of its own. The
   * line's TorchServe request id, if any, becomes its exemplar `{request_id}`.
   */
  private observeGauge(
    gauge: CatalogInstrument,
    value: number,
    attributes: Attributes,
    requestId: string | undefined,
  ): void {
    if (this.gaugeHistograms.size === 0 || gauge.definition.type !== "gauge") return;
    const bound = this.gaugeHistograms.get(gauge.definition.name);
    if (bound === undefined) return;
    const { spec, instrument } = bound;
    const observed = value / spec.divisor;
    // The SDK drops negative observations; a huge one would leave the histogram's sum infinite.
    if (!(observed >= 0 && observed <= MAX_ACCUMULATED_UPDATE)) {
      this.warnOnce(
        `${spec.definition.name}:value`,
        `${spec.definition.name}: ${gauge.definition.name} value ${value} not observed ` +
          `(a histogram takes values from 0 to ${MAX_ACCUMULATED_UPDATE})`,
      );
      return;
    }
    const host = attributes.Hostname ?? attributes.hostname ?? this.hostname;
    const histogramAttributes: Attributes =
      spec.modelDimension === undefined
        ? { hostname: host }
        : { model_name: attributes[spec.modelDimension], hostname: host };
    instrument.record(observed, histogramAttributes);
    if (requestId !== undefined && this.exemplars !== undefined) {
      this.exemplars.offer(
        this.gaugeExemplarTarget(spec, histogramAttributes),
        { request_id: requestId },
        observed,
      );
    }
  }

  /** The exemplar target of one gauge-histogram series, made on its first exemplar. */
  private gaugeExemplarTarget(spec: GaugeHistogram, attributes: Attributes): ExemplarTarget {
    const { name } = spec.definition;
    const key = `${name}\u0000${String(attributes.model_name)}\u0000${String(attributes.hostname)}`;
    let target = this.gaugeExemplars.get(key);
    if (target === undefined) {
      // Model names come from lines: keep the map bounded. A target already waiting still goes out.
      if (this.gaugeExemplars.size >= MAX_GAUGE_EXEMPLAR_SERIES) this.gaugeExemplars.clear();
      target = {
        family: name,
        attributes,
        boundaries: spec.definition.buckets ?? DEFAULT_BUCKETS,
        slots: undefined,
      };
      this.gaugeExemplars.set(key, target);
    }
    return target;
  }

  private notify(
    instrument: CatalogInstrument,
    value: number,
    attributes: Attributes,
    line: LineContext,
  ): void {
    for (const listener of this.listeners) {
      listener({
        definition: instrument.definition,
        value,
        attributes,
        requestId: line.requestId,
        unit: line.unit,
      });
    }
  }

  private warnOnce(key: string, message: string): void {
    if (this.warned.has(key)) return;
    this.warned.add(key);
    this.logger.warn(message);
  }
}

/** Throws unless `value` is one the metric can take (as {@link MetricRecorder.record} requires). */
function checkValue(def: MetricDefinition, value: number): void {
  const name = def.name;
  if (!Number.isFinite(value)) throw new MetricRecordError(name, `value ${value} is not a finite number`);
  if (def.type === "counter" && value < 0) {
    throw new MetricRecordError(name, `a counter cannot be decreased (value ${value})`);
  }
  if (def.type !== "gauge" && Math.abs(value) > MAX_ACCUMULATED_UPDATE) {
    throw new MetricRecordError(
      name,
      `value ${value} is beyond ±${MAX_ACCUMULATED_UPDATE}, the most one ${def.type} update may add ` +
        `(larger ones would soon make the total infinite)`,
    );
  }
}
