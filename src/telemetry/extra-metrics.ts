import type { MetricDefinition } from "../catalog/types.js";
import { lifecycleMetrics } from "./lifecycle-metrics.js";

/** Request duration per model version, in seconds: the histogram TorchServe lacks (p50/p90/p99). */
export const REQUEST_DURATION = "serve_request_duration_seconds";
/** Requests waiting for a worker, per model: the autoscaling signal TorchServe lacks. */
export const QUEUE_DEPTH = "serve_queue_depth";
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
