import type { MetricType } from "../catalog/types.js";
import type { Logger } from "../log.js";
import type { MetricRecorder } from "../telemetry/recorder.js";
import { modelOfAccess } from "./access-model.js";
import {
  MODEL_METRICS_ONLY,
  type IngestOutcome,
  type LinePermission,
  type LineSource,
  type MetricLineIngest,
} from "./metric-ingest.js";
import { classifyTorchServeLine, type AccessRecord, type TorchServeFile } from "./torchserve-line.js";

/**
 * What a record of TorchServe's frontend (TS_METRICS, ts_metrics.log) may write: any declared or
 * auto-detected metric but the service's own `serve_*` families. The frontend itself writes
 * Requests2XX, the `ts_*` counters, the host's and GPUs' metrics, WorkerLoadTime...
 */
export const TORCHSERVE_FRONTEND_RECORDS: LinePermission = (def) => !def.name.startsWith("serve_");

/** The outcome of one TorchServe record, and which kind it was (`malformed`: its kind was unclear). */
export type TorchServeIngestOutcome = IngestOutcome & { record: "metric" | "access" | "malformed" };

/** What {@link TorchServeLineIngest} needs. */
export interface TorchServeLineIngestOptions {
  /** Applies metric records (and counts rejected lines). */
  ingest: MetricLineIngest;
  recorder: Pick<MetricRecorder, "recordAccess">;
  /** Most model versions the access log may add series for; default 1000. */
  maxAccessModels?: number;
  /**
   * Whether TorchServe's `result=[METRICS]…` echoes reach this ingest (ts_log.log is followed, or
   * its console is read): a backend record of a metric whose type is not known yet then waits
   * up to `waitMs` for its echo. Default false: such a record gets the fallback type at once.
   */
  typesFollowed?: boolean;
  /**
   * How long backend records of a metric wait for its type, and access records of a model name
   * for TorchServe to show it as a model; default 5000 ms.
   */
  waitMs?: number;
  /**
   * The followed TorchServe's hostname (torchserve_hostname), which the access log's series carry;
   * default: the `hostname` of its first frontend or backend record (this service's until then).
   */
  hostname?: string | undefined;
  /** Longest model name or version the access log may make series for (max_label_value_length); default 1024. */
  maxLabelValueLength?: number;
  /** Where a type learned too late for its family is reported. */
  logger?: Logger;
}

/**
 * The type an auto-detected backend metric takes when TorchServe's record of its type never came:
 * a gauge, which shows each value as the line carries it (a counter would add up a gauge's values).
 */
export const FALLBACK_TYPE: MetricType = "gauge";
// Bounds on what waits for a type, and on the types kept.
const MAX_WAITING_LINES = 10_000;
const MAX_KNOWN_TYPES = 10_000;

/**
 * The model_name (and model_version) under which access records are counted for a name TorchServe
 * never showed as a model: no model's name is empty, so no real model's series can be taken.
 */
export const UNSERVED_MODEL = "";
// Model names kept as served, and access records waiting for their model to be shown.
const MAX_SERVED_MODELS = 10_000;
const MAX_WAITING_ACCESS = 1000;
// Where a frontend or backend record names a model: `model_name:m` (ts_* counters), `ModelName:m`
// (model metrics), `WorkerName:W-<port>-<model>_<version>` (WorkerLoadTime).
const MODEL_DIMS = ["|#model_name:", ",model_name:", "|#ModelName:", ",ModelName:"] as const;
const WORKER_DIMS = ["|#WorkerName:W-", ",WorkerName:W-"] as const;
const SEGMENT_MARK = "|#";
// As metric lines refuse them (see metric-line.ts): no exposition parser takes them raw.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Backend records of one metric waiting for its type, in arrival order. */
interface Waiting {
  lines: { payload: string; source: LineSource }[];
  timer: NodeJS.Timeout;
}

/**
 * Applies TorchServe's log lines with TorchServe's semantics: metric records go to the
 * {@link MetricLineIngest} (frontend records with {@link TORCHSERVE_FRONTEND_RECORDS}, backend
 * records and worker lines with model metrics only), access records to `recordAccess` per model
 * version, never to Requests2XX/4XX/5XX (TorchServe's own TS_METRICS lines count those). A broken
 * record is counted in serve_metric_lines_rejected_total as malformed and logged (bounded).
 */
export class TorchServeLineIngest {
  /** Model versions seen in the access log, in `model\0version` form. */
  private readonly models = new Set<string>();
  private readonly maxAccessModels: number;
  /** The type TorchServe gave each backend metric, from its echoes. */
  private readonly types = new Map<string, MetricType>();
  private readonly waiting = new Map<string, Waiting>();
  private waitingLines = 0;
  /** Metrics auto-detected with the fallback type before TorchServe's type was known. */
  private readonly fellBack = new Set<string>();
  /** Model names TorchServe has shown as models (its metric records, its model-loaded lines). */
  private readonly served = new Set<string>();
  /** Access records of names not shown as models yet, by name, in arrival order. */
  private readonly waitingAccess = new Map<
    string,
    { records: { access: AccessRecord; source: LineSource }[]; timer: NodeJS.Timeout }
  >();
  private waitingAccessCount = 0;
  private unservedNoted = false;
  /** TorchServe's hostname: configured, or learned from its first metric record. */
  private host: string | undefined;
  /** The hostname of the first frontend record, and whether a second one was reported. */
  private frontendHost: string | undefined;
  private secondHostWarned = false;
  /** TorchServe's metric interval, from the timestamps of its MemoryUsed records (one per burst). */
  private intervalMs: number | undefined;
  private lastBurstAt: number | undefined;
  /** While a look-back is read: the series live records set meanwhile, which it must not undo. */
  private primeSeen: Set<string> | undefined;

  constructor(private readonly options: TorchServeLineIngestOptions) {
    this.maxAccessModels = options.maxAccessModels ?? 1000;
    this.host = options.hostname;
  }

  /** Applies every record still waiting for its type, with the fallback type; no timer is left. */
  stop(): void {
    for (const name of [...this.waiting.keys()]) this.release(name, FALLBACK_TYPE);
    for (const model of [...this.waitingAccess.keys()]) this.releaseAccess(model, false);
  }

  /**
   * Applies one line; `hint` names the TorchServe file it was read from, if any. Undefined for a
   * line that is no record (another logger's, plain text).
   */
  apply(text: string, source: LineSource, hint?: TorchServeFile): TorchServeIngestOutcome | undefined {
    const line = classifyTorchServeLine(text, hint);
    switch (line.kind) {
      case "ignored":
        return undefined;
      case "malformed":
        return {
          ...this.options.ingest.rejectLine(source, "malformed", line.reason, text),
          record: "malformed",
        };
      case "metric": {
        if (line.origin === "worker") {
          return { ...this.options.ingest.apply(line.payload, source, MODEL_METRICS_ONLY), record: "metric" };
        }
        const outcome =
          line.origin === "model_metrics"
            ? this.applyBackendRecord(line.payload, source)
            : this.options.ingest.apply(line.payload, source, TORCHSERVE_FRONTEND_RECORDS);
        if (outcome.ok) {
          this.noteModels(line.payload);
          if (this.host === undefined) this.host = hostnameOf(line.payload);
          if (line.origin === "ts_metrics") this.watchFrontend(line.payload, source);
        }
        this.primeSeen?.add(seriesKey(line.payload));
        return { ...outcome, record: "metric" };
      }
      case "model":
        this.serve(line.model);
        return undefined;
      case "access":
        return { ...this.applyAccess(line.access, source, text), record: "access" };
      case "type":
        this.learn(line.name, line.type);
        return undefined;
    }
  }

  /**
   * A MODEL_METRICS record: TorchServe wrote it, so it accepted the metric, declared or
   * auto-detected; an undeclared one is auto-detected here too, as the type TorchServe gave it.
   * LogMetric leaves the type out of the record, so it comes from the echo, which may arrive
   * after the record (another file): the record then waits for it, with every later record of the
   * metric, and all are applied in order once the type is known, so no value is lost or given to
   * the wrong family. A type that never comes (no echo within waitMs) is {@link FALLBACK_TYPE}.
   */
  private applyBackendRecord(payload: string, source: LineSource): IngestOutcome {
    const { ingest } = this.options;
    const dot = payload.indexOf(".");
    const name = dot > 0 ? payload.slice(0, dot) : payload;
    if (ingest.declared(name) !== undefined) return ingest.apply(payload, source);
    const type = this.types.get(name);
    if (type !== undefined) return ingest.apply(payload, source, MODEL_METRICS_ONLY, type);
    if (this.options.typesFollowed !== true) return this.fallBack(name, payload, source);
    let waiting = this.waiting.get(name);
    if (waiting === undefined) {
      if (this.waitingLines >= MAX_WAITING_LINES) return this.fallBack(name, payload, source);
      const timer = setTimeout(() => this.release(name, FALLBACK_TYPE), this.options.waitMs ?? 5000);
      timer.unref();
      waiting = { lines: [], timer };
      this.waiting.set(name, waiting);
    } else if (this.waitingLines >= MAX_WAITING_LINES) {
      // Full: this metric's records wait no longer (its order kept), with the type it has by then.
      this.release(name, FALLBACK_TYPE);
      return this.fallBack(name, payload, source);
    }
    waiting.lines.push({ payload, source });
    this.waitingLines++;
    return { ok: true };
  }

  /** Notes the type TorchServe gave a backend metric, and applies its records waiting for it. */
  private learn(name: string, type: MetricType): void {
    const known = this.types.get(name);
    if (known === undefined && this.types.size < MAX_KNOWN_TYPES) this.types.set(name, type);
    if (this.waiting.has(name)) {
      this.release(name, type);
      return;
    }
    if (type !== FALLBACK_TYPE && this.fellBack.delete(name)) {
      this.options.logger?.warn(
        `TorchServe logs: ${name} is a ${type} in TorchServe, but its type was not known when its values ` +
          `came and it is shown as a ${FALLBACK_TYPE}; declare it as a ${type} in the metrics_config the ` +
          `sidecar reads (TorchServe's own metrics config)`,
      );
    }
  }

  /** Applies a record of a metric whose type is not known, as {@link FALLBACK_TYPE}. */
  private fallBack(name: string, payload: string, source: LineSource): IngestOutcome {
    this.noteFallBack(name);
    return this.options.ingest.apply(payload, source, MODEL_METRICS_ONLY, FALLBACK_TYPE);
  }

  private noteFallBack(name: string): void {
    if (this.fellBack.size < MAX_KNOWN_TYPES && this.options.ingest.declared(name) === undefined) {
      this.fellBack.add(name);
    }
  }

  /** Applies a metric's waiting records, in order, as `type`. */
  private release(name: string, type: MetricType): void {
    const waiting = this.waiting.get(name);
    if (waiting === undefined) return;
    clearTimeout(waiting.timer);
    this.waiting.delete(name);
    if (!this.types.has(name)) this.noteFallBack(name);
    this.waitingLines -= waiting.lines.length;
    for (const { payload, source } of waiting.lines) {
      this.options.ingest.apply(payload, source, MODEL_METRICS_ONLY, type);
    }
  }

  /**
   * Primes from what TorchServe wrote before this service started, as `read` gives it (each
   * file's last lines, oldest first): each gauge series takes the last value its records held,
   * unless a live record set it meanwhile; types, served models and the hostname are learned.
   * Counters and histograms are left alone: their history is not counted. Nothing is logged or
   * counted for the lines read back. Resolves with how many gauge series were primed.
   */
  async prime(read: () => Promise<{ file: TorchServeFile; lines: readonly string[] }[]>): Promise<number> {
    this.primeSeen = new Set();
    try {
      const files = await read();
      const last = new Map<string, { payload: string; origin: "ts_metrics" | "model_metrics" }>();
      // ts_log.log first: the types of auto-detected metrics and the models served.
      for (const { file, lines } of [...files].sort(
        (a, b) => Number(b.file === "ts_log") - Number(a.file === "ts_log"),
      )) {
        if (file === "access_log") continue;
        for (const text of lines) {
          const line = classifyTorchServeLine(text, file);
          if (line.kind === "type") this.learn(line.name, line.type);
          else if (line.kind === "model") this.serve(line.model);
          else if (line.kind === "metric" && line.origin !== "worker") {
            last.set(seriesKey(line.payload), { payload: line.payload, origin: line.origin });
          }
        }
      }
      let primed = 0;
      for (const [key, { payload, origin }] of last) {
        this.noteModels(payload);
        if (this.host === undefined) this.host = hostnameOf(payload);
        if (this.primeSeen.has(key)) continue;
        const permission = origin === "ts_metrics" ? TORCHSERVE_FRONTEND_RECORDS : MODEL_METRICS_ONLY;
        if (this.options.ingest.prime(payload, permission)) primed++;
      }
      return primed;
    } finally {
      this.primeSeen = undefined;
    }
  }

  /** TorchServe's metric_time_interval in milliseconds, once two bursts of host metrics showed it. */
  metricIntervalMs(): number | undefined {
    return this.intervalMs;
  }

  /**
   * Learns TorchServe's interval from its host-metric bursts, and warns once when a second
   * TorchServe (another hostname) writes the same files: their lines would be merged.
   */
  private watchFrontend(payload: string, source: LineSource): void {
    const host = hostnameOf(payload);
    if (host !== undefined) {
      this.frontendHost ??= host;
      if (host !== this.frontendHost && !this.secondHostWarned) {
        this.secondHostWarned = true;
        this.options.logger?.warn(
          `TorchServe logs (${source}): two TorchServes write these files, on hosts ${this.frontendHost} and ${host}; ` +
            "their counters are added together where their labels meet. Run one sidecar per TorchServe log " +
            "directory (give each TorchServe its own LOG_LOCATION and METRICS_LOCATION)",
        );
      }
    }
    if (!payload.startsWith("MemoryUsed.")) return;
    const at = payload.lastIndexOf(",timestamp:");
    const seconds = at < 0 ? NaN : Number(payload.slice(at + ",timestamp:".length));
    if (!Number.isFinite(seconds)) return;
    const ms = seconds * 1000;
    if (this.lastBurstAt !== undefined && ms > this.lastBurstAt) {
      const gap = ms - this.lastBurstAt;
      // The smallest gap: a burst TorchServe skipped (a failed GPU read) makes one gap longer.
      if (this.intervalMs === undefined || gap < this.intervalMs) this.intervalMs = gap;
    }
    this.lastBurstAt = ms;
  }

  /** Notes the models a frontend or backend record of TorchServe names. */
  private noteModels(payload: string): void {
    for (const dim of MODEL_DIMS) {
      const at = payload.indexOf(dim);
      if (at >= 0) this.serve(dimValue(payload, at + dim.length));
    }
    for (const dim of WORKER_DIMS) {
      const at = payload.indexOf(dim);
      if (at < 0) continue;
      // W-<port>-<model>_<version>: the model is between the port's dash and the last underscore.
      const worker = dimValue(payload, at + dim.length);
      const dash = worker.indexOf("-");
      const underscore = worker.lastIndexOf("_");
      if (dash > 0 && underscore > dash + 1) this.serve(worker.slice(dash + 1, underscore));
    }
  }

  /** Notes a model TorchServe serves, and records its access records that waited for it. */
  private serve(model: string): void {
    if (this.served.has(model) || this.nameProblem(model) !== undefined) return;
    if (this.served.size >= MAX_SERVED_MODELS) return;
    this.served.add(model);
    if (this.waitingAccess.has(model)) this.releaseAccess(model, true);
  }

  /** Why a model name or version from a URI cannot be a label value, or undefined. */
  private nameProblem(value: string): { kind: "invalid" | "oversized"; reason: string } | undefined {
    const max = this.options.maxLabelValueLength ?? 1024;
    if (value.length > max) {
      return {
        kind: "oversized",
        reason: `model name or version is ${value.length} characters long, more than max_label_value_length=${max}`,
      };
    }
    const control = CONTROL.exec(value);
    if (control !== null) {
      const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
      return { kind: "invalid", reason: `model name or version holds the control character U+${code}` };
    }
    return undefined;
  }

  private applyAccess(access: AccessRecord, source: LineSource, text: string): IngestOutcome {
    const target = modelOfAccess(access);
    // Management, ping and metrics calls, gRPC: a valid record that no model ran. A 404 is
    // TorchServe's "no such model": recordAccess records nothing for it (as the frontend does), and
    // a made-up name in a client's URI must not take one of the model versions' places either.
    if (target === undefined || access.status === 404) return { ok: true };
    const problem = this.nameProblem(target.model) ?? this.nameProblem(target.version);
    if (problem !== undefined)
      return this.options.ingest.rejectLine(source, problem.kind, problem.reason, text);
    if (!this.served.has(target.model)) return this.awaitModel(target.model, access, source);
    return this.recordServed(target, access, source, text);
  }

  /**
   * An access record of a name TorchServe has not shown as a model: it waits for TorchServe's
   * record of the same request (another file, read in the same look or the next), then is
   * counted under {@link UNSERVED_MODEL}, so that names clients make up never take a model's place.
   */
  private awaitModel(model: string, access: AccessRecord, source: LineSource): IngestOutcome {
    let waiting = this.waitingAccess.get(model);
    if (waiting === undefined && this.waitingAccessCount < MAX_WAITING_ACCESS) {
      const timer = setTimeout(() => this.releaseAccess(model, false), this.options.waitMs ?? 5000);
      timer.unref();
      waiting = { records: [], timer };
      this.waitingAccess.set(model, waiting);
    }
    if (waiting === undefined || this.waitingAccessCount >= MAX_WAITING_ACCESS) {
      this.recordUnserved(access);
      return { ok: true };
    }
    waiting.records.push({ access, source });
    this.waitingAccessCount++;
    return { ok: true };
  }

  /** Records the access records that waited for `model`: as its own once served, else as unserved. */
  private releaseAccess(model: string, served: boolean): void {
    const waiting = this.waitingAccess.get(model);
    if (waiting === undefined) return;
    clearTimeout(waiting.timer);
    this.waitingAccess.delete(model);
    this.waitingAccessCount -= waiting.records.length;
    for (const { access, source } of waiting.records) {
      const target = served ? modelOfAccess(access) : undefined;
      if (target === undefined) this.recordUnserved(access);
      else this.recordServed(target, access, source, `${access.method} ${access.uri}`);
    }
  }

  private recordUnserved(access: AccessRecord): void {
    if (!this.unservedNoted) {
      this.unservedNoted = true;
      this.options.logger?.info(
        `TorchServe logs: responses for model names TorchServe has not shown as models are counted under ` +
          `model_name="${UNSERVED_MODEL}" (one series per status class), never as models of their own`,
      );
    }
    this.options.recorder.recordAccess({
      model: UNSERVED_MODEL,
      version: UNSERVED_MODEL,
      status: access.status,
      latencyMs: Math.max(0, access.ms),
      hostname: this.host,
    });
  }

  private recordServed(
    target: { model: string; version: string },
    access: AccessRecord,
    source: LineSource,
    text: string,
  ): IngestOutcome {
    const key = `${target.model}\u0000${target.version}`;
    if (!this.models.has(key)) {
      if (this.models.size >= this.maxAccessModels) return this.full(source, text);
      this.models.add(key);
    }
    this.options.recorder.recordAccess({
      model: target.model,
      version: target.version,
      status: access.status,
      // The clock going back makes TorchServe print a negative time; no request took less than 0.
      latencyMs: Math.max(0, access.ms),
      hostname: this.host,
    });
    return { ok: true };
  }

  /** Refuses an access record of one model version too many (counted, and logged like any rejected line). */
  private full(source: LineSource, text: string): IngestOutcome {
    return this.options.ingest.rejectLine(
      source,
      "invalid",
      `more than ${this.maxAccessModels} model versions in the access log; further ones are not recorded`,
      text,
    );
  }
}

/** A dimension's value in a metric record, from `start` to the next `,` or `|`. */
function dimValue(payload: string, start: number): string {
  let end = start;
  while (end < payload.length && payload[end] !== "," && payload[end] !== "|") end++;
  return payload.slice(start, end);
}

/** The `hostname:` of a metric record's last segment, or undefined when it has none. */
function hostnameOf(payload: string): string | undefined {
  const at = payload.lastIndexOf("|#hostname:");
  if (at < 0) return undefined;
  const host = dimValue(payload, at + "|#hostname:".length);
  return host === "" || CONTROL.test(host) || host.length > 1024 ? undefined : host;
}

/** What tells a record's series apart: its name, dimensions and hostname (not value, ids or time). */
function seriesKey(payload: string): string {
  const dot = payload.indexOf(".");
  const dims = payload.indexOf(SEGMENT_MARK);
  const tail = payload.lastIndexOf(SEGMENT_MARK);
  if (dot < 0 || dims < 0) return payload;
  return `${payload.slice(0, dot)}${payload.slice(dims, tail)}\u0000${hostnameOf(payload) ?? ""}`;
}
