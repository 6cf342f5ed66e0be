import type { MetricDefinition } from "../catalog/types.js";
import type { Logger } from "../log.js";
import { MetricRecordError, type MetricRecorder } from "../telemetry/recorder.js";
import { parseMetricLine } from "./metric-line.js";

/** Where a line came from: a managed worker's stdout, a followed file, or `POST /metric-lines`. */
export type LineSource = "worker" | "file" | "http";

/** The result of applying one line. */
export type IngestOutcome = { ok: true } | { ok: false; reason: string };

/** What {@link MetricLineIngest} needs from the service. */
export interface MetricLineIngestOptions {
  recorder: MetricRecorder;
  /** Adds a metric at run time (model_metrics_auto_detect). */
  register(def: MetricDefinition): void;
  autoDetect: boolean;
  logger: Logger;
}

// A flood of garbage must not flood the log: the first few per source are logged, all are counted.
const LOGGED_PER_SOURCE = 10;
// OpenTelemetry instrument names are stricter than Prometheus names (no leading `_`, no `:`).
const INSTRUMENT_NAME = /^[A-Za-z][A-Za-z0-9_.\-/]{0,254}$/;

/**
 * Applies TorchServe `[METRICS]` lines to the catalog's instruments: COUNTER adds, GAUGE sets,
 * HISTOGRAM observes (by the declared type); dimensions are bound by name and the Hostname label
 * is the line's `hostname`. Lines that are malformed, undeclared or invalid are counted in
 * serve_metric_lines_rejected_total and logged, never silently dropped and never fatal.
 */
export class MetricLineIngest {
  private readonly logged = new Map<string, number>();
  private readonly undeclaredWarned = new Set<string>();

  constructor(private readonly options: MetricLineIngestOptions) {}

  /** Parses and records one line. */
  apply(text: string, source: LineSource): IngestOutcome {
    const parsed = parseMetricLine(text);
    if (!parsed.ok) return this.reject(source, "malformed", parsed.reason, text);
    const line = parsed.line;
    let def = this.options.recorder.definition(line.name);
    if (def === undefined) {
      if (!this.options.autoDetect) {
        if (!this.undeclaredWarned.has(line.name)) {
          this.undeclaredWarned.add(line.name);
          this.options.logger.warn(
            `metric lines: ${line.name} is not declared in the metrics config; its lines are dropped and counted ` +
              `(declare it, or set model_metrics_auto_detect=true)`,
          );
        }
        this.options.recorder.recordRejectedLine(source, "undeclared");
        return { ok: false, reason: `metric ${line.name} is not declared in the metrics config` };
      }
      if (!INSTRUMENT_NAME.test(line.name)) {
        return this.reject(source, "invalid", `metric name ${line.name} cannot be auto-detected`, text);
      }
      def = {
        name: line.name,
        type: line.type ?? "gauge",
        unit: line.unit,
        dimensions: [...Object.keys(line.dimensions).filter((d) => d !== "Hostname"), "Hostname"],
        section: "model_metrics",
        buckets: undefined,
      };
      this.options.register(def);
      this.options.logger.info(
        `metric lines: auto-detected ${def.type} ${def.name} (${def.dimensions.join(", ")})`,
      );
    }
    const dimensions = { ...line.dimensions };
    for (const host of ["Hostname", "hostname"]) {
      if (def.dimensions.includes(host) && dimensions[host] === undefined) dimensions[host] = line.hostname;
    }
    try {
      this.options.recorder.record(line.name, line.value, dimensions, {
        requestId: line.requestIds[0],
        unit: line.unit,
      });
    } catch (err) {
      if (!(err instanceof MetricRecordError)) throw err;
      return this.reject(source, "invalid", err.message, text);
    }
    return { ok: true };
  }

  private reject(
    source: LineSource,
    kind: "malformed" | "invalid",
    reason: string,
    text: string,
  ): IngestOutcome {
    this.options.recorder.recordRejectedLine(source, kind);
    const count = (this.logged.get(source) ?? 0) + 1;
    this.logged.set(source, count);
    if (count <= LOGGED_PER_SOURCE) {
      this.options.logger.warn(`metric lines (${source}): ${reason}: ${JSON.stringify(text.slice(0, 200))}`);
      if (count === LOGGED_PER_SOURCE) {
        this.options.logger.warn(
          `metric lines (${source}): further rejected lines are counted in serve_metric_lines_rejected_total, not logged`,
        );
      }
    }
    return { ok: false, reason };
  }
}
