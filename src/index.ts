/**
 * serve-metrics: TorchServe's Metrics API on OpenTelemetry. Start the service in-process and
 * record through typed calls; the CLI (`serve-metrics`) is a thin wrapper over the same API.
 */
export { startMetricsService } from "./service.js";
export type { MetricsService, MetricsServiceOptions } from "./service.js";
export { MetricRecordError, workerName } from "./telemetry/recorder.js";
export { requestMetrics, withRequestMetrics } from "./middleware.js";
export type {
  RequestMetricsMiddleware,
  RequestMetricsOptions,
  RequestMetricsRecorder,
} from "./middleware.js";
export { parseInferencePath } from "./frontend/inference-path.js";
export type { InferencePath, InferenceKind } from "./frontend/inference-path.js";
export { parseTraceparent } from "./frontend/traceparent.js";
export { parseMetricLine } from "./sources/metric-line.js";
export type { MetricLine, MetricLineResult } from "./sources/metric-line.js";
export type { IngestOutcome } from "./sources/metric-ingest.js";
export type { InferenceRecord, TraceContext, WorkerLoadRecord } from "./telemetry/recorder.js";
export type { ErrorReason } from "./telemetry/extra-metrics.js";
export { CatalogError, loadCatalogFile, loadDefaultCatalog, parseCatalog } from "./catalog/load.js";
export type { Catalog, MetricDefinition, MetricType, MetricSection } from "./catalog/types.js";
export { ConfigError } from "./config/errors.js";
export type {
  Settings,
  ListenAddress,
  MetricsMode,
  MetricsFormat,
  ModelWorkerConfig,
} from "./config/types.js";
export { TORCHSERVE_CONTENT_TYPE } from "./exposition/torchserve-text.js";
export { renderTorchServeText } from "./exposition/series-store.js";
export type { FamilySpec } from "./exposition/torchserve-text.js";
export { formatJavaDouble } from "./exposition/java-double.js";
export { createConsoleLogger, createMemoryLogger } from "./log.js";
export type { Logger, MemoryLogger } from "./log.js";
