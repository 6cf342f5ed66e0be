import fc from "fast-check";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { DEFAULT_BUCKETS, type Catalog } from "../../src/catalog/types.js";
import type { MetricsFormat } from "../../src/config/types.js";
import { Scraper } from "../../src/exposition/scrape.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { MetricLineIngest } from "../../src/sources/metric-ingest.js";
import { extraMetrics } from "../../src/telemetry/extra-metrics.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";
import type { RecordEvent } from "../../src/telemetry/recorder.js";

/** A real pipeline (catalog + the service's extra metrics) with a line ingest in front of it. */
export interface LineHarness {
  telemetry: Telemetry;
  ingest: MetricLineIngest;
  logger: MemoryLogger;
  /** Every update recorded since the harness was made, in order. */
  events: RecordEvent[];
  /** The `/metrics` text now. */
  scrape(): Promise<string>;
}

/** Options of {@link createLineHarness}. */
export interface LineHarnessOptions {
  format?: MetricsFormat;
  autoDetect?: boolean;
  catalog?: Catalog;
  maxLabelValueLength?: number;
  maxAutoDetected?: number;
}

/** Builds the pipeline and the ingest as the service wires them, hostname `h`. */
export function createLineHarness(options: LineHarnessOptions = {}): LineHarness {
  const format = options.format ?? "torchserve";
  const logger = createMemoryLogger();
  const catalog = options.catalog ?? loadDefaultCatalog();
  const declared = new Set(catalog.metrics.map((m) => m.name));
  const telemetry = createTelemetry({
    metrics: [...catalog.metrics, ...extraMetrics(DEFAULT_BUCKETS).filter((m) => !declared.has(m.name))],
    format,
    hostname: "h",
    logger,
  });
  const events: RecordEvent[] = [];
  telemetry.recorder.addListener((e) => events.push(e));
  const scraper = new Scraper(telemetry.reader, telemetry.families, { mode: "prometheus", format }, logger);
  const ingest = new MetricLineIngest({
    recorder: telemetry.recorder,
    register: (def) => telemetry.register(def),
    autoDetect: options.autoDetect ?? false,
    maxLabelValueLength: options.maxLabelValueLength,
    maxAutoDetected: options.maxAutoDetected,
    logger,
  });
  return { telemetry, ingest, logger, events, scrape: () => scraper.scrape(undefined) };
}

/**
 * Names a hostile or careless line may carry: model metrics, the frontend's, system and serve_*
 * metrics, sample names of histograms, reserved-looking names, and random ones.
 */
export const metricNameArbitrary: fc.Arbitrary<string> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.constantFrom(
      "HandlerTime",
      "PredictionTime",
      "Requests2XX",
      "Requests5XX",
      "ts_inference_requests_total",
      "ts_inference_latency_microseconds",
      "WorkerLoadTime",
      "QueueTime",
      "CPUUtilization",
      "GPUUtilization",
      "serve_request_duration_seconds",
      "serve_request_duration_seconds_bucket",
      "serve_request_duration_seconds_count",
      "serve_request_duration_seconds_sum",
      "serve_queue_depth",
      "serve_metric_lines_rejected_total",
      "serve_request_duration",
      "Auto",
      "Auto_count",
      "Auto_sum",
      "Auto_bucket",
      "AutoTotal",
      "auto_total",
      "__name__",
      "target_info",
      "a__b",
    ),
  },
  { weight: 2, arbitrary: fc.stringMatching(/^[A-Za-z_:][A-Za-z0-9_:]{0,12}$/) },
  { weight: 1, arbitrary: fc.string({ maxLength: 12 }) },
);

/** Label names a line may carry: ordinary, reserved (`__name__`, `le`, `quantile`, the overflow label) and odd. */
export const labelNameArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    "ModelName",
    "Level",
    "Hostname",
    "hostname",
    "model_name",
    "__name__",
    "__x",
    "le",
    "quantile",
    "otel_metric_overflow",
    "otel.metric.overflow",
    "a__b",
    "a_b",
    "__proto__",
    "constructor",
  ),
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,8}$/),
  fc.string({ maxLength: 6 }),
);

/** Label values: ordinary, empty, quoting characters, control characters, beyond ASCII, long. */
export const labelValueArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom("mnist", "", "Model", 'a"b', "a\\b", "a\rb", "a\nb", "a\tb", "\u0000", "é✓", "a\u2028b"),
  fc.string({ maxLength: 12 }),
  fc.string({ unit: "binary", maxLength: 8 }),
  fc.integer({ min: 1000, max: 1100 }).map((n) => "v".repeat(n)),
);

/** Values: ordinary, negative, huge (an accumulating total could overflow), and not numbers at all. */
export const valueTextArbitrary: fc.Arbitrary<string> = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e6, max: 1e6 }).map(String),
  fc.constantFrom(
    "0",
    "1",
    "-1",
    "1e308",
    "-1e308",
    "9007199254740991",
    "9007199254740992",
    "1e999",
    "NaN",
    "0x10",
  ),
);

/** What precedes the marker: mostly nothing or TorchServe's prefixes, else text that only quotes it. */
export const markerPrefixArbitrary: fc.Arbitrary<string> = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      "",
      "INFO > ",
      "2024-01-01T00:00:00,001 [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - ",
    ),
    weight: 6,
  },
  { arbitrary: fc.constantFrom("great movie! ", " ", "result=", "INFO:root:"), weight: 2 },
  { arbitrary: fc.string({ maxLength: 8 }), weight: 1 },
);

/** One random `[METRICS]` line, mostly well-formed in shape so that it reaches the ingest's checks. */
export const metricLineTextArbitrary: fc.Arbitrary<string> = fc
  .record({
    prefix: markerPrefixArbitrary,
    marker: fc.constantFrom("[METRICS]", "[METRICS]", "[METRICS]", ""),
    name: metricNameArbitrary,
    unit: fc.constantFrom("Milliseconds", "Count", "ms", "Percent"),
    value: valueTextArbitrary,
    // Random dimensions, or those a known metric declares: a forged line must reach the checks
    // that matter, not fail for a missing label.
    dimensions: fc.oneof(
      fc.array(fc.tuple(labelNameArbitrary, labelValueArbitrary), { maxLength: 4 }),
      fc.constantFrom<[string, string][]>(
        [],
        [["Level", "Host"]],
        [
          ["ModelName", "m"],
          ["Level", "Model"],
        ],
        [
          ["model_name", "m"],
          ["model_version", "1"],
        ],
        [
          ["WorkerName", "W-1-m_1"],
          ["Level", "Host"],
        ],
        [
          ["Level", "Host"],
          ["DeviceId", "0"],
        ],
        [["model_name", "m"]],
        [
          ["source", "http"],
          ["reason", "malformed"],
        ],
      ),
    ),
    type: fc.constantFrom("", "|#type:COUNTER", "|#type:GAUGE", "|#type:HISTOGRAM", "", "|#type:summary"),
    hostname: fc.oneof(
      { arbitrary: fc.constantFrom("h", "worker-1", "h\r"), weight: 4 },
      { arbitrary: labelValueArbitrary, weight: 1 },
    ),
    requestIds: fc.constantFrom("", ",r1", ",r1,r2"),
    suffix: fc.constantFrom("", "", "", "", "\r", " trailing", " [METRICS]"),
  })
  .map(
    (l) =>
      `${l.prefix}${l.marker}${l.name}.${l.unit}:${l.value}|#${l.dimensions.map(([k, v]) => `${k}:${v}`).join(",")}` +
      `${l.type}|#hostname:${l.hostname},1699061430${l.requestIds}${l.suffix}`,
  );
