import type { MetricDefinition } from "../catalog/types.js";
import { snakeCase } from "./naming.js";

/**
 * The gauges whose every value is also observed into a histogram per model by default: the
 * backend's per-request times, whose last value alone cannot answer "what is p99 handler time".
 */
export const DEFAULT_HISTOGRAM_GAUGES: readonly string[] = Object.freeze(["HandlerTime", "PredictionTime"]);

/**
 * Bucket bounds of a histogram fed by a gauge that is not a time (a count, a percent, a size):
 * 1-2.5-5 steps over five decades, as the gauge's own unit. A time gauge's histogram takes the
 * request-duration buckets instead, in seconds.
 */
export const VALUE_BUCKETS: readonly number[] = Object.freeze([
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
]);

/** How many of each TorchServe time unit (long and short forms, lowercased) make a second. */
const PER_SECOND: Readonly<Record<string, number>> = {
  ns: 1e9,
  nanoseconds: 1e9,
  us: 1e6,
  microseconds: 1e6,
  ms: 1e3,
  milliseconds: 1e3,
  s: 1,
  seconds: 1,
};

/** The histogram that receives every value of one gauge, and how a value is carried over. */
export interface GaugeHistogram {
  /** The gauge's name (`HandlerTime`). */
  gauge: string;
  /** The histogram: `serve_handler_time_seconds{model_name, hostname}`. */
  definition: MetricDefinition;
  /**
   * Its OpenTelemetry instrument name (`serve.handler_time_seconds`): exported under the same name
   * in both naming modes, and never one a frontend gauge's instrument has (`serve.queue.time`).
   */
  otelName: string;
  /**
   * What a gauge value is divided by: the gauge's units per second for a time unit (1000 for ms;
   * a division, so 71.5 ms is 0.0715 s to the last digit), 1 for any other unit.
   */
  divisor: number;
  /** The gauge dimension that gives the histogram's model_name (`ModelName` or `model_name`); none: no model_name label. */
  modelDimension: string | undefined;
}

/**
 * The histogram for a gauge, named the OpenTelemetry way like the other serve_* families: a time
 * gauge (ns, us, ms, s) becomes `serve_<snake_name>_seconds` in seconds with `timeBuckets`; any
 * other unit becomes `serve_<snake_name>` in the gauge's unit with {@link VALUE_BUCKETS}. Labels:
 * model_name (when the gauge has a ModelName or model_name dimension) and hostname; the gauge's
 * other dimensions (Level, custom ones) are added together. Undefined for a metric that is not a gauge.
 */
export function gaugeHistogram(
  gauge: MetricDefinition,
  timeBuckets: readonly number[],
): GaugeHistogram | undefined {
  if (gauge.type !== "gauge") return undefined;
  const unit = gauge.unit.toLowerCase();
  const perSecond = Object.hasOwn(PER_SECOND, unit) ? PER_SECOND[unit] : undefined;
  const base = snakeCase(gauge.name);
  const modelDimension = gauge.dimensions.find((d) => d === "ModelName" || d === "model_name");
  // Prometheus names take no `.`, `-` or `/`, which auto-detected metric names may hold.
  const suffix = perSecond === undefined ? "" : "_seconds";
  return {
    gauge: gauge.name,
    definition: {
      name: `serve_${base.replace(/[^a-z0-9_]/g, "_")}${suffix}`,
      type: "histogram",
      unit: perSecond === undefined ? gauge.unit : "Seconds",
      dimensions: modelDimension === undefined ? ["hostname"] : ["model_name", "hostname"],
      section: "ts_metrics",
      buckets: perSecond === undefined ? VALUE_BUCKETS : timeBuckets,
    },
    otelName: `serve.${base.slice(0, 240)}${suffix}`,
    divisor: perSecond ?? 1,
    modelDimension,
  };
}

/** Which gauge histograms a set of metrics gets, and why the other names listed get none. */
export interface GaugeHistogramPlan {
  histograms: GaugeHistogram[];
  /** One message per listed name that gets no histogram (not declared, not a gauge, name taken). */
  skipped: string[];
}

/**
 * The histograms {@link gaugeHistogram} makes for the gauges of `metrics` named in `gauges`, each
 * with a name no metric of `metrics` (nor an earlier histogram) has. A listed name the metrics
 * lack is skipped here, silently: it may be auto-detected later (see {@link createTelemetry}).
 */
export function planGaugeHistograms(
  metrics: readonly MetricDefinition[],
  gauges: readonly string[],
  timeBuckets: readonly number[],
): GaugeHistogramPlan {
  const wanted = new Set(gauges);
  const taken = new Set(metrics.map((m) => m.name));
  const plan: GaugeHistogramPlan = { histograms: [], skipped: [] };
  for (const def of metrics) {
    if (!wanted.has(def.name)) continue;
    const h = gaugeHistogram(def, timeBuckets);
    if (h === undefined) {
      plan.skipped.push(`${def.name} is a ${def.type}, not a gauge: it gets no histogram`);
    } else if (taken.has(h.definition.name)) {
      plan.skipped.push(`${def.name} gets no histogram: ${h.definition.name} is already a metric`);
    } else {
      taken.add(h.definition.name);
      plan.histograms.push(h);
    }
  }
  return plan;
}
