import { hostname as osHostname } from "node:os";
import { MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import {
  createMemoryLogger,
  startMetricsService,
  type InferenceRecord,
  type MetricsService,
} from "../src/index.js";
import { forceGc } from "./lib/gc.js";
import { startServeMetricsService } from "./lib/peers.js";
import { fmt, times, type Check, type Scenario, type Table } from "./lib/report.js";
import { median, ratio, rotated } from "./lib/stats.js";

/** Something that records one inference request the way its library is meant to be used. */
interface Recorder {
  name: string;
  record(r: InferenceRecord): void;
}

const HOSTNAME = osHostname();
// A few models, so that attribute sets vary as in a server with several models loaded.
const MODELS = ["resnet", "bert", "llama", "whisper", "clip", "t5", "yolo", "sam"] as const;

/** The inputs of op `i`: varied, cheap to make, the same sequence for every recorder. */
function inferenceRecord(i: number): InferenceRecord {
  return {
    model: MODELS[i & 7] ?? "resnet",
    version: "1.0",
    status: 200,
    latencyMs: 5 + (i % 97) / 10,
    queueMs: (i % 13) / 10,
    backendMs: 4 + (i % 89) / 10,
    trace: undefined,
  };
}

/** The trace context of the traced requests: a request from a traced client (see README, Exemplars). */
const TRACE = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };

/**
 * The cost of recording one inference request: serve-metrics' `recordInference` (Requests2XX,
 * three ts_* counters, QueueTime, WorkerThreadTime and the duration histogram) against
 * prom-client making the same seven updates, and the OpenTelemetry SDK's instruments called
 * directly (what the recorder builds on). Batches of each in turn, several rounds, median ns/op.
 */
export const record: Scenario = async ({ quick, log }) => {
  const ops = quick ? 10_000 : 50_000;
  const rounds = quick ? 3 : 11;
  const service = await startServeMetricsService();
  const sdk = otelDirect(service.settings.requestDurationBuckets);
  const recorders: Recorder[] = [
    { name: "serve-metrics", record: (r) => service.recordInference(r) },
    // The same, each request with a traceparent: two exemplars kept per request.
    {
      name: "serve-metrics, traced",
      record: (r) => {
        // Each op's input is its own object.
        r.trace = TRACE;
        service.recordInference(r);
      },
    },
    promClient(service.settings.requestDurationBuckets),
    sdk.recorder,
  ];
  const samples = new Map<string, number[]>(recorders.map((r) => [r.name, []]));
  try {
    // Round 0 warms up: every call site optimized before anything counts.
    for (let round = 0; round <= rounds; round++) {
      log(`record: round ${round}/${rounds}`);
      for (const recorder of rotated(recorders, round)) {
        forceGc();
        const started = process.hrtime.bigint();
        for (let i = 0; i < ops; i++) recorder.record(inferenceRecord(i));
        const ns = Number(process.hrtime.bigint() - started) / ops;
        if (round > 0) samples.get(recorder.name)?.push(ns);
      }
    }
  } finally {
    await service.stop();
    await sdk.stop();
  }

  log("record: native buckets against classic only");
  // Shorter batches, more rounds: two services whose cost differs by tens of per cent, so the
  // median should come from many short turns rather than a few long ones that the load may skew.
  const native = await nativeAgainstClassic(quick ? 5_000 : 10_000, quick ? 3 : 41);

  const ns = (name: string): number => median(samples.get(name) ?? []);
  const sm = ns("serve-metrics");
  const rows = recorders.map((r) => [
    r.name,
    fmt(ns(r.name)),
    fmt(Math.min(...(samples.get(r.name) ?? []))),
    times(ratio(sm, ns(r.name))),
  ]);
  return {
    title: "Record: one inference request",
    notes: [
      `${ops.toLocaleString("en-US")} requests per batch, ${rounds} rounds after a warm-up round, recorders in turn ` +
        "with a rotating first and a forced GC before each batch; 8 models, so 8 attribute sets per metric. " +
        "Each op makes the 7 updates of `recordInference`: Requests2XX, ts_inference_requests_total, " +
        "ts_inference_latency_microseconds, ts_queue_latency_microseconds (counters), QueueTime, " +
        "WorkerThreadTime (gauges), serve_request_duration_seconds (histogram).",
      "serve-metrics adds the six counter and gauge updates up itself and hands them to the SDK at the next " +
        "collection (src/telemetry/pending-updates.ts): one SDK update per changed series per scrape or push, " +
        "paid in the scrape, not here; the histogram goes to the SDK on every request. serve-metrics runs " +
        "with its defaults, so with native buckets on serve_request_duration_seconds (`native_histograms`): " +
        "every request is also counted into the series' OpenTelemetry exponential accumulation, held by " +
        "src/telemetry/native-buckets.ts next to the bound series, not through a second SDK instrument (whose " +
        "record hashed the attributes again: 1.83× classic only before).",
      "`serve-metrics, traced`: every request carries a trace context, so its latency bucket and response " +
        "counter each keep it as their last exemplar (src/telemetry/pending-exemplars.ts).",
    ],
    tables: [
      { header: ["recorder", "median ns/op", "best ns/op", "serve-metrics / this"], rows },
      native.table,
    ],
    checks: native.checks,
  };
};

/** What one op of a {@link NativeComparison} path records. */
interface RecordPath {
  name: string;
  /** What the check calls it. */
  short: string;
  record(service: MetricsService, i: number): void;
}

/** A 1,024-line cycle of HandlerTime lines of 8 models, as a worker prints them (a request id each). */
const HANDLER_LINES = Array.from(
  { length: 1024 },
  (_, i) =>
    `[METRICS]HandlerTime.Milliseconds:${4 + (i % 89) / 10}|#ModelName:${MODELS[i & 7] ?? "resnet"},Level:Model` +
    `|#hostname:${HOSTNAME},1700000000,req-${i}`,
);

const PATHS: readonly RecordPath[] = [
  {
    name: "recordInference (the frontend's): serve_request_duration_seconds",
    short: "recordInference",
    record: (service, i) => service.recordInference(inferenceRecord(i)),
  },
  {
    name: "HandlerTime metric line (gauge + serve_handler_time_seconds)",
    short: "HandlerTime metric line",
    record: (service, i) => {
      service.recordMetricLine(HANDLER_LINES[i & 1023] ?? "");
    },
  },
];

/**
 * The same recording into a service with native buckets on (`native_histograms` at its default:
 * serve_request_duration_seconds, serve_handler_time_seconds, serve_prediction_time_seconds) and
 * into one with them off (empty), batches in turn; each batch ends with a collection into the
 * store, timed apart, where the native buckets are merged.
 */
async function nativeAgainstClassic(ops: number, rounds: number): Promise<{ table: Table; checks: Check[] }> {
  const start = (nativeOn: boolean): Promise<MetricsService> =>
    startMetricsService({
      env: {},
      logger: createMemoryLogger(),
      settings: {
        metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        numberOfGpu: 0,
        disableSystemMetrics: true,
        ...(nativeOn ? {} : { nativeHistograms: [] }),
      },
    });
  const services = { native: await start(true), classic: await start(false) };
  type Mode = keyof typeof services;
  const runs = PATHS.flatMap((path) => (["classic", "native"] as const).map((mode) => ({ path, mode })));
  const record = new Map(runs.map((r) => [r, [] as number[]]));
  const collect = new Map(runs.map((r) => [r, [] as number[]]));
  try {
    for (let round = 0; round <= rounds; round++) {
      for (const run of rotated(runs, round)) {
        const service = services[run.mode];
        forceGc();
        const started = process.hrtime.bigint();
        for (let i = 0; i < ops; i++) run.path.record(service, i);
        const recorded = process.hrtime.bigint();
        await service.scrapeChunks(["nothing"]);
        const collected = process.hrtime.bigint();
        if (round === 0) continue;
        record.get(run)?.push(Number(recorded - started) / ops);
        collect.get(run)?.push(Number(collected - recorded) / 1e6);
      }
    }
  } finally {
    await services.native.stop();
    await services.classic.stop();
  }
  const of = (m: Map<(typeof runs)[number], number[]>, path: RecordPath, mode: Mode): number =>
    median([...m].find(([r]) => r.path === path && r.mode === mode)?.[1] ?? []);
  const table: Table = {
    caption:
      `Native buckets (\`native_histograms\` at its default) against classic only (\`native_histograms=\`), ` +
      `the same ${ops.toLocaleString("en-US")}-op batches in turn, ${rounds} rounds after a warm-up round, each ` +
      "ended by a collection into the store " +
      "(timed apart: where the native buckets are merged):",
    header: [
      "path",
      "classic only ns/op",
      "native + classic ns/op",
      "native / classic",
      "collection ms: classic / native",
    ],
    rows: PATHS.map((path) => [
      path.name,
      fmt(of(record, path, "classic")),
      fmt(of(record, path, "native")),
      times(ratio(of(record, path, "native"), of(record, path, "classic"))),
      `${fmt(of(collect, path, "classic"))} / ${fmt(of(collect, path, "native"))}`,
    ]),
  };
  const checks = PATHS.map((path) => {
    const r = ratio(of(record, path, "native"), of(record, path, "classic"));
    return {
      target: `record (${path.short}) with native buckets ≤ 1.2× classic only`,
      measured: times(r),
      pass: r <= 1.2,
    };
  });
  return { table, checks };
}

/** prom-client, written the way its users write it: label objects literal at each call. */
function promClient(buckets: readonly number[]): Recorder {
  const registers = [new Registry()];
  const modelLabels = ["model_name", "model_version", "hostname"] as const;
  const hostLabels = ["Level", "Hostname"] as const;
  const help = "bench";
  const requests2xx = new Counter({ name: "Requests2XX", help, labelNames: hostLabels, registers });
  const requests = new Counter({
    name: "ts_inference_requests_total",
    help,
    labelNames: modelLabels,
    registers,
  });
  const latency = new Counter({
    name: "ts_inference_latency_microseconds",
    help,
    labelNames: modelLabels,
    registers,
  });
  const queueLatency = new Counter({
    name: "ts_queue_latency_microseconds",
    help,
    labelNames: modelLabels,
    registers,
  });
  const queueTime = new Gauge({ name: "QueueTime", help, labelNames: hostLabels, registers });
  const workerThreadTime = new Gauge({ name: "WorkerThreadTime", help, labelNames: hostLabels, registers });
  const duration = new Histogram({
    name: "serve_request_duration_seconds",
    help,
    labelNames: modelLabels,
    buckets: [...buckets],
    registers,
  });
  return {
    name: "prom-client",
    record: (r) => {
      const queueMs = r.queueMs ?? 0;
      const model = { model_name: r.model, model_version: r.version ?? "default", hostname: HOSTNAME };
      const host = { Level: "Host", Hostname: HOSTNAME };
      requests2xx.inc(host);
      requests.inc(model);
      latency.inc(model, r.latencyMs * 1000);
      queueLatency.inc(model, queueMs * 1000);
      queueTime.set(host, queueMs);
      workerThreadTime.set(host, Math.max(0, r.latencyMs - queueMs - (r.backendMs ?? 0)));
      duration.observe(model, r.latencyMs / 1000);
    },
  };
}

/** A reader that never exports: instruments only aggregate when some reader collects from them. */
class IdleReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {
    // Nothing buffered.
  }
  protected override async onShutdown(): Promise<void> {
    // Nothing to release.
  }
}

/** The OpenTelemetry SDK's instruments called directly, attributes literal at each call. */
function otelDirect(buckets: readonly number[]): { recorder: Recorder; stop(): Promise<void> } {
  const provider = new MeterProvider({ readers: [new IdleReader()] });
  const meter = provider.getMeter("bench");
  const requests2xx = meter.createCounter("Requests2XX");
  const requests = meter.createCounter("ts_inference_requests_total");
  const latency = meter.createCounter("ts_inference_latency_microseconds");
  const queueLatency = meter.createCounter("ts_queue_latency_microseconds");
  const queueTime = meter.createGauge("QueueTime");
  const workerThreadTime = meter.createGauge("WorkerThreadTime");
  const duration = meter.createHistogram("serve_request_duration_seconds", {
    advice: { explicitBucketBoundaries: [...buckets] },
  });
  return {
    recorder: {
      name: "otel sdk direct",
      record: (r) => {
        const queueMs = r.queueMs ?? 0;
        const model = { model_name: r.model, model_version: r.version ?? "default", hostname: HOSTNAME };
        const host = { Level: "Host", Hostname: HOSTNAME };
        requests2xx.add(1, host);
        requests.add(1, model);
        latency.add(r.latencyMs * 1000, model);
        queueLatency.add(queueMs * 1000, model);
        queueTime.record(queueMs, host);
        workerThreadTime.record(Math.max(0, r.latencyMs - queueMs - (r.backendMs ?? 0)), host);
        duration.record(r.latencyMs / 1000, model);
      },
    },
    stop: () => provider.shutdown(),
  };
}
