import { expect } from "chai";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../../src/catalog/types.js";
import {
  DEFAULT_HISTOGRAM_GAUGES,
  gaugeHistogram,
  planGaugeHistograms,
  VALUE_BUCKETS,
} from "../../src/telemetry/gauge-histograms.js";

function gauge(name: string, unit: string, dimensions: string[] = ["ModelName", "Level", "Hostname"]) {
  return {
    name,
    type: "gauge" as const,
    unit,
    dimensions,
    section: "model_metrics" as const,
    buckets: undefined,
  } satisfies MetricDefinition;
}

describe("gaugeHistogram", () => {
  it("defaults to HandlerTime and PredictionTime", () => {
    expect(DEFAULT_HISTOGRAM_GAUGES).to.deep.equal(["HandlerTime", "PredictionTime"]);
  });

  it("turns a time gauge into serve_<name>_seconds{model_name, hostname} in seconds, with the given buckets", () => {
    const h = gaugeHistogram(gauge("HandlerTime", "ms"), [0.1, 1]);
    expect(h).to.deep.equal({
      gauge: "HandlerTime",
      definition: {
        name: "serve_handler_time_seconds",
        type: "histogram",
        unit: "Seconds",
        dimensions: ["model_name", "hostname"],
        section: "ts_metrics",
        buckets: [0.1, 1],
      },
      otelName: "serve.handler_time_seconds",
      divisor: 1000,
      modelDimension: "ModelName",
    });
  });

  const units: [string, number][] = [
    ["Milliseconds", 1e3],
    ["MS", 1e3],
    ["us", 1e6],
    ["Microseconds", 1e6],
    ["ns", 1e9],
    ["Nanoseconds", 1e9],
    ["s", 1],
    ["Seconds", 1],
  ];
  for (const [unit, divisor] of units) {
    it(`converts ${unit} to seconds (divides by ${divisor})`, () => {
      const h = gaugeHistogram(gauge("PredictionTime", unit), DEFAULT_BUCKETS);
      expect(h?.divisor).to.equal(divisor);
      expect(h?.definition.name).to.equal("serve_prediction_time_seconds");
    });
  }

  it("keeps any other unit: serve_<name> in the gauge's unit with VALUE_BUCKETS", () => {
    const h = gaugeHistogram(gauge("GPUMemoryUsed", "Megabytes", ["Level", "DeviceId", "Hostname"]), [1]);
    expect(h?.definition).to.deep.include({
      name: "serve_gpu_memory_used",
      unit: "Megabytes",
      dimensions: ["hostname"],
      buckets: VALUE_BUCKETS,
    });
    expect(h).to.include({ divisor: 1, modelDimension: undefined, otelName: "serve.gpu_memory_used" });
  });

  it("takes model_name from a model_name dimension too", () => {
    const h = gaugeHistogram(gauge("Custom", "Count", ["model_name", "hostname"]), [1]);
    expect(h?.modelDimension).to.equal("model_name");
    expect(h?.definition.dimensions).to.deep.equal(["model_name", "hostname"]);
  });

  it("makes a Prometheus name of an auto-detected name with `.`, `-` or `/`", () => {
    const h = gaugeHistogram(gauge("my.Metric-x/y", "Milliseconds"), [1]);
    expect(h?.definition.name).to.equal("serve_my_metric_x_y_seconds");
    expect(h?.definition.name).to.match(/^[a-zA-Z_][a-zA-Z0-9_]*$/);
  });

  it("gives a counter or a histogram none", () => {
    expect(gaugeHistogram({ ...gauge("C", "ms"), type: "counter" }, [1])).to.equal(undefined);
    expect(gaugeHistogram({ ...gauge("H", "ms"), type: "histogram" }, [1])).to.equal(undefined);
  });
});

describe("planGaugeHistograms", () => {
  it("plans one histogram per listed gauge and says why the other listed names get none", () => {
    const metrics: MetricDefinition[] = [
      gauge("HandlerTime", "ms"),
      gauge("PredictionTime", "ms"),
      gauge("Unlisted", "ms"),
      { ...gauge("Requests", "Count"), type: "counter" },
      gauge("Taken", "ms"),
      { ...gauge("serve_taken_seconds", "Seconds"), type: "histogram" },
    ];
    const plan = planGaugeHistograms(
      metrics,
      ["HandlerTime", "PredictionTime", "Requests", "Taken", "NotDeclared"],
      DEFAULT_BUCKETS,
    );
    expect(plan.histograms.map((h) => h.definition.name)).to.deep.equal([
      "serve_handler_time_seconds",
      "serve_prediction_time_seconds",
    ]);
    expect(plan.skipped).to.deep.equal([
      "Requests is a counter, not a gauge: it gets no histogram",
      "Taken gets no histogram: serve_taken_seconds is already a metric",
    ]);
  });
});
