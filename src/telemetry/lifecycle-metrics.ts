import type { MetricDefinition } from "../catalog/types.js";

/** Restarts of managed workers, by model version and why the previous process ended. */
export const WORKER_RESTARTS = "serve_worker_restarts_total";
/** Managed workers by model version and {@link WorkerState}. */
export const WORKERS = "serve_workers";
/** The queue's capacity per model version (job_queue_size): depth ÷ capacity is the saturation. */
export const JOB_QUEUE_SIZE = "serve_job_queue_size";
/**
 * Requests dispatched to a worker and not finished, per model version (the version that serves
 * them): the concurrency an autoscaler scales on, beside the queue's depth.
 */
export const REQUESTS_IN_FLIGHT = "serve_requests_in_flight";
/** `[METRICS]` lines applied, by source: beside the rejected ones, a silent source is a rate of 0. */
export const APPLIED_LINES = "serve_metric_lines_applied_total";
/** OTLP pushes by result (`success`, `failure`): a broken push is visible on `/metrics`. */
export const OTLP_EXPORTS = "serve_otlp_exports_total";
/** CPU time of the service's process, user and system, in seconds (the standard exporter name). */
export const PROCESS_CPU = "process_cpu_seconds_total";
/** Resident memory of the service's process, in bytes. */
export const PROCESS_RESIDENT_MEMORY = "process_resident_memory_bytes";
/** When the service's process started, in seconds since the epoch. */
export const PROCESS_START_TIME = "process_start_time_seconds";
/** File descriptors the service's process holds open. */
export const PROCESS_OPEN_FDS = "process_open_fds";
/** The process' limit on open file descriptors (the soft RLIMIT_NOFILE). */
export const PROCESS_MAX_FDS = "process_max_fds";
/** Node's event-loop delay over the last sampling interval: median, 99th percentile and maximum. */
export const EVENT_LOOP_DELAY_P50 = "nodejs_eventloop_delay_p50_seconds";
/** See {@link EVENT_LOOP_DELAY_P50}. */
export const EVENT_LOOP_DELAY_P99 = "nodejs_eventloop_delay_p99_seconds";
/** See {@link EVENT_LOOP_DELAY_P50}. */
export const EVENT_LOOP_DELAY_MAX = "nodejs_eventloop_delay_max_seconds";

/** A managed worker's state, the `state` label of {@link WORKERS}; a worker named by `url` counts as ready. */
export type WorkerState = "starting" | "ready" | "backing_off";

/** Every {@link WorkerState}, in the order a worker goes through them. */
export const WORKER_STATES: readonly WorkerState[] = ["starting", "ready", "backing_off"];

/**
 * Why a worker was restarted, the `reason` label of {@link WORKER_RESTARTS}: it exited by itself
 * (`exit`, any code), was killed by a signal nobody here sent (`signal`), could not be started
 * (`start_failed`), was not ready within its startup timeout (`startup_timeout`), or stopped
 * answering (`unresponsive`: a request timed out, or /ping failed after a connection error).
 */
export type RestartReason = "exit" | "signal" | "start_failed" | "startup_timeout" | "unresponsive";

/** Every {@link RestartReason}. */
export const RESTART_REASONS: readonly RestartReason[] = [
  "exit",
  "signal",
  "start_failed",
  "startup_timeout",
  "unresponsive",
];

/** The result label of {@link OTLP_EXPORTS}. */
export type ExportResult = "success" | "failure";

/**
 * OpenTelemetry instrument names of these metrics, chosen so that both naming modes expose the
 * same sample names (exporter-prometheus turns dots into `_` and adds `_total` to counters, and
 * adds no unit suffix): dashboards and alert rules work in either mode.
 */
export const LIFECYCLE_INSTRUMENT_NAMES: Readonly<Record<string, string>> = {
  [WORKER_RESTARTS]: "serve.worker.restarts",
  [WORKERS]: "serve.workers",
  [JOB_QUEUE_SIZE]: "serve.job_queue.size",
  [REQUESTS_IN_FLIGHT]: "serve.requests.in_flight",
  [APPLIED_LINES]: "serve.metric_lines.applied",
  [OTLP_EXPORTS]: "serve.otlp.exports",
  [PROCESS_CPU]: "process.cpu.seconds",
  [PROCESS_RESIDENT_MEMORY]: "process.resident_memory.bytes",
  [PROCESS_START_TIME]: "process.start_time.seconds",
  [PROCESS_OPEN_FDS]: "process.open_fds",
  [PROCESS_MAX_FDS]: "process.max_fds",
  [EVENT_LOOP_DELAY_P50]: "nodejs.eventloop.delay.p50.seconds",
  [EVENT_LOOP_DELAY_P99]: "nodejs.eventloop.delay.p99.seconds",
  [EVENT_LOOP_DELAY_MAX]: "nodejs.eventloop.delay.max.seconds",
};

/** One family: name, type, unit word and labels before `hostname`. */
type Family = [string, MetricDefinition["type"], string, readonly string[]];

const FAMILIES: readonly Family[] = [
  [WORKER_RESTARTS, "counter", "Count", ["model_name", "model_version", "reason"]],
  [WORKERS, "gauge", "Count", ["model_name", "model_version", "state"]],
  [JOB_QUEUE_SIZE, "gauge", "Count", ["model_name", "model_version"]],
  [REQUESTS_IN_FLIGHT, "gauge", "Count", ["model_name", "model_version"]],
  [APPLIED_LINES, "counter", "Count", ["source"]],
  [OTLP_EXPORTS, "counter", "Count", ["result"]],
  [PROCESS_CPU, "counter", "Seconds", []],
  [PROCESS_RESIDENT_MEMORY, "gauge", "Bytes", []],
  [PROCESS_START_TIME, "gauge", "Seconds", []],
  [PROCESS_OPEN_FDS, "gauge", "Count", []],
  [PROCESS_MAX_FDS, "gauge", "Count", []],
  [EVENT_LOOP_DELAY_P50, "gauge", "Seconds", []],
  [EVENT_LOOP_DELAY_P99, "gauge", "Seconds", []],
  [EVENT_LOOP_DELAY_MAX, "gauge", "Seconds", []],
];

/**
 * The service's lifecycle and self metrics (workers, queue capacity, line and export outcomes,
 * its own process), the families alert rules need. Every one has a `hostname` label, last.
 */
export function lifecycleMetrics(): MetricDefinition[] {
  return FAMILIES.map(([name, type, unit, labels]) => ({
    name,
    type,
    unit,
    dimensions: [...labels, "hostname"],
    section: "ts_metrics",
    buckets: undefined,
  }));
}
