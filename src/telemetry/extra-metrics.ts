import type { MetricDefinition } from "../catalog/types.js";
import { lifecycleMetrics } from "./lifecycle-metrics.js";

/** Request duration per model version, in seconds: the histogram TorchServe lacks (p50/p90/p99). */
export const REQUEST_DURATION = "serve_request_duration_seconds";
/** Requests waiting for a worker, per model: the autoscaling signal TorchServe lacks. */
export const QUEUE_DEPTH = "serve_queue_depth";
/**
 * Inference responses per model version and status class (`2XX`, `4XX`, `5XX`): the per-model
 * error ratio TorchServe's host-wide Requests2XX/4XX/5XX cannot give.
 */
export const INFERENCE_RESPONSES = "serve_inference_responses_total";
/** The `status_class` values of {@link INFERENCE_RESPONSES}, in TorchServe's classing: not 2xx or 4xx is 5XX. */
export const STATUS_CLASSES = ["2XX", "4XX", "5XX"] as const;
/** One of {@link STATUS_CLASSES}. */
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** The class TorchServe counts a response in: 2xx, 4xx, and everything else (1xx and 3xx too) as 5XX. */
export function statusClass(status: number): StatusClass {
  return status >= 200 && status < 300 ? "2XX" : status >= 400 && status < 500 ? "4XX" : "5XX";
}
/**
 * Failed inference requests per model version and {@link ErrorReason}: which of the 5XX (and of the
 * requests whose client left before any answer) is burning the error budget.
 */
export const INFERENCE_ERRORS = "serve_inference_errors_total";

/**
 * Why an inference request failed, the `reason` label of {@link INFERENCE_ERRORS}: refused with 503
 * because its queue was full (`queue_full`), because no worker became ready in time (`no_worker`),
 * because every worker stayed busy until its time ran out (`queue_timeout`) or because the service
 * was stopping (`stopping`); its worker sent nothing in time (`worker_timeout`, 504 or a cut
 * answer), could not be reached or broke off (`worker_unreachable`, 502 or a cut answer), answered
 * what HTTP cannot forward (`worker_protocol`, 502), or answered with a 5XX of its own
 * (`worker_error`); or the client left before any answer was sent (`client_closed`: the request is
 * counted, no response class is).
 */
export type ErrorReason =
  | "queue_full"
  | "no_worker"
  | "queue_timeout"
  | "stopping"
  | "worker_timeout"
  | "worker_unreachable"
  | "worker_protocol"
  | "worker_error"
  | "client_closed";

/** Every {@link ErrorReason}. */
export const ERROR_REASONS: readonly ErrorReason[] = [
  "queue_full",
  "no_worker",
  "queue_timeout",
  "stopping",
  "worker_timeout",
  "worker_unreachable",
  "worker_protocol",
  "worker_error",
  "client_closed",
];

/** `[METRICS]` lines that were not applied, by source and reason; never dropped silently. */
export const REJECTED_LINES = "serve_metric_lines_rejected_total";

/**
 * Metrics serve-metrics adds beyond TorchServe's catalog, named the OpenTelemetry way (base units,
 * `_total` on counters). They follow the catalog's metrics on `/metrics`.
 */
export function extraMetrics(requestDurationBuckets: readonly number[]): MetricDefinition[] {
  return [
    {
      name: REQUEST_DURATION,
      type: "histogram",
      unit: "Seconds",
      dimensions: ["model_name", "model_version", "hostname"],
      section: "ts_metrics",
      buckets: requestDurationBuckets,
    },
    {
      name: QUEUE_DEPTH,
      type: "gauge",
      unit: "Count",
      dimensions: ["model_name", "hostname"],
      section: "ts_metrics",
      buckets: undefined,
    },
    {
      name: INFERENCE_RESPONSES,
      type: "counter",
      unit: "Count",
      dimensions: ["model_name", "model_version", "status_class", "hostname"],
      section: "ts_metrics",
      buckets: undefined,
    },
    {
      name: INFERENCE_ERRORS,
      type: "counter",
      unit: "Count",
      dimensions: ["model_name", "model_version", "reason", "hostname"],
      section: "ts_metrics",
      buckets: undefined,
    },
    {
      name: REJECTED_LINES,
      type: "counter",
      unit: "Count",
      dimensions: ["source", "reason", "hostname"],
      section: "ts_metrics",
      buckets: undefined,
    },
    ...lifecycleMetrics(),
  ];
}
