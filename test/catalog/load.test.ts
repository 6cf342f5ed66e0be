import { expect } from "chai";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { CatalogError, loadCatalogFile, loadDefaultCatalog, parseCatalog } from "../../src/catalog/load.js";
import { tempDir } from "../support/temp.js";

describe("metrics catalog", () => {
  describe("the bundled default", () => {
    const catalog = loadDefaultCatalog();
    const byName = new Map(catalog.metrics.map((m) => [m.name, m]));

    it("holds TorchServe's 21 default metrics in declaration order", () => {
      expect(catalog.metrics.map((m) => m.name)).to.deep.equal([
        "Requests2XX",
        "Requests4XX",
        "Requests5XX",
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
        "QueueTime",
        "WorkerThreadTime",
        "WorkerLoadTime",
        "CPUUtilization",
        "MemoryUsed",
        "MemoryAvailable",
        "MemoryUtilization",
        "DiskUsage",
        "DiskUtilization",
        "DiskAvailable",
        "GPUMemoryUtilization",
        "GPUMemoryUsed",
        "GPUUtilization",
        "HandlerTime",
        "PredictionTime",
      ]);
    });

    const expected: [string, string, string, string[]][] = [
      ["Requests4XX", "counter", "Count", ["Level", "Hostname"]],
      [
        "ts_inference_latency_microseconds",
        "counter",
        "Microseconds",
        ["model_name", "model_version", "hostname"],
      ],
      ["WorkerLoadTime", "gauge", "Milliseconds", ["WorkerName", "Level", "Hostname"]],
      ["MemoryAvailable", "gauge", "Megabytes", ["Level", "Hostname"]],
      ["DiskAvailable", "gauge", "Gigabytes", ["Level", "Hostname"]],
      ["GPUMemoryUsed", "gauge", "Megabytes", ["Level", "DeviceId", "Hostname"]],
      ["PredictionTime", "gauge", "ms", ["ModelName", "Level", "Hostname"]],
    ];
    for (const [name, type, unit, dims] of expected) {
      it(`declares ${name} as a ${type} in ${unit} with ${dims.join(", ")}`, () => {
        const m = byName.get(name);
        expect(m).to.include({ type, unit });
        expect(m?.dimensions).to.deep.equal(dims);
      });
    }
  });

  it("appends Hostname to model metrics but not to frontend metrics", () => {
    const c = parseCatalog(
      "ts_metrics:\n  gauge:\n    - {name: A, unit: ms, dimensions: [Level]}\nmodel_metrics:\n  counter:\n    - {name: B, unit: Count, dimensions: [ModelName]}\n",
      "x.yaml",
    );
    expect(c.metrics.map((m) => [m.name, m.section, m.dimensions])).to.deep.equal([
      ["A", "ts_metrics", ["Level"]],
      ["B", "model_metrics", ["ModelName", "Hostname"]],
    ]);
  });

  it("resolves YAML anchors in dimensions and reads histogram buckets", () => {
    const c = parseCatalog(
      'dimensions:\n  - &m "ModelName"\nmodel_metrics:\n  histogram:\n    - name: Lat\n      unit: Seconds\n      dimensions: [*m]\n      buckets: [0.1, 1, 10]\n',
      "x.yaml",
    );
    expect(c.metrics[0]).to.deep.include({
      type: "histogram",
      dimensions: ["ModelName", "Hostname"],
      buckets: [0.1, 1, 10],
    });
  });

  it("accepts an empty file as an empty catalog", () => {
    expect(parseCatalog("", "empty.yaml").metrics).to.deep.equal([]);
  });

  describe("refuses invalid files, naming file, metric and reason", () => {
    const bad: [string, string, RegExp][] = [
      ["a YAML syntax error", "ts_metrics: [\n", /^bad\.yaml: line 2, column \d+: Flow sequence/],
      ["a list at the top", "- a\n", /top level: must be a mapping/],
      ["an alias without its anchor (found by fuzzing)", "*!", /bad\.yaml: YAML: Unresolved alias/],
      ["an unknown section", "tsmetrics: {}\n", /tsmetrics: unknown top-level key/],
      ["an unknown type", "ts_metrics:\n  counters: []\n", /ts_metrics\.counters: unknown metric type/],
      [
        "a missing name",
        "ts_metrics:\n  gauge:\n    - {unit: ms}\n",
        /ts_metrics\.gauge\[0\]: name is missing/,
      ],
      [
        "a missing unit",
        "ts_metrics:\n  gauge:\n    - {name: G}\n",
        /ts_metrics\.gauge\[0\] \(G\): unit is missing/,
      ],
      [
        "an invalid metric name",
        "ts_metrics:\n  gauge:\n    - {name: my-metric, unit: ms}\n",
        /\(my-metric\): name "my-metric" is not a valid Prometheus metric name/,
      ],
      [
        "dimensions not a list",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms, dimensions: Level}\n",
        /\(G\): dimensions must be a list/,
      ],
      [
        "an invalid label name",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms, dimensions: [Model Name]}\n",
        /\(G\): dimension "Model Name" is not a valid label name/,
      ],
      [
        "a duplicate dimension",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms, dimensions: [A, A]}\n",
        /\(G\): dimension "A" is listed twice/,
      ],
      [
        "a duplicate metric",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms}\nmodel_metrics:\n  gauge:\n    - {name: G, unit: ms}\n",
        /model_metrics\.gauge\[0\] \(G\): declared twice \(first at ts_metrics\.gauge\[0\]\)/,
      ],
      [
        "a misspelled key",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms, dimension: [A]}\n",
        /\(G\): unknown key "dimension"/,
      ],
      [
        "buckets on a gauge",
        "ts_metrics:\n  gauge:\n    - {name: G, unit: ms, buckets: [1]}\n",
        /\(G\): buckets are only allowed on histograms/,
      ],
      [
        "unsorted buckets",
        "ts_metrics:\n  histogram:\n    - {name: H, unit: ms, buckets: [2, 1]}\n",
        /\(H\): buckets must be strictly increasing/,
      ],
      [
        "a non-numeric bucket",
        "ts_metrics:\n  histogram:\n    - {name: H, unit: ms, buckets: [1, x]}\n",
        /\(H\): bucket "x" is not a finite number/,
      ],
      [
        "le on a histogram",
        "ts_metrics:\n  histogram:\n    - {name: H, unit: ms, dimensions: [le]}\n",
        /\(H\): dimension "le" is reserved/,
      ],
    ];
    for (const [what, yaml, message] of bad) {
      it(what, () => {
        let caught: unknown;
        try {
          parseCatalog(yaml, "bad.yaml");
        } catch (err) {
          caught = err;
        }
        expect(caught).to.be.instanceOf(CatalogError);
        expect((caught as CatalogError).message)
          .to.match(/^bad\.yaml: /)
          .and.to.match(message);
        expect((caught as CatalogError).exitCode).to.equal(2);
      });
    }
  });

  it("reads a file from disk and names a missing one", () => {
    const dir = tempDir("catalog-");
    const path = join(dir, "metrics.yaml");
    writeFileSync(path, "model_metrics:\n  gauge:\n    - {name: G, unit: ms}\n");
    expect(loadCatalogFile(path)).to.deep.include({ source: path });
    expect(() => loadCatalogFile(join(dir, "nope.yaml"))).to.throw(
      CatalogError,
      /nope\.yaml: metrics_config: cannot read the file/,
    );
  });
});
