import type { MetricData } from "@opentelemetry/sdk-metrics";
import type { MetricsFormat, MetricsMode } from "../config/types.js";
import type { SeriesActivity } from "../telemetry/series-activity.js";
import type { Logger } from "../log.js";
import { renderOtelText } from "./otel-text.js";
import { metricsByName, type PullReader } from "./pull-reader.js";
import { renderTorchServeText, type FamilySpec } from "./torchserve-text.js";

/** The three counters legacy mode keeps on /metrics. */
const LEGACY_FAMILIES = new Set([
  "ts_inference_requests_total",
  "ts_inference_latency_microseconds",
  "ts_queue_latency_microseconds",
]);

/** The attribute the SDK puts on the one series that takes every series past the limit. */
const OVERFLOW_ATTRIBUTE = "otel.metric.overflow";

/** What a scrape renders and how. */
export interface ScrapeOptions {
  mode: MetricsMode;
  format: MetricsFormat;
  /** Sample names from `name[]`; undefined for everything. */
  filter: ReadonlySet<string> | undefined;
  /** Leaves out series idle past series_expiry_seconds (TorchServe naming only). */
  activity?: SeriesActivity;
  /** Hears the names of metrics whose series overflowed max_series_per_metric. */
  onOverflow?: (metric: string) => void;
}

/** Collects from the pull reader and renders the text `/metrics` answers with. */
export async function scrape(
  reader: PullReader,
  families: readonly FamilySpec[],
  options: ScrapeOptions,
  logger: Logger,
): Promise<string> {
  if (options.mode === "log") return "";
  const { resourceMetrics, errors } = await reader.collect();
  for (const err of errors) logger.warn(`collection: ${String(err)}`);
  if (options.onOverflow !== undefined) {
    for (const scope of resourceMetrics.scopeMetrics) {
      for (const metric of scope.metrics) {
        // The SDK adds the overflow series when the limit is first passed, so it is the last one.
        const last = metric.dataPoints[metric.dataPoints.length - 1];
        if (last?.attributes[OVERFLOW_ATTRIBUTE] === true) options.onOverflow(metric.descriptor.name);
      }
    }
  }
  if (options.format === "otel") return renderOtelText(resourceMetrics, options.filter);
  const shown = options.mode === "legacy" ? families.filter((f) => LEGACY_FAMILIES.has(f.name)) : families;
  const data = metricsByName(resourceMetrics);
  const { activity } = options;
  if (activity?.enabled) {
    for (const family of shown) {
      const metric = data.get(family.name);
      if (metric === undefined) continue;
      const live = metric.dataPoints.filter((p) => activity.isLive(family.name, family.labels, p.attributes));
      data.set(family.name, { ...metric, dataPoints: live } as MetricData);
    }
  }
  return renderTorchServeText(shown, data, options.filter);
}
