/** The three metric types a TorchServe metrics YAML declares. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Which list of the YAML a metric came from: frontend/system or backend/model metrics. */
export type MetricSection = "ts_metrics" | "model_metrics";

/** One declared metric, with labels in exposition order. */
export interface MetricDefinition {
  name: string;
  type: MetricType;
  /** The unit word as written in the YAML (`Milliseconds`, `ms`, `Percent`, ...); shown in HELP. */
  unit: string;
  /** Label names in order; model metrics already end with `Hostname`. */
  dimensions: readonly string[];
  section: MetricSection;
  /** Histogram bucket upper bounds; undefined means TorchServe's defaults (only for histograms). */
  buckets: readonly number[] | undefined;
}

/** A loaded metrics catalog, in declaration order. */
export interface Catalog {
  metrics: readonly MetricDefinition[];
  /** Where it came from, for messages: a file path or "bundled default". */
  source: string;
}

/** TorchServe's (and the Prometheus Java client's) default histogram buckets. */
export const DEFAULT_BUCKETS: readonly number[] = [
  0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
];
