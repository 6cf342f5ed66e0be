import { emptyResource } from "@opentelemetry/resources";
import {
  AggregationTemporality,
  DataPointType,
  type CollectionResult,
  type MetricData,
  type MetricProducer,
  type MetricReader,
  type ResourceMetrics,
} from "@opentelemetry/sdk-metrics";

/** The instrumentation scopes of the native-bucket provider's meters all start with this. */
export const NATIVE_SCOPE_PREFIX = "serve-metrics.native";

/**
 * Exponential histograms for one OTLP push reader whose exporter asked for them
 * (`default_histogram_aggregation: base2_exponential_bucket_histogram`). The SDK applies a
 * reader's aggregation only to instruments no view selects, and every catalog instrument has a
 * view (its TorchServe name), so the reader gets them another way: as a metric producer reading
 * the native-bucket provider (see createTelemetry), whose histograms {@link swap} puts in place
 * of the classic ones before export. Histograms without native buckets go out classic.
 */
export class ExponentialPush implements MetricProducer {
  private source: MetricReader | undefined;

  /** `temporality`: what the push reader's exporter wants for histograms. */
  constructor(readonly temporality: AggregationTemporality) {}

  /** Reads the native-bucket provider through `reader`, which has this push's temporality. */
  attach(reader: MetricReader): void {
    this.source = reader;
  }

  /** Whether a native-bucket provider feeds this push. */
  get attached(): boolean {
    return this.source !== undefined;
  }

  /** The native-bucket provider's histograms; nothing until attached. */
  async collect(): Promise<CollectionResult> {
    if (this.source !== undefined) return this.source.collect();
    // The reader keeps its own provider's resource, never a producer's.
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics: [] }, errors: [] };
  }

  /**
   * The export with each classic histogram that has an exponential twin of the same name
   * replaced by it, in its place and scope; the native provider's own scopes go.
   */
  swap(metrics: ResourceMetrics): ResourceMetrics {
    const exponential = new Map<string, MetricData>();
    for (const scope of metrics.scopeMetrics) {
      if (!scope.scope.name.startsWith(NATIVE_SCOPE_PREFIX)) continue;
      for (const metric of scope.metrics) {
        if (metric.dataPointType === DataPointType.EXPONENTIAL_HISTOGRAM) {
          exponential.set(metric.descriptor.name, metric);
        }
      }
    }
    return {
      resource: metrics.resource,
      scopeMetrics: metrics.scopeMetrics
        .filter((scope) => !scope.scope.name.startsWith(NATIVE_SCOPE_PREFIX))
        .map((scope) => ({
          ...scope,
          metrics: scope.metrics.map((metric) =>
            metric.dataPointType === DataPointType.HISTOGRAM
              ? (exponential.get(metric.descriptor.name) ?? metric)
              : metric,
          ),
        })),
    };
  }
}

/** The temporality an exporter's preference gives histograms (low_memory: delta). */
export function histogramTemporality(
  preference: "cumulative" | "delta" | "low_memory",
): AggregationTemporality {
  return preference === "cumulative" ? AggregationTemporality.CUMULATIVE : AggregationTemporality.DELTA;
}
