import type { MetricData } from "@opentelemetry/sdk-metrics";
import { AggregationTemporality, MetricReader, type ResourceMetrics } from "@opentelemetry/sdk-metrics";

/** A reader that only collects on demand: each scrape calls {@link PullReader.collect}. */
export class PullReader extends MetricReader {
  /** DELTA hands each collection only what was recorded since the previous one. */
  constructor(temporality: AggregationTemporality = AggregationTemporality.CUMULATIVE) {
    super({ aggregationTemporalitySelector: () => temporality });
  }

  protected override async onForceFlush(): Promise<void> {
    // Nothing is buffered: a pull reader has no pending export.
  }

  protected override async onShutdown(): Promise<void> {
    // Nothing to release.
  }
}

/** Collected metrics by name, across all scopes, for renderers that look families up by name. */
export function metricsByName(resourceMetrics: ResourceMetrics): Map<string, MetricData> {
  const out = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics) {
    for (const metric of scope.metrics) out.set(metric.descriptor.name, metric);
  }
  return out;
}
