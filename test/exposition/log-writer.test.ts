import { expect } from "chai";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { formatMetricLogLine, log4jTimestamp, MetricsLogWriter } from "../../src/exposition/log-writer.js";
import { createMemoryLogger } from "../../src/log.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";
import { tempDir } from "../support/temp.js";

const TS_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3} - /;

function setup(
  mode: "log" | "legacy",
  checkIntervalMs = 1000,
): { t: Telemetry; writer: MetricsLogWriter; dir: string } {
  const dir = join(tempDir("metrics-log-"), "logs");
  const t = createTelemetry({
    metrics: loadDefaultCatalog().metrics,
    format: "torchserve",
    hostname: "h",
    logger: createMemoryLogger(),
  });
  const writer = new MetricsLogWriter({
    directory: dir,
    mode,
    logger: createMemoryLogger(),
    checkIntervalMs,
  });
  t.recorder.addListener((e) => writer.write(e));
  return { t, writer, dir };
}

function lines(dir: string, file: string): string[] {
  const path = join(dir, file);
  return existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l !== "")
    : [];
}

describe("the log-mode writer", () => {
  it("formats TorchServe's log4j timestamp", () => {
    expect(log4jTimestamp(new Date(2024, 0, 2, 3, 4, 5, 6))).to.equal("2024-01-02T03:04:05,006");
  });

  it("writes frontend and system updates to ts_metrics.log in TorchServe's format", () => {
    const { t, writer, dir } = setup("log");
    try {
      t.recorder.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5, queueMs: 1 });
      t.recorder.recordSystem(
        {
          cpuUtilization: 12.5,
          memoryUsedMiB: 8245.62109375,
          memoryAvailableMiB: 1,
          memoryUtilization: 2,
          diskUsedGiB: 3,
          diskAvailableGiB: 4,
          diskUtilization: 5,
        },
        [],
      );
      const got = lines(dir, "ts_metrics.log");
      expect(got.every((l) => TS_LINE.test(l))).to.be.true;
      const bodies = got.map((l) => l.replace(TS_LINE, "").replace(/timestamp:\d+$/, "timestamp:T"));
      expect(bodies).to.include("Requests2XX.Count:1.0|#Level:Host|#hostname:h,timestamp:T");
      expect(bodies).to.include(
        "ts_inference_requests_total.Count:1.0|#model_name:resnet18,model_version:default|#hostname:h,timestamp:T",
      );
      expect(bodies).to.include(
        "ts_inference_latency_microseconds.Microseconds:12500.0|#model_name:resnet18,model_version:default|#hostname:h,timestamp:T",
      );
      expect(bodies).to.include("QueueTime.Milliseconds:1.0|#Level:Host|#hostname:h,timestamp:T");
      expect(bodies).to.include("MemoryUsed.Megabytes:8245.62109375|#Level:Host|#hostname:h,timestamp:T");
      expect(lines(dir, "model_metrics.log")).to.deep.equal([]);
    } finally {
      writer.stop();
    }
  });

  it("writes backend updates to model_metrics.log with their request id", () => {
    const { t, writer, dir } = setup("log");
    try {
      t.recorder.record(
        "PredictionTime",
        71.95,
        { ModelName: "mnist", Level: "Model", Hostname: "w1" },
        { requestId: "6d1726a7", unit: "Milliseconds" },
      );
      const [line] = lines(dir, "model_metrics.log");
      expect(line?.replace(TS_LINE, "")).to.match(
        /^PredictionTime\.Milliseconds:71\.95\|#ModelName:mnist,Level:Model\|#hostname:w1,requestID:6d1726a7,timestamp:\d+$/,
      );
    } finally {
      writer.stop();
    }
  });

  it("keeps the three ts_* counters out of the logs in legacy mode, and logs the rest", () => {
    const { t, writer, dir } = setup("legacy");
    try {
      t.recorder.recordInference({ model: "m", status: 200, latencyMs: 1 });
      const names = lines(dir, "ts_metrics.log").map((l) => l.replace(TS_LINE, "").split(".")[0]);
      expect(names).to.include.members(["Requests2XX", "QueueTime", "WorkerThreadTime"]);
      expect(names).not.to.include.members(["ts_inference_requests_total"]);
      expect(names.some((n) => n?.startsWith("ts_"))).to.be.false;
    } finally {
      writer.stop();
    }
  });

  it("follows logrotate: a renamed file is replaced at the next check, and SIGHUP reopens at once", async () => {
    const { t, writer, dir } = setup("log", 20);
    try {
      t.recorder.recordResponse(200);
      renameSync(join(dir, "ts_metrics.log"), join(dir, "ts_metrics.log.1"));
      await new Promise((r) => setTimeout(r, 100));
      t.recorder.recordResponse(404);
      expect(lines(dir, "ts_metrics.log.1").map((l) => l.includes("Requests2XX"))).to.deep.equal([true]);
      expect(lines(dir, "ts_metrics.log").map((l) => l.includes("Requests4XX"))).to.deep.equal([true]);

      renameSync(join(dir, "ts_metrics.log"), join(dir, "ts_metrics.log.2"));
      process.emit("SIGHUP", "SIGHUP");
      t.recorder.recordResponse(500);
      expect(lines(dir, "ts_metrics.log").map((l) => l.includes("Requests5XX"))).to.deep.equal([true]);
    } finally {
      writer.stop();
    }
  });

  it("formats a line without dimensions", () => {
    const [definition] = loadDefaultCatalog().metrics;
    if (definition === undefined) throw new Error("empty catalog");
    const line = formatMetricLogLine(
      {
        definition: { ...definition, dimensions: [] },
        value: 1e7,
        attributes: {},
        requestId: undefined,
        unit: undefined,
      },
      new Date(0),
    );
    expect(line).to.equal("Requests2XX.Count:1.0E7|#|#hostname:,timestamp:0");
  });
});
