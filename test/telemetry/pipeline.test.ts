import { AggregationType, InstrumentType } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import { parseCatalog } from "../../src/catalog/load.js";
import { metricsByName } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText } from "../../src/exposition/series-store.js";
import { createMemoryLogger } from "../../src/log.js";
import { renderOtelText } from "../../src/exposition/otel-text.js";
import {
  createTelemetry,
  MetricRegistrationError,
  type TelemetryOptions,
} from "../../src/telemetry/pipeline.js";

const METRICS = parseCatalog(
  `ts_metrics:
  histogram:
    - { name: Latency, unit: Seconds, dimensions: [Model] }
  gauge:
    - { name: Depth, unit: Count, dimensions: [Model] }
`,
  "t.yaml",
).metrics;

function setup(extra: Partial<TelemetryOptions> = {}) {
  return createTelemetry({
    metrics: METRICS,
    format: "torchserve",
    hostname: "h",
    logger: createMemoryLogger(),
    ...extra,
  });
}

/** A model metric registered at run time, as auto-detection does. */
function def(name: string, type: "counter" | "gauge" | "histogram") {
  return {
    name,
    type,
    unit: "Count",
    dimensions: ["Hostname"],
    section: "model_metrics" as const,
    buckets: undefined,
  };
}

describe("createTelemetry", () => {
  it("merges a configured view into the instrument's renaming view: TorchServe name, configured buckets, one stream", async () => {
    const t = setup({
      views: [
        {
          instrumentName: "serve.latency",
          aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: [1, 2] } },
        },
      ],
    });
    t.recorder.record("Latency", 1.5, { Model: "m" });
    const { resourceMetrics } = await t.reader.collect();
    const names = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics.map((m) => m.descriptor.name));
    expect(names).to.deep.equal(["Latency"]);
    const text = renderTorchServeText(
      t.families,
      metricsByName(resourceMetrics),
      new Set(["Latency_bucket"]),
    );
    expect(text).to.include(
      'Latency_bucket{Model="m",le="1.0",} 0.0\nLatency_bucket{Model="m",le="2.0",} 1.0\n',
    );
  });

  it("applies wildcard and type selectors only to the instruments they select", async () => {
    const t = setup({
      views: [
        { instrumentName: "serve.*", instrumentType: InstrumentType.GAUGE, aggregationCardinalityLimit: 2 },
      ],
    });
    for (const model of ["a", "b", "c", "d"]) {
      t.recorder.record("Depth", 1, { Model: model });
      t.recorder.record("Latency", 1, { Model: model });
    }
    const data = metricsByName((await t.reader.collect()).resourceMetrics);
    expect(data.get("Depth")?.dataPoints).to.have.length(2); // one kept series + the overflow series
    expect(data.get("Latency")?.dataPoints).to.have.length(4);
  });

  it("registers a metric at run time under its TorchServe name, after the catalog's", async () => {
    const t = setup();
    t.register({
      name: "Auto",
      type: "counter",
      unit: "Count",
      dimensions: ["Hostname"],
      section: "model_metrics",
      buckets: undefined,
    });
    t.recorder.record("Auto", 2);
    expect(t.families.map((f) => f.name)).to.deep.equal(["Latency", "Depth", "Auto"]);
    const text = renderTorchServeText(t.families, metricsByName((await t.reader.collect()).resourceMetrics));
    expect(text).to.include('# TYPE Auto counter\nAuto{Hostname="h",} 2.0\n');
    expect(() =>
      t.register({
        name: "Auto",
        type: "gauge",
        unit: "ms",
        dimensions: [],
        section: "model_metrics",
        buckets: undefined,
      }),
    ).to.throw(/already registered/);
  });

  for (const format of ["torchserve", "otel"] as const) {
    it(`refuses at run time a metric whose exposition names another family takes (${format})`, () => {
      const t = setup({ format });
      for (const name of ["Latency_count", "Latency_sum", "Latency_bucket"]) {
        expect(() => t.register(def(name, "gauge")), name).to.throw(
          MetricRegistrationError,
          new RegExp(`renders ${name}, a sample name of Latency`),
        );
      }
      expect(() => t.register(def("Latency_count", "histogram"))).to.throw(MetricRegistrationError);
      expect(() => t.register(def("Depth", "histogram"))).to.throw(
        MetricRegistrationError,
        /already registered/,
      );
      t.register(def("Auto_sum", "gauge"));
      expect(() => t.register(def("Auto", "histogram"))).to.throw(MetricRegistrationError, /Auto_sum/);
      expect(t.families.map((f) => f.name)).to.deep.equal(["Latency", "Depth", "Auto_sum"]);
    });
  }

  it("gives a late metric the namer's next name where the exporter would render another's name (otel)", async () => {
    const t = setup({ format: "otel" });
    t.register(def("Foo", "counter"));
    t.register(def("FooTotal", "gauge"));
    t.recorder.record("Foo", 1);
    t.recorder.record("FooTotal", 2);
    const text = renderOtelText((await t.reader.collect()).resourceMetrics);
    const helps = text.split("\n").filter((l) => l.startsWith("# HELP "));
    expect(helps.map((l) => l.split(" ")[2])).to.deep.equal([
      "serve_model_foo_total",
      "serve_model_foo_total_2",
    ]);
  });

  describe("histogramGauges", () => {
    const gauge = (name: string, unit = "ms") => ({
      ...def(name, "gauge"),
      unit,
      dimensions: ["ModelName", "Level", "Hostname"],
    });

    for (const format of ["torchserve", "otel"] as const) {
      it(`gives a listed gauge auto-detected at run time its histogram then (${format})`, async () => {
        const logger = createMemoryLogger();
        const t = setup({ format, logger, histogramGauges: ["Depth", "InferTime"] });
        expect(t.families.map((f) => f.name)).to.deep.equal(["Latency", "Depth", "serve_depth"]);
        t.register(gauge("InferTime", "Milliseconds"));
        expect(t.families.map((f) => f.name)).to.deep.equal([
          "Latency",
          "Depth",
          "serve_depth",
          "InferTime",
          "serve_infer_time_seconds",
        ]);
        t.recorder.record("InferTime", 250, { ModelName: "m", Level: "Model" });
        const data = metricsByName((await t.reader.collect()).resourceMetrics);
        const name = format === "torchserve" ? "serve_infer_time_seconds" : "serve.infer_time_seconds";
        const point = data.get(name)?.dataPoints[0];
        expect(point?.attributes).to.deep.equal({ model_name: "m", hostname: "h" });
        expect(point?.value).to.deep.include({ count: 1, sum: 0.25 });
        expect(logger.lines).to.deep.equal([]);
      });
    }

    it("warns about a listed metric that is not a gauge, or whose histogram name is taken, and goes on", () => {
      const logger = createMemoryLogger();
      const t = setup({
        logger,
        histogramGauges: ["Latency", "Taken", "LateCounter", "LateTaken"],
        metrics: [
          ...METRICS,
          { ...def("Taken", "gauge"), unit: "s" },
          { ...def("serve_taken_seconds", "histogram"), section: "ts_metrics" },
        ],
      });
      t.register(def("LateCounter", "counter"));
      t.register(def("serve_late_taken_seconds_count", "gauge"));
      t.register({ ...def("LateTaken", "gauge"), unit: "ms" });
      expect(t.families.map((f) => f.name)).to.deep.equal([
        "Latency",
        "Depth",
        "Taken",
        "serve_taken_seconds",
        "LateCounter",
        "serve_late_taken_seconds_count",
        "LateTaken",
      ]);
      expect(logger.lines).to.deep.equal([
        "WARN histogram gauges: Latency is a histogram, not a gauge: it gets no histogram",
        "WARN histogram gauges: Taken gets no histogram: serve_taken_seconds is already a metric",
        "WARN histogram gauges: LateCounter is a counter, not a gauge: it gets no histogram",
        "WARN histogram gauges: LateTaken gets no histogram: serve_late_taken_seconds: a histogram of this name " +
          "renders serve_late_taken_seconds_count, a sample name of serve_late_taken_seconds_count",
      ]);
    });

    it("gives none by default", () => {
      const t = setup({ metrics: [...METRICS, gauge("HandlerTime")] });
      expect(t.families.map((f) => f.name)).to.deep.equal(["Latency", "Depth", "HandlerTime"]);
    });
  });
});
