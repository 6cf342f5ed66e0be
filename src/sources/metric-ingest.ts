import type { MetricDefinition } from "../catalog/types.js";
import type { Logger } from "../log.js";
import { MetricRegistrationError } from "../telemetry/pipeline.js";
import {
  MetricRecordError,
  SERVICE_METRICS,
  type LineContext,
  type LineSeries,
  type MetricRecorder,
  type RejectedLineReason,
} from "../telemetry/recorder.js";
import { parseMetricLine, type MetricLine } from "./metric-line.js";

/**
 * Where a line came from: a managed worker's stdout, a file of `metric_log_files`, `POST
 * /metric-lines`, a followed TorchServe's log files (`torchserve_log_dir`), or standard input.
 */
export type LineSource = "worker" | "file" | "http" | "torchserve" | "stdin";

/** The result of applying one line. */
export type IngestOutcome = { ok: true } | { ok: false; reason: string };

/** Which declared metrics a line may write; asked for each line (see {@link MetricLineIngest.apply}). */
export type LinePermission = (def: MetricDefinition) => boolean;

/**
 * What TorchServe lets a backend `[METRICS]` line write: model metrics (the catalog's
 * `model_metrics` and auto-detected ones), never a metric the service writes itself.
 */
export const MODEL_METRICS_ONLY: LinePermission = (def) =>
  def.section === "model_metrics" && !SERVICE_METRICS.has(def.name);

/** What {@link MetricLineIngest} needs from the service. */
export interface MetricLineIngestOptions {
  recorder: MetricRecorder;
  /** Adds a metric at run time (model_metrics_auto_detect); throws MetricRegistrationError if it cannot. */
  register(def: MetricDefinition): void;
  autoDetect: boolean;
  /** Longest label value a line may write (max_label_value_length); default 1024. */
  maxLabelValueLength?: number;
  /** Most metrics auto-detection registers (each one costs an instrument); default 1000. */
  maxAutoDetected?: number;
  logger: Logger;
  /** Hears every line applied, by source (serve_metric_lines_applied_total). */
  onApplied?(source: LineSource): void;
}

// A flood of garbage must not flood the log: the first few per source are logged, all are counted.
const LOGGED_PER_SOURCE = 10;
// Undeclared names are logged once each, the first few only: the set of names stays this small.
const LOGGED_UNDECLARED = 10;
// The most lines bound (see MetricLineIngest.bound), and the longest key kept.
const MAX_BOUND_LINES = 4096;
const MAX_BOUND_KEY_CHARS = 1024;
// A name quoted in the log is cut to this length.
const LOGGED_NAME_CHARS = 80;
// OpenTelemetry instrument names are stricter than Prometheus names (no leading `_`, no `:`).
const INSTRUMENT_NAME = /^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$/;
// Labels the exposition gives a meaning of its own: `__`-prefixed ones are Prometheus' (`__name__`),
// `quantile` is a summary's, otel_metric_overflow marks the series cap's overflow series.
const RESERVED_LABELS: ReadonlySet<string> = new Set(["quantile", "otel_metric_overflow"]);

/**
 * Applies TorchServe `[METRICS]` lines to the catalog's instruments: COUNTER adds, GAUGE sets,
 * HISTOGRAM observes (by the declared type); dimensions are bound by name and the Hostname label
 * is the line's `hostname`. Lines that are malformed, undeclared, forbidden, oversized or invalid
 * are counted in serve_metric_lines_rejected_total and logged (bounded), never silently dropped
 * and never fatal.
 */
export class MetricLineIngest {
  private readonly logged = new Map<string, number>();
  private readonly undeclaredLogged = new Set<string>();
  private readonly maxLabelValueLength: number;
  private readonly maxAutoDetected: number;
  private autoDetected = 0;
  // Lines repeat a few series over and over: each is checked and bound once, then only its value
  // is recorded. Bounded in entries and key length, so at most a few MiB.
  private readonly bound = new Map<string, LineSeries>();
  private readonly permissionIds = new Map<LinePermission, number>();

  constructor(private readonly options: MetricLineIngestOptions) {
    this.maxLabelValueLength = options.maxLabelValueLength ?? 1024;
    this.maxAutoDetected = options.maxAutoDetected ?? 1000;
  }

  /**
   * Parses and records one line. `permission` says which declared metrics it may write: by
   * default model metrics only, whatever the source, as TorchServe allows backend lines.
   * `vetted`: TorchServe itself accepted the line (it is in its model_metrics.log), as a metric of
   * this type: an undeclared metric is then auto-detected as that type whatever
   * model_metrics_auto_detect says.
   */
  apply(
    text: string,
    source: LineSource,
    permission: LinePermission = MODEL_METRICS_ONLY,
    vetted?: MetricDefinition["type"],
  ): IngestOutcome {
    const parsed = parseMetricLine(text);
    if (!parsed.ok) return this.reject(source, "malformed", parsed.reason, text);
    const line = parsed.line;
    const key = this.lineKey(line, permission);
    const known = key === undefined ? undefined : this.bound.get(key);
    if (known !== undefined) return this.recordLine(known, line, source, text);
    const tooLong = this.overlongLabel(line);
    if (tooLong !== undefined) return this.reject(source, "oversized", tooLong, text);
    let def = this.options.recorder.definition(line.name);
    if (def === undefined) {
      const detected = this.autoDetect(line, source, text, permission, vetted);
      if (!detected.ok) return detected.outcome;
      def = detected.def;
    } else if (!permission(def)) {
      return this.reject(
        source,
        "forbidden",
        `metric ${line.name} is not one a ${source} line may write`,
        text,
      );
    }
    const reserved = reservedLabel(Object.keys(line.dimensions), def.type);
    if (reserved !== undefined)
      return this.reject(source, "invalid", `metric ${line.name}: ${reserved}`, text);
    const dimensions = { ...line.dimensions };
    for (const host of ["Hostname", "hostname"]) {
      if (def.dimensions.includes(host) && dimensions[host] === undefined) dimensions[host] = line.hostname;
    }
    let series: LineSeries;
    try {
      if (key === undefined || this.bound.size >= MAX_BOUND_LINES) {
        this.options.recorder.record(line.name, line.value, dimensions, lineContext(line));
        this.options.onApplied?.(source);
        return { ok: true };
      }
      series = this.options.recorder.bindLine(line.name, dimensions);
    } catch (err) {
      if (!(err instanceof MetricRecordError)) throw err;
      return this.reject(source, "invalid", err.message, text);
    }
    this.bound.set(key, series);
    return this.recordLine(series, line, source, text);
  }

  /** Records a line whose name, labels and permission were checked before. */
  private recordLine(series: LineSeries, line: MetricLine, source: LineSource, text: string): IngestOutcome {
    try {
      this.options.recorder.recordLine(series, line.value, lineContext(line));
    } catch (err) {
      if (!(err instanceof MetricRecordError)) throw err;
      return this.reject(source, "invalid", err.message, text);
    }
    this.options.onApplied?.(source);
    return { ok: true };
  }

  /**
   * What every check but the value's depends on: the permission, name, host and dimensions in
   * line order; undefined for a line too long to be worth keeping.
   */
  private lineKey(line: MetricLine, permission: LinePermission): string | undefined {
    let id = this.permissionIds.get(permission);
    if (id === undefined) {
      id = this.permissionIds.size;
      this.permissionIds.set(permission, id);
    }
    // The parser refuses control characters, so NUL cannot occur inside a part.
    let key = `${id}\u0000${line.name}\u0000${line.hostname}`;
    for (const name in line.dimensions) {
      key += `\u0000${name}\u0000${line.dimensions[name] ?? ""}`;
      if (key.length > MAX_BOUND_KEY_CHARS) return undefined;
    }
    return key;
  }

  /** Registers the line's undeclared metric if auto-detection allows it, or rejects the line. */
  private autoDetect(
    line: MetricLine,
    source: LineSource,
    text: string,
    permission: LinePermission,
    vetted: MetricDefinition["type"] | undefined,
  ): { ok: true; def: MetricDefinition } | { ok: false; outcome: IngestOutcome } {
    const refuse = (kind: RejectedLineReason, reason: string): { ok: false; outcome: IngestOutcome } => ({
      ok: false,
      outcome: this.reject(source, kind, reason, text),
    });
    // A custom catalog may drop a frontend metric; its name is still the frontend's, so it is never
    // auto-detected (as a gauge): a line that may write it finds it undeclared, any other is refused.
    if (SERVICE_METRICS.has(line.name)) {
      const asDeclared: MetricDefinition = {
        name: line.name,
        type: line.type ?? "gauge",
        unit: line.unit,
        dimensions: [],
        section: "ts_metrics",
        buckets: undefined,
      };
      if (permission(asDeclared)) return { ok: false, outcome: this.undeclared(line.name, source) };
      return refuse(
        "forbidden",
        `metric ${line.name} is the service's own, not one a ${source} line may write`,
      );
    }
    if (!this.options.autoDetect && vetted === undefined) {
      return { ok: false, outcome: this.undeclared(line.name, source) };
    }
    if (this.autoDetected >= this.maxAutoDetected) {
      return { ok: false, outcome: this.undeclared(line.name, source, true) };
    }
    if (!INSTRUMENT_NAME.test(line.name)) {
      return refuse("invalid", `metric name ${cut(line.name)} cannot be auto-detected`);
    }
    const def: MetricDefinition = {
      name: line.name,
      type: vetted ?? line.type ?? "gauge",
      unit: line.unit,
      dimensions: [...Object.keys(line.dimensions).filter((d) => d !== "Hostname"), "Hostname"],
      section: "model_metrics",
      buckets: undefined,
    };
    // The permission is asked of the metric the line would create, too: a caller that may write
    // only frontend metrics must not create model metrics.
    if (!permission(def)) {
      return refuse("forbidden", `metric ${line.name} is not one a ${source} line may create`);
    }
    const reserved = reservedLabel(def.dimensions, def.type) ?? collapsedLabelClash(def.dimensions);
    if (reserved !== undefined)
      return refuse("invalid", `metric ${line.name} cannot be auto-detected: ${reserved}`);
    try {
      this.options.register(def);
    } catch (err) {
      if (!(err instanceof MetricRegistrationError)) throw err;
      return refuse("invalid", `metric ${line.name} cannot be auto-detected: ${err.reason}`);
    }
    this.autoDetected++;
    this.options.logger.info(
      `metric lines: auto-detected ${def.type} ${def.name} (${def.dimensions.join(", ")})`,
    );
    return { ok: true, def };
  }

  /**
   * Sets a declared gauge from a line written before the service started, as {@link apply}
   * would set it but counting nothing (no applied or rejected line, no listener, no histogram):
   * whether it was set. Any other line is left alone, unlogged.
   */
  prime(text: string, permission: LinePermission = MODEL_METRICS_ONLY): boolean {
    const parsed = parseMetricLine(text);
    if (!parsed.ok) return false;
    const line = parsed.line;
    const def = this.options.recorder.definition(line.name);
    if (def?.type !== "gauge" || !permission(def) || this.overlongLabel(line) !== undefined) return false;
    if (reservedLabel(Object.keys(line.dimensions), def.type) !== undefined) return false;
    const dimensions = { ...line.dimensions };
    for (const host of ["Hostname", "hostname"]) {
      if (def.dimensions.includes(host) && dimensions[host] === undefined) dimensions[host] = line.hostname;
    }
    try {
      this.options.recorder.primeGauge(this.options.recorder.bindLine(line.name, dimensions), line.value);
    } catch (err) {
      if (!(err instanceof MetricRecordError)) throw err;
      return false;
    }
    return true;
  }

  /** The declared (or auto-detected) metric of this name, if any. */
  declared(name: string): MetricDefinition | undefined {
    return this.options.recorder.definition(name);
  }

  /** Counts a line of an undeclared metric; logs the first few names once each. */
  private undeclared(name: string, source: LineSource, full = false): IngestOutcome {
    this.options.recorder.recordRejectedLine(source, "undeclared");
    if (!this.undeclaredLogged.has(name) && this.undeclaredLogged.size < LOGGED_UNDECLARED) {
      this.undeclaredLogged.add(name);
      const shown = JSON.stringify(cut(name));
      this.options.logger.warn(
        full
          ? `metric lines: ${shown} is not declared and ${this.maxAutoDetected} metrics were auto-detected ` +
              `already, the most kept; its lines are dropped and counted (declare it in the metrics config)`
          : `metric lines: ${shown} is not declared in the metrics config; its lines are dropped and counted ` +
              `(declare it, or set model_metrics_auto_detect=true)`,
      );
      if (this.undeclaredLogged.size === LOGGED_UNDECLARED) {
        this.options.logger.warn(
          `metric lines: further undeclared metrics are counted in serve_metric_lines_rejected_total, not logged`,
        );
      }
    }
    return { ok: false, reason: `metric ${cut(name)} is not declared in the metrics config` };
  }

  /** Why a label value of the line is too long, or undefined. */
  private overlongLabel(line: MetricLine): string | undefined {
    const max = this.maxLabelValueLength;
    if (line.hostname.length > max) {
      return `hostname is ${line.hostname.length} characters long, more than max_label_value_length=${max}`;
    }
    for (const [name, value] of Object.entries(line.dimensions)) {
      if (value.length > max) {
        return `dimension ${cut(name)} is ${value.length} characters long, more than max_label_value_length=${max}`;
      }
    }
    return undefined;
  }

  /**
   * Counts a line that was not applied in serve_metric_lines_rejected_total and logs it (the first
   * few per source): for callers that recognise a record's layout before it reaches {@link apply}.
   */
  rejectLine(source: LineSource, kind: RejectedLineReason, reason: string, text: string): IngestOutcome {
    return this.reject(source, kind, reason, text);
  }

  private reject(source: LineSource, kind: RejectedLineReason, reason: string, text: string): IngestOutcome {
    this.options.recorder.recordRejectedLine(source, kind);
    const count = (this.logged.get(source) ?? 0) + 1;
    this.logged.set(source, count);
    if (count <= LOGGED_PER_SOURCE) {
      this.options.logger.warn(
        FOLLOWED_FILES.has(source)
          ? `metric lines (${source}): a ${kind} line was not applied: ${withoutQuotes(reason)} ` +
              `(${text.length} characters; a followed file's content is not logged)`
          : `metric lines (${source}): ${reason}: ${JSON.stringify(text.slice(0, 200))}`,
      );
      if (count === LOGGED_PER_SOURCE) {
        this.options.logger.warn(
          `metric lines (${source}): further rejected lines are counted in serve_metric_lines_rejected_total, not logged`,
        );
      }
    }
    return { ok: false, reason };
  }
}

/**
 * Sources whose lines are a file's content: a followed path may be a link to any file the service
 * can read (`/etc/shadow`), so what they reject is described, never quoted, in the log.
 */
const FOLLOWED_FILES: ReadonlySet<LineSource> = new Set(["torchserve", "file"]);

/** A reason with the text it quotes (JSON string literals, as the parsers quote) left out. */
function withoutQuotes(reason: string): string {
  return reason.replace(/"(?:[^"\\]|\\.)*"…?/g, "(…)").replace(/"[^"]*$/, "(…)");
}

/** Why one of these label names is reserved for a metric of `type`, or undefined. */
function reservedLabel(labels: readonly string[], type: MetricDefinition["type"]): string | undefined {
  for (const label of labels) {
    if (label.startsWith("__"))
      return `dimension ${cut(label)} is reserved (names starting with "__" are Prometheus' own)`;
    if (RESERVED_LABELS.has(label)) return `dimension ${label} is reserved`;
    if (label === "le" && type === "histogram")
      return `dimension le is reserved (a histogram's bucket bound)`;
  }
  return undefined;
}

/** Two labels that OpenTelemetry naming renders alike (`a__b`, `a_b`: runs of `_` collapse), or undefined. */
function collapsedLabelClash(labels: readonly string[]): string | undefined {
  const seen = new Map<string, string>();
  for (const label of labels) {
    const rendered = label.replace(/_{2,}/g, "_");
    const other = seen.get(rendered);
    if (other !== undefined)
      return `dimensions ${cut(other)} and ${cut(label)} would both be exposed as ${cut(rendered)}`;
    seen.set(rendered, label);
  }
  return undefined;
}

/** What a listener (the log-mode writer) hears of the line besides its value. */
function lineContext(line: MetricLine): LineContext {
  return { requestId: line.requestIds[0], unit: line.unit };
}

/** A name cut to a length fit for a log line. */
function cut(name: string): string {
  return name.length > LOGGED_NAME_CHARS ? `${name.slice(0, LOGGED_NAME_CHARS)}…` : name;
}
