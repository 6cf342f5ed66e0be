import { expect } from "chai";
import { loadDefaultCatalog, parseCatalog } from "../../src/catalog/load.js";
import { DEFAULT_BUCKETS, type Catalog } from "../../src/catalog/types.js";
import { Scraper } from "../../src/exposition/scrape.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { extraMetrics } from "../../src/telemetry/extra-metrics.js";
import { DEFAULT_HISTOGRAM_GAUGES } from "../../src/telemetry/gauge-histograms.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";
import { MetricRecordError, workerName } from "../../src/telemetry/recorder.js";
import { decodeMetricFamilies } from "../support/metric-family.js";

function setup(catalog: Catalog = loadDefaultCatalog()): {
  t: Telemetry;
  logger: MemoryLogger;
  text: () => Promise<string>;
} {
  const logger = createMemoryLogger();
  const t = createTelemetry({ metrics: catalog.metrics, format: "torchserve", hostname: "h", logger });
  const scraper = new Scraper(t.reader, t.families, { mode: "prometheus", format: "torchserve" }, logger);
  const text = () => scraper.scrape(undefined);
  return { t, logger, text };
}

describe("MetricRecorder", () => {
  it("records an inference request into the response class, ts_* counters and frontend gauges", async () => {
    const { t, text } = setup();
    t.recorder.recordInference({
      model: "resnet18",
      status: 200,
      latencyMs: 290.371129,
      queueMs: 0.36521,
      backendMs: 289,
    });
    t.recorder.recordInference({ model: "resnet18", version: "2.0", status: 503, latencyMs: 1, queueMs: 0 });
    const out = await text();
    const series = 'model_name="resnet18",model_version="default",hostname="h",';
    expect(out).to.include(`ts_inference_requests_total{${series}} 1.0\n`);
    expect(out).to.include(`ts_inference_latency_microseconds{${series}} 290371.129\n`);
    expect(out).to.include(`ts_queue_latency_microseconds{${series}} 365.21\n`);
    expect(out).to.include(
      'ts_inference_requests_total{model_name="resnet18",model_version="2.0",hostname="h",} 1.0\n',
    );
    expect(out).to.include('Requests2XX{Level="Host",Hostname="h",} 1.0\n');
    expect(out).to.include('Requests5XX{Level="Host",Hostname="h",} 1.0\n');
    expect(out).to.include('QueueTime{Level="Host",Hostname="h",} 0.0\n');
    expect(out).to.include('WorkerThreadTime{Level="Host",Hostname="h",} 1.0\n');
  });

  it("classes statuses: 2xx, 4xx, and everything else as 5XX", async () => {
    const { t, text } = setup();
    for (const status of [200, 299, 400, 404, 499, 500, 302, 100]) t.recorder.recordResponse(status);
    const out = await text();
    expect(out).to.include('Requests2XX{Level="Host",Hostname="h",} 2.0\n');
    expect(out).to.include('Requests4XX{Level="Host",Hostname="h",} 3.0\n');
    expect(out).to.include('Requests5XX{Level="Host",Hostname="h",} 3.0\n');
  });

  it("names workers W-<port>-<model>_<version> and records their load time", async () => {
    const { t, text } = setup();
    t.recorder.recordWorkerLoad({ workerName: workerName(9000, "resnet18", "1.0"), loadTimeMs: 4593 });
    expect(await text()).to.include(
      'WorkerLoadTime{WorkerName="W-9000-resnet18_1.0",Level="Host",Hostname="h",} 4593.0\n',
    );
  });

  it("records host and GPU readings; an undefined GPU field gives no sample", async () => {
    const { t, text } = setup();
    t.recorder.recordSystem(
      {
        cpuUtilization: 12.5,
        memoryUsedMiB: 8245.62109375,
        memoryAvailableMiB: 5829.7421875,
        memoryUtilization: 64.4,
        diskUsedGiB: 20.054508209228516,
        diskAvailableGiB: 325.05113983154297,
        diskUtilization: 5.8,
      },
      [
        { index: 0, utilization: 37, memoryUsedMiB: 1024, memoryUtilization: 1.25 },
        { index: 1, utilization: undefined, memoryUsedMiB: 2048, memoryUtilization: undefined },
      ],
    );
    const out = await text();
    expect(out).to.include('CPUUtilization{Level="Host",Hostname="h",} 12.5\n');
    expect(out).to.include('MemoryUsed{Level="Host",Hostname="h",} 8245.62109375\n');
    expect(out).to.include('DiskAvailable{Level="Host",Hostname="h",} 325.05113983154297\n');
    expect(out).to.include('GPUUtilization{Level="Host",DeviceId="0",Hostname="h",} 37.0\n');
    expect(out).to.include('GPUMemoryUsed{Level="Host",DeviceId="1",Hostname="h",} 2048.0\n');
    expect(out).not.to.match(/GPUUtilization\{[^}]*DeviceId="1"/);
    expect(out).not.to.match(/GPUMemoryUtilization\{[^}]*DeviceId="1"/);
  });

  it("records catalog metrics by name, binding dimensions by name and adding Hostname", async () => {
    const { t, text } = setup();
    t.recorder.record("PredictionTime", 71.95, { Level: "Model", ModelName: "mnist" });
    t.recorder.record("HandlerTime", 1, { ModelName: "mnist", Level: "Model", Hostname: "worker-host" });
    const out = await text();
    expect(out).to.include('PredictionTime{ModelName="mnist",Level="Model",Hostname="h",} 71.95\n');
    expect(out).to.include('HandlerTime{ModelName="mnist",Level="Model",Hostname="worker-host",} 1.0\n');
  });

  const refusals: [string, () => [string, number, Record<string, string>], RegExp][] = [
    ["an unknown metric", () => ["Nope", 1, {}], /Nope: not declared in the metrics catalog/],
    [
      "a missing dimension",
      () => ["PredictionTime", 1, { Level: "Model" }],
      /PredictionTime: dimension ModelName is missing/,
    ],
    [
      "an undeclared dimension",
      () => ["PredictionTime", 1, { Level: "Model", ModelName: "m", Extra: "x" }],
      /dimension Extra is not declared/,
    ],
    [
      "a non-finite value",
      () => ["PredictionTime", NaN, { Level: "Model", ModelName: "m" }],
      /value NaN is not a finite number/,
    ],
    [
      "a negative counter increment",
      () => ["Requests2XX", -1, { Level: "Host" }],
      /a counter cannot be decreased/,
    ],
    [
      "a counter increment that could make the total infinite (1e308 twice would)",
      () => ["Requests2XX", 1e308, { Level: "Host" }],
      /value 1e\+308 is beyond ±9007199254740991/,
    ],
  ];
  for (const [what, args, message] of refusals) {
    it(`refuses ${what} with a MetricRecordError and records nothing`, async () => {
      const { t, text } = setup();
      const before = await text();
      expect(() => t.recorder.record(...args())).to.throw(MetricRecordError, message);
      expect(await text()).to.equal(before);
    });
  }

  it("takes an increment of up to 2^53 - 1, and one as large again, keeping the counter finite", async () => {
    const { t, text } = setup();
    t.recorder.record("Requests2XX", Number.MAX_SAFE_INTEGER, { Level: "Host" });
    t.recorder.record("Requests2XX", Number.MAX_SAFE_INTEGER, { Level: "Host" });
    expect(await text()).to.include('Requests2XX{Level="Host",Hostname="h",} 1.8014398509481982E16\n');
  });

  it("refuses a histogram observation beyond ±(2^53 - 1), and lets a gauge take any finite value", async () => {
    const { t, text } = setup(
      parseCatalog(
        "model_metrics:\n  histogram:\n    - {name: H, unit: ms, dimensions: []}\n  gauge:\n    - {name: G, unit: ms, dimensions: []}\n",
        "c.yaml",
      ),
    );
    expect(() => t.recorder.record("H", -1e300)).to.throw(MetricRecordError, /beyond/);
    t.recorder.record("G", 1e308);
    const out = await text();
    expect(out).to.include('G{Hostname="h",} 1.0E308\n');
    expect(out).not.to.include("H_sum");
  });

  it("reads only the dimensions given, never Object.prototype's members (a dimension named constructor)", async () => {
    const { t, text } = setup(
      parseCatalog(
        "model_metrics:\n  gauge:\n    - {name: P, unit: ms, dimensions: [constructor]}\n",
        "c.yaml",
      ),
    );
    expect(() => t.recorder.record("P", 1, {})).to.throw(
      MetricRecordError,
      /dimension constructor is missing/,
    );
    t.recorder.record("P", 2, { constructor: "c" });
    expect(await text()).to.include('P{constructor="c",Hostname="h",} 2.0\n');
  });

  it("skips frontend metrics a custom catalog drops, and warns once about labels it cannot fill", async () => {
    const { t, logger, text } = setup(
      parseCatalog(
        "ts_metrics:\n  gauge:\n    - {name: QueueTime, unit: ms, dimensions: [Level, Region]}\n",
        "c.yaml",
      ),
    );
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 1 });
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 1 });
    expect(await text()).to.equal(
      "# HELP QueueTime Torchserve prometheus gauge metric with unit: ms\n# TYPE QueueTime gauge\n",
    );
    expect(logger.lines.filter((l) => l.includes("QueueTime"))).to.deep.equal([
      "WARN QueueTime: not recorded, the catalog asks for dimension Region which serve-metrics cannot fill",
    ]);
  });
});

/** Each format's rendering of the samples these tests read: `sample(name, labels)` → the line's start. */
const FORMATS = {
  torchserve: {
    duration: "serve_request_duration_seconds",
    handler: "serve_handler_time_seconds",
    prediction: "serve_prediction_time_seconds",
    queueTime: "serve_queue_time_seconds",
    batch: "serve_batch_size",
    responses: "serve_inference_responses_total",
    requests2xx: "Requests2XX",
    labels: (labels: string) => `{${labels.split(",").join(",")},}`,
    value: (v: string) => (v.includes(".") || v.includes("E") ? v : `${v}.0`),
  },
  otel: {
    duration: "serve_request_duration",
    handler: "serve_handler_time_seconds",
    prediction: "serve_prediction_time_seconds",
    queueTime: "serve_queue_time_seconds",
    batch: "serve_batch_size",
    responses: "serve_inference_responses_total",
    requests2xx: "serve_requests_2xx_total",
    labels: (labels: string) => `{${labels}}`,
    value: (v: string) => v,
  },
} as const;

function setupWith(
  format: keyof typeof FORMATS,
  histogramGauges: readonly string[] = DEFAULT_HISTOGRAM_GAUGES,
  catalog: Catalog = loadDefaultCatalog(),
) {
  const logger = createMemoryLogger();
  const t = createTelemetry({
    metrics: [...catalog.metrics, ...extraMetrics(DEFAULT_BUCKETS)],
    format,
    hostname: "h",
    logger,
    histogramGauges,
  });
  const scraper = new Scraper(t.reader, t.families, { mode: "prometheus", format }, logger);
  const f = FORMATS[format];
  /** One sample line as this format writes it. */
  const line = (name: string, labels: string, value: string): string =>
    `\n${name}${f.labels(labels)} ${f.value(value)}\n`;
  return { t, logger, f, line, text: () => scraper.scrape(undefined) };
}

for (const format of ["torchserve", "otel"] as const) {
  describe(`MetricRecorder, per-model responses and histograms (metrics_format=${format})`, () => {
    it("recordAccess observes the request duration and counts the status class per model version", async () => {
      const { t, f, line, text } = setupWith(format);
      t.recorder.recordAccess({ model: "mnist", version: "1.0", status: 200, latencyMs: 118 });
      t.recorder.recordAccess({ model: "mnist", version: "1.0", status: 503, latencyMs: 2000 });
      t.recorder.recordAccess({ model: "mnist", version: "default", status: 400, latencyMs: 5 });
      const out = await text();
      const v1 = 'model_name="mnist",model_version="1.0"';
      expect(out).to.include(line(`${f.duration}_count`, `${v1},hostname="h"`, "2"));
      expect(out).to.include(line(`${f.duration}_sum`, `${v1},hostname="h"`, "2.118"));
      expect(out).to.include(line(`${f.duration}_bucket`, `${v1},hostname="h",le="0.25"`, "1"));
      expect(out).to.include(line(`${f.duration}_bucket`, `${v1},hostname="h",le="2.5"`, "2"));
      expect(out).to.include(line(f.responses, `${v1},status_class="2XX",hostname="h"`, "1"));
      expect(out).to.include(line(f.responses, `${v1},status_class="5XX",hostname="h"`, "1"));
      expect(out).to.include(
        line(f.responses, 'model_name="mnist",model_version="default",status_class="4XX",hostname="h"', "1"),
      );
      // Each version's three classes, the ones it never answered at 0.
      expect(out.match(new RegExp(`^${f.responses}\\{`, "gm"))).to.have.length(6);
      expect(out).to.include(line(f.responses, `${v1},status_class="4XX",hostname="h"`, "0"));
    });

    it("modelKnown starts a model version's response classes and duration histogram at zero, before any request", async () => {
      const { t, f, line, text } = setupWith(format);
      t.recorder.modelKnown("idle", "1.0");
      const out = await text();
      const v = 'model_name="idle",model_version="1.0"';
      for (const status_class of ["2XX", "4XX", "5XX"])
        expect(out).to.include(line(f.responses, `${v},status_class="${status_class}",hostname="h"`, "0"));
      expect(out).to.include(line(`${f.duration}_count`, `${v},hostname="h"`, "0"));
      expect(out).to.include(line(`${f.duration}_sum`, `${v},hostname="h"`, "0"));
      expect(out).to.include(line(`${f.duration}_bucket`, `${v},hostname="h",le="+Inf"`, "0"));
      expect(out).to.include(line(`${f.duration}_bucket`, `${v},hostname="h",le="0.005"`, "0"));
      // TorchServe prints its ts_* counters only from the first request (torchserve_zero_series=false).
      expect(out).not.to.match(/^(ts_inference_|serve_inference_requests|serve_inference_latency)/m);
      // Known again later, after traffic: nothing is reset or added.
      t.recorder.recordInference({ model: "idle", version: "1.0", status: 200, latencyMs: 20 });
      t.recorder.modelKnown("idle", "1.0");
      const after = await text();
      expect(after).to.include(line(f.responses, `${v},status_class="2XX",hostname="h"`, "1"));
      expect(after).to.include(line(`${f.duration}_count`, `${v},hostname="h"`, "1"));
    });

    it("modelKnown starts the ts_* counters at zero too with torchserve_zero_series", async () => {
      const logger = createMemoryLogger();
      const catalog = loadDefaultCatalog();
      const t = createTelemetry({
        metrics: [...catalog.metrics, ...extraMetrics(DEFAULT_BUCKETS)],
        format,
        hostname: "h",
        logger,
        torchServeZeroSeries: true,
      });
      const scraper = new Scraper(t.reader, t.families, { mode: "prometheus", format }, logger);
      t.recorder.modelKnown("idle", "1.0");
      const out = await scraper.scrape(undefined);
      const names =
        format === "torchserve"
          ? [
              "ts_inference_requests_total",
              "ts_inference_latency_microseconds",
              "ts_queue_latency_microseconds",
            ]
          : ["serve_inference_requests_total", "serve_inference_latency_total", "serve_queue_latency_total"];
      const labels = 'model_name="idle",model_version="1.0",hostname="h"';
      for (const name of names)
        expect(out).to.include(FORMATS[format].labels(labels).replace(/^/, `\n${name}`));
      // Gauges keep a last value, which a model without requests does not have.
      expect(out).not.to.match(/^(QueueTime|WorkerThreadTime|serve_queue_time|serve_worker_thread)\{/m);
      expect(logger.lines).to.deep.equal([]);
    });

    it("recordAccess leaves Requests2XX/4XX/5XX and the ts_* counters to TorchServe's own lines", async () => {
      const { t, f, text } = setupWith(format);
      t.recorder.recordAccess({ model: "mnist", version: "1.0", status: 200, latencyMs: 1 });
      t.recorder.recordAccess({ model: "mnist", version: "1.0", status: 500, latencyMs: 1 });
      const out = await text();
      expect(out).to.match(new RegExp(`^${f.responses}\\{`, "m"));
      expect(out).not.to.match(/^(Requests.XX|serve_requests_.xx_total)\{/m);
      expect(out).not.to.match(/^(ts_inference_|serve_inference_requests|serve_inference_latency)/m);
    });

    it("recordAccess records nothing for a 404: a client's URI must not make a model's series", async () => {
      const { t, text } = setupWith(format);
      const before = await text();
      t.recorder.recordAccess({ model: "no-such-model", version: "default", status: 404, latencyMs: 1 });
      expect(await text()).to.equal(before);
    });

    it("recordInference counts each response's class per model version, in the series recordAccess uses", async () => {
      const { t, f, line, text } = setupWith(format);
      t.recorder.recordInference({ model: "m", version: "2.0", status: 200, latencyMs: 1 });
      t.recorder.recordAccess({ model: "m", version: "2.0", status: 200, latencyMs: 1 });
      t.recorder.recordInference({ model: "m", status: 404, latencyMs: 1 });
      t.recorder.recordInference({ model: "m", status: 302, latencyMs: 1 });
      // The client left before a response: the request is counted, no response class is.
      t.recorder.recordInference({ model: "gone", status: undefined, latencyMs: 1 });
      const out = await text();
      expect(out).to.include(
        line(f.responses, 'model_name="m",model_version="2.0",status_class="2XX",hostname="h"', "2"),
      );
      expect(out).to.include(
        line(f.responses, 'model_name="m",model_version="default",status_class="4XX",hostname="h"', "1"),
      );
      expect(out).to.include(
        line(f.responses, 'model_name="m",model_version="default",status_class="5XX",hostname="h"', "1"),
      );
      // Known from its request, but no class was answered.
      expect(out).to.include(
        line(f.responses, 'model_name="gone",model_version="default",status_class="2XX",hostname="h"', "0"),
      );
      expect(out).not.to.match(new RegExp(`^${f.responses}\\{model_name="gone".* [1-9]`, "m"));
      expect(out).to.include(line(f.requests2xx, 'Level="Host",Hostname="h"', "1"));
    });

    it("observes every listed gauge value into a histogram per model, in seconds; the gauge keeps its last value", async () => {
      const { t, f, line, text } = setupWith(format);
      t.recorder.record("HandlerTime", 62.5, { ModelName: "mnist", Level: "Model", Hostname: "worker-1" });
      t.recorder.record("HandlerTime", 125, { ModelName: "mnist", Level: "Model", Hostname: "worker-1" });
      t.recorder.record("HandlerTime", 5, { ModelName: "resnet", Level: "Model", Hostname: "worker-1" });
      t.recorder.record("PredictionTime", 250, { ModelName: "mnist", Level: "Model" });
      const out = await text();
      const mnist = 'model_name="mnist",hostname="worker-1"';
      expect(out).to.include(line(`${f.handler}_count`, mnist, "2"));
      expect(out).to.include(line(`${f.handler}_sum`, mnist, "0.1875"));
      expect(out).to.include(line(`${f.handler}_bucket`, `${mnist},le="0.05"`, "0"));
      expect(out).to.include(line(`${f.handler}_bucket`, `${mnist},le="0.075"`, "1"));
      expect(out).to.include(line(`${f.handler}_bucket`, `${mnist},le="0.25"`, "2"));
      expect(out).to.include(line(`${f.handler}_count`, 'model_name="resnet",hostname="worker-1"', "1"));
      expect(out).to.include(line(`${f.prediction}_sum`, 'model_name="mnist",hostname="h"', "0.25"));
      // The gauge itself is unchanged: the last value, all its labels.
      const gauge = format === "torchserve" ? "HandlerTime" : "serve_model_handler_time";
      expect(out).to.include(line(gauge, 'ModelName="mnist",Level="Model",Hostname="worker-1"', "125"));
    });

    it("observes the frontend's own gauges too when listed (QueueTime, no model label)", async () => {
      const { t, f, line, text } = setupWith(format, ["QueueTime"]);
      t.recorder.recordInference({ model: "m", status: 200, latencyMs: 10, queueMs: 2 });
      t.recorder.recordInference({ model: "m", status: 200, latencyMs: 10, queueMs: 4 });
      const out = await text();
      expect(out).to.include(line(`${f.queueTime}_count`, 'hostname="h"', "2"));
      expect(out).to.include(line(`${f.queueTime}_sum`, 'hostname="h"', "0.006"));
      expect(out).not.to.include(`${f.handler}_`);
    });

    it("gives no histogram to a gauge that is not listed", async () => {
      const { t, f, text } = setupWith(format, []);
      t.recorder.record("HandlerTime", 71.5, { ModelName: "mnist", Level: "Model" });
      const out = await text();
      expect(out).not.to.include(f.handler);
      expect(out).not.to.include(f.prediction);
    });

    it("observes a gauge in another unit as it is, in VALUE_BUCKETS", async () => {
      const catalog = parseCatalog(
        "model_metrics:\n  gauge:\n    - {name: BatchSize, unit: Count, dimensions: [ModelName, Level]}\n",
        "c.yaml",
      );
      const { t, f, line, text } = setupWith(format, ["BatchSize"], catalog);
      t.recorder.record("BatchSize", 8, { ModelName: "m", Level: "Model" });
      const out = await text();
      expect(out).to.include(line(`${f.batch}_sum`, 'model_name="m",hostname="h"', "8"));
      expect(out).to.include(
        line(`${f.batch}_bucket`, `model_name="m",hostname="h",le="${f.value("5")}"`, "0"),
      );
      expect(out).to.include(
        line(`${f.batch}_bucket`, `model_name="m",hostname="h",le="${f.value("10")}"`, "1"),
      );
    });
  });
}

describe("MetricRecorder, gauge histograms", () => {
  it("sets the gauge but does not observe a negative or huge value, and warns once per histogram", async () => {
    const { t, logger, text } = setupWith("torchserve");
    t.recorder.record("HandlerTime", -1, { ModelName: "m", Level: "Model" });
    t.recorder.record("HandlerTime", 1e300, { ModelName: "m", Level: "Model" });
    const out = await text();
    expect(out).to.include('HandlerTime{ModelName="m",Level="Model",Hostname="h",} 1.0E300\n');
    expect(out).not.to.include("serve_handler_time_seconds_count");
    expect(logger.lines).to.deep.equal([
      "WARN serve_handler_time_seconds: HandlerTime value -1 not observed (a histogram takes values from 0 to 9007199254740991)",
    ]);
  });

  it("tells listeners of the gauge's update only: the observation is derived from it", () => {
    const { t } = setupWith("torchserve");
    const heard: string[] = [];
    t.recorder.addListener((e) => heard.push(`${e.definition.name} ${e.value}`));
    t.recorder.record("PredictionTime", 12, { ModelName: "m", Level: "Model" });
    expect(heard).to.deep.equal(["PredictionTime 12"]);
  });
});

describe("MetricRecorder exemplars", () => {
  const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };
  const metrics = () => [...loadDefaultCatalog().metrics, ...extraMetrics(DEFAULT_BUCKETS)];

  it("offers a traced request's latency and response, and nothing for an untraced one", () => {
    const t = createTelemetry({
      metrics: metrics(),
      format: "torchserve",
      hostname: "h",
      logger: createMemoryLogger(),
    });
    const pending = t.exemplars;
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 30 });
    expect(pending?.size).to.equal(0);
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 40, trace });
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 45 });
    const updates = pending?.take() ?? [];
    expect(
      updates.map((u) => [
        u.family,
        u.exemplars.flatMap((e) => (e === undefined ? [] : [[e.value, e.labels]])),
      ]),
    ).to.deep.equal([
      ["serve_request_duration_seconds", [[0.04, { trace_id: trace.traceId, span_id: trace.spanId }]]],
      ["serve_inference_responses_total", [[1, { trace_id: trace.traceId, span_id: trace.spanId }]]],
    ]);
  });

  it("offers a gauge histogram's observation with the line's request id", () => {
    const t = createTelemetry({
      metrics: loadDefaultCatalog().metrics,
      format: "torchserve",
      hostname: "h",
      logger: createMemoryLogger(),
      histogramGauges: DEFAULT_HISTOGRAM_GAUGES,
    });
    t.recorder.record("HandlerTime", 12, { ModelName: "m", Level: "Model" });
    expect(t.exemplars?.size).to.equal(0);
    t.recorder.record("HandlerTime", 12, { ModelName: "m", Level: "Model" }, { requestId: "r-1" });
    const [update] = t.exemplars?.take() ?? [];
    expect(update?.family).to.equal("serve_handler_time_seconds");
    expect(update?.attributes).to.deep.equal({ model_name: "m", hostname: "h" });
    expect(update?.exemplars.filter((e) => e !== undefined).map((e) => [e.value, e.labels])).to.deep.equal([
      [0.012, { request_id: "r-1" }],
    ]);
  });

  it("keeps exemplars of kept series only, however many label sets come: counted in the protobuf scrape", async () => {
    const logger = createMemoryLogger();
    const t = createTelemetry({
      metrics: metrics(),
      format: "torchserve",
      hostname: "h",
      logger,
      maxSeriesPerMetric: 20,
    });
    const scraper = new Scraper(
      t.reader,
      t.families,
      { mode: "prometheus", format: "torchserve", exemplars: t.exemplars, seriesLimit: () => 20 },
      logger,
    );
    const count = async (): Promise<number> => {
      let n = 0;
      for (const family of decodeMetricFamilies(
        Buffer.concat(await scraper.scrapeChunks(undefined, "protobuf")),
      )) {
        for (const m of family.metric) {
          if (m.counter?.exemplar) n++;
          for (const b of m.histogram?.bucket ?? []) if (b.exemplar) n++;
        }
      }
      return n;
    };
    for (let round = 0; round < 3; round++) {
      for (let i = 0; i < 500; i++) {
        t.recorder.recordInference({ model: `m${round}-${i}`, status: 200, latencyMs: 40, trace });
      }
      // 20 kept latency series, one bucket each; of the response counter's 20 kept series (a model's
      // three status classes start at zero together) 7 are a 2XX with its one exemplar.
      expect(await count()).to.equal(27);
    }
    expect(t.exemplars?.size).to.equal(0);
  });

  it("keeps none in OTel naming, whose exposition shows none", () => {
    const t = createTelemetry({
      metrics: metrics(),
      format: "otel",
      hostname: "h",
      logger: createMemoryLogger(),
    });
    expect(t.exemplars).to.equal(undefined);
    t.recorder.recordInference({ model: "m", status: 200, latencyMs: 40, trace });
  });
});
