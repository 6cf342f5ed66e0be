import { expect } from "chai";
import { loadDefaultCatalog, parseCatalog } from "../../src/catalog/load.js";
import type { Catalog } from "../../src/catalog/types.js";
import { Scraper } from "../../src/exposition/scrape.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";
import { MetricRecordError, workerName } from "../../src/telemetry/recorder.js";

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
