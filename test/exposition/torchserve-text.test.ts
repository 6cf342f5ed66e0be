import { ValueType } from "@opentelemetry/api";
import {
  AggregationTemporality,
  DataPointType,
  type DataPoint,
  type MetricData,
} from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import { parseCatalog } from "../../src/catalog/load.js";
import { metricsByName } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText } from "../../src/exposition/series-store.js";
import { createMemoryLogger } from "../../src/log.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";

const YAML = `
ts_metrics:
  counter:
    - { name: Requests2XX, unit: Count, dimensions: [Level, Hostname] }
  gauge:
    - { name: Plain, unit: Milliseconds, dimensions: [] }
    - { name: Tagged, unit: "weird\\\\unit", dimensions: [B, A] }
  histogram:
    - { name: Latency, unit: Seconds, dimensions: [Model] }
    - { name: Sizes, unit: Bytes, dimensions: [], buckets: [1, 10.5, 1e7] }
model_metrics:
  gauge:
    - { name: HandlerTime, unit: ms, dimensions: [ModelName, Level] }
`;

function setup(): Telemetry {
  return createTelemetry({
    metrics: parseCatalog(YAML, "test.yaml").metrics,
    format: "torchserve",
    hostname: "host-1",
    logger: createMemoryLogger(),
  });
}

async function render(t: Telemetry, filter?: string[]): Promise<string> {
  const { resourceMetrics } = await t.reader.collect();
  return renderTorchServeText(t.families, metricsByName(resourceMetrics), filter && new Set(filter));
}

describe("renderTorchServeText", () => {
  it("lists every family with HELP and TYPE before anything is recorded", async () => {
    expect(await render(setup())).to.equal(
      [
        "# HELP Requests2XX Torchserve prometheus counter metric with unit: Count",
        "# TYPE Requests2XX counter",
        "# HELP Plain Torchserve prometheus gauge metric with unit: Milliseconds",
        "# TYPE Plain gauge",
        "# HELP Tagged Torchserve prometheus gauge metric with unit: weird\\\\unit",
        "# TYPE Tagged gauge",
        "# HELP Latency Torchserve prometheus histogram metric with unit: Seconds",
        "# TYPE Latency histogram",
        "# HELP Sizes Torchserve prometheus histogram metric with unit: Bytes",
        "# TYPE Sizes histogram",
        "# HELP HandlerTime Torchserve prometheus gauge metric with unit: ms",
        "# TYPE HandlerTime gauge",
        "",
      ].join("\n"),
    );
  });

  it("prints samples with trailing commas, catalog label order and Java numbers", async () => {
    const t = setup();
    t.recorder.recordResponse(200);
    t.recorder.recordResponse(204);
    t.recorder.record("Plain", 12345678.9);
    t.recorder.record("Tagged", 0.0009, { A: "a", B: "b" });
    t.recorder.record("Tagged", 3, { A: "x", B: "y" });
    t.recorder.record("HandlerTime", 83.13, { ModelName: "resnet18", Level: "Model" });
    const text = await render(t);
    expect(text).to.include('Requests2XX{Level="Host",Hostname="host-1",} 2.0\n');
    expect(text).to.include("Plain 1.23456789E7\n");
    expect(text).to.include('Tagged{B="b",A="a",} 9.0E-4\nTagged{B="y",A="x",} 3.0\n');
    expect(text).to.include('HandlerTime{ModelName="resnet18",Level="Model",Hostname="host-1",} 83.13\n');
  });

  it("prints 0, 0.001 and 1e7 the way the Java client does", async () => {
    const t = setup();
    const values: [string, number][] = [
      ["zero", 0],
      ["milli", 0.001],
      ["big", 1e7],
    ];
    for (const [a, v] of values) t.recorder.record("Tagged", v, { A: a, B: "" });
    const text = await render(t, ["Tagged"]);
    expect(text.split("\n").slice(2, 5)).to.deep.equal([
      'Tagged{B="",A="zero",} 0.0',
      'Tagged{B="",A="milli",} 0.001',
      'Tagged{B="",A="big",} 1.0E7',
    ]);
  });

  it("prints NaN and infinities that reach it as NaN, +Inf and -Inf", () => {
    const point = (A: string, value: number): DataPoint<number> => ({
      startTime: [0, 0],
      endTime: [0, 0],
      attributes: { A, B: "" },
      value,
    });
    const data: MetricData = {
      descriptor: {
        name: "Tagged",
        description: "",
        unit: "",
        valueType: ValueType.DOUBLE,
      },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.GAUGE,
      dataPoints: [point("nan", NaN), point("pinf", Infinity), point("ninf", -Infinity)],
    };
    const families = setup().families.filter((f) => f.name === "Tagged");
    expect(
      renderTorchServeText(families, new Map([["Tagged", data]]))
        .split("\n")
        .slice(2),
    ).to.deep.equal([
      'Tagged{B="",A="nan",} NaN',
      'Tagged{B="",A="pinf",} +Inf',
      'Tagged{B="",A="ninf",} -Inf',
      "",
    ]);
  });

  it("escapes backslash, quote and newline in label values", async () => {
    const t = setup();
    t.recorder.record("Tagged", 1, { A: 'a"b', B: "c\\d\ne" });
    expect(await render(t, ["Tagged"])).to.include('Tagged{B="c\\\\d\\ne",A="a\\"b",} 1.0\n');
  });

  it("lays out histograms as cumulative buckets with le last, then _count and _sum", async () => {
    const t = setup();
    for (const v of [0.003, 0.2, 0.2, 3, 50]) t.recorder.record("Latency", v, { Model: "m" });
    const lines = (await render(t, ["Latency_bucket", "Latency_count", "Latency_sum"])).split("\n");
    expect(lines.slice(0, 2)).to.deep.equal([
      "# HELP Latency Torchserve prometheus histogram metric with unit: Seconds",
      "# TYPE Latency histogram",
    ]);
    const bounds = [
      "0.005",
      "0.01",
      "0.025",
      "0.05",
      "0.075",
      "0.1",
      "0.25",
      "0.5",
      "0.75",
      "1.0",
      "2.5",
      "5.0",
      "7.5",
      "10.0",
      "+Inf",
    ];
    const counts = [1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 4, 4, 4, 5];
    expect(lines.slice(2, 17)).to.deep.equal(
      bounds.map((b, i) => `Latency_bucket{Model="m",le="${b}",} ${counts[i]}.0`),
    );
    expect(lines.slice(17)).to.deep.equal([
      'Latency_count{Model="m",} 5.0',
      'Latency_sum{Model="m",} 53.403',
      "",
    ]);
  });

  it("uses a histogram's own buckets and prints unlabelled samples without braces", async () => {
    const t = setup();
    t.recorder.record("Sizes", 10.5);
    t.recorder.record("Sizes", 2e7);
    expect(await render(t, ["Sizes_bucket", "Sizes_count", "Sizes_sum"])).to.equal(
      [
        "# HELP Sizes Torchserve prometheus histogram metric with unit: Bytes",
        "# TYPE Sizes histogram",
        'Sizes_bucket{le="1.0",} 0.0',
        'Sizes_bucket{le="10.5",} 1.0',
        'Sizes_bucket{le="1.0E7",} 1.0',
        'Sizes_bucket{le="+Inf",} 2.0',
        "Sizes_count 2.0",
        "Sizes_sum 2.00000105E7",
        "",
      ].join("\n"),
    );
  });

  describe("name[] filter", () => {
    async function filtered(names: string[]): Promise<string[]> {
      const t = setup();
      t.recorder.recordResponse(200);
      t.recorder.record("Plain", 1);
      t.recorder.record("Latency", 0.5, { Model: "m" });
      const text = await render(t, names);
      return text
        .split("\n")
        .filter((l) => l !== "" && !l.startsWith("#"))
        .map((l) => l.split(/[{ ]/)[0] ?? "");
    }

    const table: [string[], string[]][] = [
      [["Plain"], ["Plain"]],
      [
        ["Plain", "Requests2XX"],
        ["Requests2XX", "Plain"],
      ],
      [["Latency"], []],
      [["Latency_count"], ["Latency_count"]],
      [
        ["Latency_sum", "Latency_count"],
        ["Latency_count", "Latency_sum"],
      ],
      [["Latency_bucket"], Array<string>(15).fill("Latency_bucket")],
      [["NoSuchMetric"], []],
      [[""], []],
      [["Tagged"], []],
    ];
    for (const [names, samples] of table) {
      it(`name[]=${names.join("&name[]=")} gives ${samples.length === 0 ? "nothing" : [...new Set(samples)].join(", ")}`, async () => {
        expect(await filtered(names)).to.deep.equal(samples);
      });
    }

    it("drops families left without samples, HELP and TYPE included", async () => {
      const t = setup();
      t.recorder.record("Plain", 1);
      expect(await render(t, ["Plain", "Tagged"])).to.equal(
        "# HELP Plain Torchserve prometheus gauge metric with unit: Milliseconds\n# TYPE Plain gauge\nPlain 1.0\n",
      );
      expect(await render(t, ["Tagged"])).to.equal("");
    });
  });
});
