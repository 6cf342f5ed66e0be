import { expect } from "chai";
import fc from "fast-check";
import { mkdtempSync, rmSync } from "node:fs";
import { symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { loadDefaultCatalog, parseCatalog } from "../../src/catalog/load.js";
import type { LineSource } from "../../src/sources/metric-ingest.js";
import { TorchServeLineIngest } from "../../src/sources/torchserve-ingest.js";
import { TorchServeLogFollower } from "../../src/sources/torchserve-logs.js";
import type { TorchServeFile } from "../../src/sources/torchserve-line.js";
import { createLineHarness, type LineHarness, type LineHarnessOptions } from "../support/metric-lines.js";

const T = "2024-05-30T21:46:03,625";
const H = "ip-172-31-11-32";
const TS = "1717105563";

interface AccessCall {
  model: string;
  version: string;
  status: number;
  latencyMs: number;
}

interface Rig {
  h: LineHarness;
  ts: TorchServeLineIngest;
  /** What reached recordAccess (the recorder's real body is h-metrics'), its hostname apart. */
  access: AccessCall[];
  /** The hostname of each record that reached recordAccess. */
  hosts: (string | undefined)[];
}

function rig(
  options: LineHarnessOptions & {
    maxAccessModels?: number;
    typesFollowed?: boolean;
    waitMs?: number;
    hostname?: string;
  } = {},
): Rig {
  const h = createLineHarness(options);
  const access: AccessCall[] = [];
  const hosts: (string | undefined)[] = [];
  const recorder = h.telemetry.recorder;
  const ts = new TorchServeLineIngest({
    ingest: h.ingest,
    recorder: {
      recordAccess: (r) => {
        const { hostname, ...call } = r;
        access.push(call);
        hosts.push(hostname);
        recorder.recordAccess(r);
      },
    },
    maxAccessModels: options.maxAccessModels,
    typesFollowed: options.typesFollowed,
    waitMs: options.waitMs,
    hostname: options.hostname,
    logger: h.logger,
  });
  return { h, ts, access, hosts };
}

/** The value of one sample of the scrape (TorchServe text), or undefined when there is none. */
function sample(text: string, series: string): number | undefined {
  const found = text.split("\n").find((l) => l.startsWith(`${series} `));
  return found === undefined ? undefined : Number(found.slice(series.length + 1));
}

/** serve_metric_lines_rejected_total for one source and reason, 0 when absent. */
function rejected(text: string, source: LineSource, reason: string): number {
  return (
    sample(text, `serve_metric_lines_rejected_total{source="${source}",reason="${reason}",hostname="h",}`) ??
    0
  );
}

/** The scrape's sample lines (no comments), the rejected-lines counter left out. */
function samples(text: string): string[] {
  return text
    .split("\n")
    .filter((l) => l !== "" && !l.startsWith("#") && !l.startsWith("serve_metric_lines"));
}

interface RealLine {
  title: string;
  text: string;
  hint?: TorchServeFile;
  autoDetect?: boolean;
  series: string;
  value: number;
}

// Real lines from TorchServe's docs and users' issues (see shared/reference/torchserve-logs.md),
// each with the series it must produce and the value it must have after that one line.
const REAL_LINES: RealLine[] = [
  {
    title: "Requests2XX from ts_metrics.log",
    text: `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `Requests2XX{Level="Host",Hostname="${H}",}`,
    value: 1,
  },
  {
    title: "Requests4XX on the console",
    text: `2024-05-30T21:46:03,626 [INFO ] epollEventLoopGroup-3-2 TS_METRICS - Requests4XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
    series: `Requests4XX{Level="Host",Hostname="${H}",}`,
    value: 1,
  },
  {
    title: "Requests5XX with ≤0.7's integer value and log4j 1's time",
    text: `2020-12-20 17:36:07,338 - Requests5XX.Count:1|#Level:Host|#hostname:old-host,timestamp:1608485767`,
    hint: "ts_metrics",
    series: `Requests5XX{Level="Host",Hostname="old-host",}`,
    value: 1,
  },
  {
    title: "ts_inference_requests_total",
    text: `${T} - ts_inference_requests_total.Count:1.0|#model_name:mnist,model_version:default|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `ts_inference_requests_total{model_name="mnist",model_version="default",hostname="${H}",}`,
    value: 1,
  },
  {
    title: "ts_inference_latency_microseconds in Java's exponent form",
    text: `${T} - ts_inference_latency_microseconds.Microseconds:4.9299189976E7|#model_name:mnist,model_version:default|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `ts_inference_latency_microseconds{model_name="mnist",model_version="default",hostname="${H}",}`,
    value: 49299189.976,
  },
  {
    title: "ts_queue_latency_microseconds",
    text: `${T} - ts_queue_latency_microseconds.Microseconds:128.1|#model_name:mnist,model_version:2.0|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `ts_queue_latency_microseconds{model_name="mnist",model_version="2.0",hostname="${H}",}`,
    value: 128.1,
  },
  {
    title: "QueueTime",
    text: `${T} - QueueTime.Milliseconds:0.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `QueueTime{Level="Host",Hostname="${H}",}`,
    value: 0,
  },
  {
    title: "WorkerThreadTime with another unit word than the catalog's (ms, not Milliseconds)",
    text: `${T} - WorkerThreadTime.ms:3.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `WorkerThreadTime{Level="Host",Hostname="${H}",}`,
    value: 3,
  },
  {
    title: "WorkerLoadTime with WorkerName",
    text: `${T} - WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `WorkerLoadTime{WorkerName="W-9000-mnist_1.0",Level="Host",Hostname="${H}",}`,
    value: 2704,
  },
  {
    title: "≤0.7's worker load time under the worker's name",
    text: `${T} - W-9000-mnist_1.0.ms:3579|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `WorkerLoadTime{WorkerName="W-9000-mnist_1.0",Level="Host",Hostname="${H}",}`,
    value: 3579,
  },
  {
    title: "CPUUtilization, timestamp:null (≤0.5)",
    text: `2020-12-20 17:36:07,338 - CPUUtilization.Percent:50.0|#Level:Host|#hostname:old-host,timestamp:null`,
    hint: "ts_metrics",
    series: `CPUUtilization{Level="Host",Hostname="old-host",}`,
    value: 50,
  },
  {
    title: "MemoryUsed, ≤0.7's integer",
    text: `${T} - MemoryUsed.Megabytes:5225|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `MemoryUsed{Level="Host",Hostname="${H}",}`,
    value: 5225,
  },
  {
    title: "DiskAvailable",
    text: `${T} - DiskAvailable.Gigabytes:311.49|#Level:Host|#hostname:${H},timestamp:${TS}`,
    hint: "ts_metrics",
    series: `DiskAvailable{Level="Host",Hostname="${H}",}`,
    value: 311.49,
  },
  {
    title: "GPUMemoryUsed with DeviceId",
    text: `${T} - GPUMemoryUsed.Megabytes:1325.0|#Level:Host,DeviceId:0|#hostname:caddc5b40c7b,timestamp:1712133883`,
    hint: "ts_metrics",
    series: `GPUMemoryUsed{Level="Host",DeviceId="0",Hostname="caddc5b40c7b",}`,
    value: 1325,
  },
  {
    title: "GPUUtilization with ≤0.7's device_id",
    text: `${T} - GPUUtilization.Percent:87|#Level:Host,device_id:1|#hostname:caddc5b40c7b,timestamp:1712133883`,
    hint: "ts_metrics",
    series: `GPUUtilization{Level="Host",DeviceId="1",Hostname="caddc5b40c7b",}`,
    value: 87,
  },
  {
    title: "HandlerTime of a batch from model_metrics.log",
    text: `${T} - HandlerTime.ms:71.39|#ModelName:mnist,Level:Model|#hostname:caddc5b40c7b,requestID:id1,id2,timestamp:1712133883`,
    hint: "model_metrics",
    series: `HandlerTime{ModelName="mnist",Level="Model",Hostname="caddc5b40c7b",}`,
    value: 71.39,
  },
  {
    title: "PredictionTime in Java's small exponent form, unit word Milliseconds",
    text: `${T} - PredictionTime.Milliseconds:5.0E-4|#ModelName:mnist,Level:Model|#hostname:w,requestID:null,timestamp:1712133883`,
    hint: "model_metrics",
    series: `PredictionTime{ModelName="mnist",Level="Model",Hostname="w",}`,
    value: 0.0005,
  },
  {
    title: "HandlerTime on the console, without a hint",
    text: `${T} [INFO ] W-9000-mnist_1.0 MODEL_METRICS - HandlerTime.ms:2.5|#ModelName:mnist,Level:Model|#hostname:w,requestID:r,timestamp:1`,
    series: `HandlerTime{ModelName="mnist",Level="Model",Hostname="w",}`,
    value: 2.5,
  },
  {
    title: "a metric-file line without a hint (metric_log_files, standard input)",
    text: `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
    series: `Requests2XX{Level="Host",Hostname="${H}",}`,
    value: 1,
  },
  {
    title: "an auto-detected backend metric with TorchServe's long unit",
    text: `${T} - InferenceTimeCustom.Milliseconds:12.0|#ModelName:mnist,Level:Model|#hostname:w,requestID:r,timestamp:1`,
    hint: "model_metrics",
    autoDetect: true,
    series: `InferenceTimeCustom{ModelName="mnist",Level="Model",Hostname="w",}`,
    value: 12,
  },
  {
    title: "an auto-detected metric with empty dims",
    text: `${T} - CustomCount.Count:4.0|#|#hostname:w,requestID:r,timestamp:1`,
    hint: "model_metrics",
    autoDetect: true,
    series: `CustomCount{Hostname="w",}`,
    value: 4,
  },
];

describe("TorchServeLineIngest", () => {
  describe("real lines", () => {
    for (const line of REAL_LINES) {
      it(`applies ${line.title}`, async () => {
        const { h, ts } = rig({ autoDetect: line.autoDetect ?? false });
        expect(ts.apply(line.text, "file", line.hint)).to.deep.include({ ok: true, record: "metric" });
        const text = await h.scrape();
        expect(sample(text, line.series), text).to.equal(line.value);
        // That one series and nothing else.
        expect(samples(text).filter((s) => !s.startsWith(`${line.series} `))).to.deep.equal([]);
      });
    }
  });

  describe("TorchServe's semantics", () => {
    it("adds counter lines: the sum is what TorchServe's prometheus mode shows", async () => {
      const { h, ts } = rig();
      const lines = ["4.9299189976E7", "1.0", "2.5E-4", "123456.0"].map(
        (v) =>
          `${T} - ts_inference_latency_microseconds.Microseconds:${v}|#model_name:m,model_version:default|#hostname:${H},timestamp:${TS}`,
      );
      for (let i = 0; i < 3; i++)
        ts.apply(
          `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
          "file",
          "ts_metrics",
        );
      for (const line of lines) ts.apply(line, "file", "ts_metrics");
      const text = await h.scrape();
      expect(sample(text, `Requests2XX{Level="Host",Hostname="${H}",}`)).to.equal(3);
      expect(
        sample(
          text,
          `ts_inference_latency_microseconds{model_name="m",model_version="default",hostname="${H}",}`,
        ),
      ).to.be.closeTo(49299189.976 + 1 + 0.00025 + 123456, 1e-6);
    });

    it("sets gauge lines: the last value stands", async () => {
      const { h, ts } = rig();
      for (const v of ["71.0", "5.0", "33.5"]) {
        ts.apply(
          `${T} - HandlerTime.ms:${v}|#ModelName:m,Level:Model|#hostname:w,requestID:r,timestamp:1`,
          "file",
          "model_metrics",
        );
      }
      expect(sample(await h.scrape(), `HandlerTime{ModelName="m",Level="Model",Hostname="w",}`)).to.equal(
        33.5,
      );
    });

    it("takes the type from the catalog: a custom catalog's counter HandlerTime adds", async () => {
      const catalog = parseCatalog(
        "model_metrics:\n  counter:\n    - { name: HandlerTime, unit: ms, dimensions: [ModelName, Level] }\n",
        "custom.yaml",
      );
      const { h, ts } = rig({ catalog });
      for (let i = 0; i < 2; i++) {
        ts.apply(
          `${T} - HandlerTime.ms:2.0|#ModelName:m,Level:Model|#hostname:w,requestID:r,timestamp:1`,
          "file",
          "model_metrics",
        );
      }
      expect(sample(await h.scrape(), `HandlerTime{ModelName="m",Level="Model",Hostname="w",}`)).to.equal(4);
    });

    it("binds dims by name, whatever their order in the line", async () => {
      const { h, ts } = rig();
      ts.apply(
        `${T} - GPUUtilization.Percent:10.0|#DeviceId:3,Level:Host|#hostname:g,timestamp:1`,
        "file",
        "ts_metrics",
      );
      expect(sample(await h.scrape(), `GPUUtilization{Level="Host",DeviceId="3",Hostname="g",}`)).to.equal(
        10,
      );
    });
  });

  describe("types from TorchServe's own record", () => {
    const echo = (line: string) =>
      `${T} [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]${line}, pattern=[METRICS]`;
    const record = (line: string) => `${T} - ${line}`;
    const COUNT = "CustomRequestCount.Count:1.0|#ModelName:m|#type:COUNTER|#hostname:w,1,r";
    const COUNT_RECORD = "CustomRequestCount.Count:1.0|#ModelName:m|#hostname:w,requestID:r,timestamp:1";
    const family = (text: string, name: string): string[] =>
      text.split("\n").filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name}_`));

    it("accepts every model_metrics.log record as TorchServe did, auto-detection off (fallback type without an echo)", async () => {
      const { h, ts } = rig({ autoDetect: false });
      expect(ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics")).to.deep.include({ ok: true });
      const text = await h.scrape();
      expect(text).to.include("# TYPE CustomRequestCount gauge\n");
      expect(text).to.include('CustomRequestCount{ModelName="m",Hostname="w",} 1.0\n');
    });

    it("gives an auto-detected metric the type of its echo in ts_log.log (counter: 2.0, not a gauge's 1.0)", async () => {
      const { h, ts } = rig({ typesFollowed: true });
      expect(ts.apply(echo(COUNT), "torchserve", "ts_log")).to.equal(undefined);
      ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics");
      ts.apply(echo(COUNT), "torchserve", "ts_log");
      ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics");
      const text = await h.scrape();
      expect(text).to.include("# TYPE CustomRequestCount counter\n");
      expect(text).to.include('CustomRequestCount{ModelName="m",Hostname="w",} 2.0\n');
    });

    it("holds records that come before their echo, and applies them all, in order, once it comes", async () => {
      const { h, ts } = rig({ typesFollowed: true, waitMs: 60_000 });
      ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics");
      ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics");
      expect(await h.scrape()).not.to.include("CustomRequestCount");
      ts.apply(echo(COUNT), "torchserve", "ts_log");
      const text = await h.scrape();
      expect(text).to.include("# TYPE CustomRequestCount counter\n");
      expect(text).to.include('CustomRequestCount{ModelName="m",Hostname="w",} 2.0\n');
      ts.stop();
    });

    it("renders an echoed histogram as TorchServe does: its 14 default bounds and +Inf, count and sum", async () => {
      const { h, ts } = rig({ typesFollowed: true });
      const line = "ExamplePercentMetric.Percent:50.0|#ModelName:m|#type:HISTOGRAM|#hostname:w,1,r";
      for (let i = 0; i < 2; i++) {
        ts.apply(echo(line), "stdin");
        ts.apply(
          `${T} [INFO ] W-9000-m_1.0-stdout MODEL_METRICS - ExamplePercentMetric.Percent:50.0|#ModelName:m|#hostname:w,requestID:r,timestamp:1`,
          "stdin",
        );
      }
      const text = await h.scrape();
      const series = 'ModelName="m",Hostname="w",';
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
      expect(family(text, "ExamplePercentMetric")).to.deep.equal([
        ...bounds.map(
          (le) => `ExamplePercentMetric_bucket{${series}le="${le}",} ${le === "+Inf" ? "2.0" : "0.0"}`,
        ),
        `ExamplePercentMetric_count{${series}} 2.0`,
        `ExamplePercentMetric_sum{${series}} 100.0`,
      ]);
      expect(text).to.include(
        "# HELP ExamplePercentMetric Torchserve prometheus histogram metric with unit: Percent\n# TYPE ExamplePercentMetric histogram\n",
      );
    });

    it("falls back when no echo comes in time, keeps every value, and says so when the type comes late", async () => {
      const { h, ts } = rig({ typesFollowed: true, waitMs: 10 });
      ts.apply(record(COUNT_RECORD), "torchserve", "model_metrics");
      await new Promise((r) => setTimeout(r, 40));
      const text = await h.scrape();
      expect(text).to.include("# TYPE CustomRequestCount gauge\n");
      expect(text).to.include('CustomRequestCount{ModelName="m",Hostname="w",} 1.0\n');
      ts.apply(echo(COUNT), "torchserve", "ts_log");
      expect(h.logger.lines.join("\n")).to.include(
        "CustomRequestCount is a counter in TorchServe, but its type was not known when its values came",
      );
    });
  });

  describe("priming from the files' last lines (a late start)", () => {
    const ts_metrics = [
      `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
      `${T} - QueueTime.Milliseconds:3.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
      `${T} - WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:${H},timestamp:${TS}`,
      `${T} - QueueTime.Milliseconds:5.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
      `${T} - CPUUtilization.Percent:7.5|#Level:Host|#hostname:${H},timestamp:${TS}`,
    ];
    const model_metrics = [
      `${T} - HandlerTime.ms:9.5|#ModelName:mnist,Level:Model|#hostname:${H},requestID:r,timestamp:${TS}`,
    ];

    it("sets each gauge to its last value and counts no history (counters, histograms, applied lines)", async () => {
      const { h, ts } = rig();
      const primed = await ts.prime(() =>
        Promise.resolve([
          { file: "ts_metrics", lines: ts_metrics },
          { file: "model_metrics", lines: model_metrics },
        ]),
      );
      expect(primed).to.equal(4);
      const text = await h.scrape();
      expect(sample(text, `QueueTime{Level="Host",Hostname="${H}",}`)).to.equal(5);
      expect(
        sample(text, `WorkerLoadTime{WorkerName="W-9000-mnist_1.0",Level="Host",Hostname="${H}",}`),
      ).to.equal(2704);
      expect(sample(text, `CPUUtilization{Level="Host",Hostname="${H}",}`)).to.equal(7.5);
      expect(sample(text, `HandlerTime{ModelName="mnist",Level="Model",Hostname="${H}",}`)).to.equal(9.5);
      expect(text).not.to.match(/^Requests2XX\{/m);
      expect(text).not.to.match(/^serve_handler_time_seconds_count\{/m);
      expect(text).not.to.match(/^serve_metric_lines_applied_total\{/m);
      expect(h.events).to.deep.equal([]);
    });

    it("never undoes a value a live record set while the files were read back", async () => {
      const { h, ts } = rig();
      await ts.prime(() => {
        ts.apply(
          `${T} - QueueTime.Milliseconds:8.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
          "torchserve",
          "ts_metrics",
        );
        return Promise.resolve([{ file: "ts_metrics", lines: ts_metrics }]);
      });
      expect(sample(await h.scrape(), `QueueTime{Level="Host",Hostname="${H}",}`)).to.equal(8);
    });

    it("learns served models and types from ts_log.log's last lines", async () => {
      const { ts, access } = rig({ waitMs: 60_000 });
      await ts.prime(() =>
        Promise.resolve([
          {
            file: "ts_log",
            lines: [`${T} [INFO ] main org.pytorch.serve.wlm.ModelManager - Model resnet18 loaded.`],
          },
        ]),
      );
      ts.apply(`${T} - /127.0.0.1:1 "POST /predictions/resnet18 HTTP/1.1" 500 3`, "torchserve", "access_log");
      expect(access.map((a) => a.model)).to.deep.equal(["resnet18"]);
      ts.stop();
    });
  });

  describe("what TorchServe's lines say about it", () => {
    const memory = (host: string, timestamp: number) =>
      `${T} - MemoryUsed.Megabytes:100.0|#Level:Host|#hostname:${host},timestamp:${timestamp}`;

    it("learns TorchServe's metric interval from the cadence of its host-metric bursts (the smallest gap)", () => {
      const { ts } = rig();
      expect(ts.metricIntervalMs()).to.equal(undefined);
      for (const at of [1000, 1030, 1090, 1120]) ts.apply(memory(H, at), "torchserve", "ts_metrics");
      expect(ts.metricIntervalMs()).to.equal(30_000);
    });

    it("warns once, naming both hosts, when two TorchServes write one directory", () => {
      const { h, ts } = rig();
      ts.apply(memory("host-a", 1), "torchserve", "ts_metrics");
      ts.apply(memory("host-a", 2), "torchserve", "ts_metrics");
      ts.apply(memory("host-b", 2), "torchserve", "ts_metrics");
      ts.apply(memory("host-c", 3), "torchserve", "ts_metrics");
      const warned = h.logger.lines.filter((l) => l.includes("two TorchServes"));
      expect(warned).to.have.length(1);
      expect(warned[0]).to.include("host-a and host-b");
      expect(warned[0]).to.include("one sidecar per TorchServe log directory");
    });
  });

  describe("a followed file's content in the log", () => {
    const SECRET = "root:$6$Zk1secretsalt$Qm9vYmFyYmF6aGFzaA:19000:0:99999:7:::";

    it("is never quoted when a followed place links to another file (/etc/shadow): the rejection is described", async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "ts-secret-"));
      try {
        const secret = path.join(dir, "shadow");
        await writeFile(secret, `${SECRET}\ndaemon:*:19000:0:99999:7:::\n`);
        for (const name of ["ts_metrics.log", "model_metrics.log", "access_log.log", "ts_log.log"]) {
          await symlink(secret, path.join(dir, name));
        }
        const { h, ts } = rig({ autoDetect: true });
        const follower = new TorchServeLogFollower({
          logDir: dir,
          fromStart: true,
          logger: h.logger,
          onLine: (line, file) => ts.apply(line, "torchserve", file),
        });
        await follower.start();
        await follower.readNow();
        await follower.stop();
        const warned = h.logger.lines.filter((l) => l.startsWith("WARN"));
        expect(warned.length).to.be.greaterThan(0);
        for (const line of h.logger.lines) {
          expect(line).not.to.include("secretsalt");
          expect(line).not.to.include("daemon");
        }
        expect(warned[0]).to.match(
          /^WARN metric lines \(torchserve\): a malformed line was not applied: .*\(\d+ characters; a followed file's content is not logged\)$/,
        );
        expect(rejected(await h.scrape(), "torchserve", "malformed")).to.equal(6);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("is never quoted for metric_log_files either, whatever the rejection", () => {
      const { h, ts } = rig();
      ts.apply(`${T} - ${SECRET}`, "file");
      ts.apply(`${T} - /x "${SECRET}" 200 1`, "file");
      ts.apply(
        `${T} - Secret.Count:1.0|#User:${SECRET.slice(0, 10)}|#hostname:h,requestID:r,timestamp:1`,
        "file",
        "ts_metrics",
      );
      ts.apply(SECRET, "file", "model_metrics");
      expect(h.logger.lines.join("\n")).not.to.include("secretsalt");
      expect(h.logger.lines.join("\n")).not.to.include("root:");
    });
  });

  describe("lines that write nothing", () => {
    const silent: [string, string][] = [
      [
        "a MODEL_LOG line quoting a metric line",
        `${T} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
      ],
      [
        "a MODEL_LOG line quoting a TS_METRICS console line",
        `${T} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - ${T} [INFO ] x TS_METRICS - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
      ],
      [
        "ts_log.log's result=[METRICS] echo",
        `${T} [INFO ] W-9000-mnist_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]HandlerTime.Milliseconds:71.39|#ModelName:mnist,Level:Model|#hostname:h,1714029691,r1, pattern=[METRICS]`,
      ],
      ["plain text", "Torchserve version: 0.12.0"],
    ];
    for (const [title, text] of silent) {
      it(`ignores ${title}: no update, nothing counted`, async () => {
        const { h, ts } = rig({ autoDetect: true });
        expect(ts.apply(text, "file")).to.equal(undefined);
        expect(h.events).to.deep.equal([]);
        expect((await h.scrape()).match(/^[^#\n].*$/gm) ?? []).to.deep.equal([]);
      });
    }
  });

  describe("lines not applied, each counted with its reason", () => {
    const refused: {
      title: string;
      text: string;
      hint?: TorchServeFile;
      reason: string;
      autoDetect?: boolean;
    }[] = [
      {
        title: "a value that is no number",
        text: `${T} - Requests2XX.Count:abc|#Level:Host|#hostname:${H},timestamp:${TS}`,
        hint: "ts_metrics",
        reason: "malformed",
      },
      {
        title: "NaN (Java prints it for a failed reading)",
        text: `${T} - CPUUtilization.Percent:NaN|#Level:Host|#hostname:${H},timestamp:${TS}`,
        hint: "ts_metrics",
        reason: "malformed",
      },
      {
        title: "a line cut before its hostname segment",
        text: `${T} - Requests2XX.Count:1.0|#Level:Host`,
        hint: "ts_metrics",
        reason: "malformed",
      },
      {
        title: "a line without the file's layout",
        text: "Requests2XX.Count:1.0|#Level:Host|#hostname:h,timestamp:1",
        hint: "ts_metrics",
        reason: "malformed",
      },
      {
        title: "a broken access line",
        text: `${T} - /127.0.0.1:53514 "POST /predictions/mnist HTTP/1.1"`,
        hint: "access_log",
        reason: "malformed",
      },
      {
        title: "a broken ACCESS_LOG console line",
        text: `${T} [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - nonsense`,
        reason: "malformed",
      },
      {
        title: "a frontend metric in model_metrics.log (a worker's, under TorchServe's auto-detection)",
        text: `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:w,requestID:r,timestamp:1`,
        hint: "model_metrics",
        reason: "forbidden",
        autoDetect: true,
      },
      {
        title: "a frontend metric with a requestID, without a hint",
        text: `${T} - Requests5XX.Count:1.0|#Level:Host|#hostname:w,requestID:r,timestamp:1`,
        reason: "forbidden",
      },
      {
        title: "the service's own serve_* metric, even from TS_METRICS",
        text: `${T} - serve_queue_depth.Count:7.0|#model_name:m|#hostname:h,timestamp:1`,
        hint: "ts_metrics",
        reason: "forbidden",
        autoDetect: true,
      },
      {
        title: "a worker's [METRICS] line naming a frontend metric (model metrics only, as before)",
        text: "[METRICS]Requests2XX.Count:1|#Level:Host|#hostname:vm,1",
        reason: "forbidden",
      },
      {
        title: "a worker's line of an undeclared metric, auto-detection off",
        text: "[METRICS]CustomCount.Count:4.0|#|#type:COUNTER|#hostname:w,1,r",
        reason: "undeclared",
      },
      {
        title: "a record missing a dimension the catalog declares",
        text: `${T} - WorkerLoadTime.Milliseconds:2704.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
        hint: "ts_metrics",
        reason: "invalid",
      },
    ];
    for (const { title, text, hint, reason, autoDetect } of refused) {
      it(`refuses ${title} (${reason})`, async () => {
        const { h, ts } = rig({ autoDetect: autoDetect ?? false });
        const outcome = ts.apply(text, "file", hint);
        expect(outcome?.ok, JSON.stringify(outcome)).to.equal(false);
        const scraped = await h.scrape();
        expect(rejected(scraped, "file", reason)).to.equal(1);
        expect(samples(scraped)).to.deep.equal([]);
        expect(h.logger.lines.some((l) => l.startsWith("WARN metric lines"))).to.equal(true);
      });
    }

    it("finds a frontend metric that a custom catalog dropped undeclared, never auto-detects it", async () => {
      const catalog = parseCatalog(
        "model_metrics:\n  gauge:\n    - { name: HandlerTime, unit: ms, dimensions: [ModelName, Level] }\n",
        "custom.yaml",
      );
      const { h, ts } = rig({ catalog, autoDetect: true });
      const outcome = ts.apply(
        `${T} - Requests2XX.Count:1.0|#Level:Host|#hostname:${H},timestamp:${TS}`,
        "file",
        "ts_metrics",
      );
      expect(outcome).to.deep.include({ ok: false, record: "metric" });
      const text = await h.scrape();
      expect(rejected(text, "file", "undeclared")).to.equal(1);
      expect(text).not.to.match(/Requests2XX/);
    });

    it("logs a flood of broken records a bounded number of times, and counts them all", async () => {
      const { h, ts } = rig();
      for (let i = 0; i < 500; i++)
        ts.apply(`${T} - Requests2XX.Count:x${i}|#Level:Host|#hostname:h,timestamp:1`, "file", "ts_metrics");
      expect(rejected(await h.scrape(), "file", "malformed")).to.equal(500);
      expect(h.logger.lines.length).to.be.at.most(12);
    });
  });

  describe("access records", () => {
    const line = (request: string, status: number, ms: number): string =>
      `${T} - /127.0.0.1:53514 "${request}" ${status} ${ms}`;
    /** ModelManager's lines in ts_log.log: TorchServe serves these models. */
    const loaded = (ts: TorchServeLineIngest, ...models: string[]): void => {
      for (const m of models) {
        ts.apply(
          `${T} [INFO ] main org.pytorch.serve.wlm.ModelManager - Model ${m} loaded.`,
          "torchserve",
          "ts_log",
        );
      }
    };

    it("records an inference response per model version, and no Requests2XX/4XX/5XX", async () => {
      const { h, ts, access } = rig();
      loaded(ts, "mnist", "resnet-18", "sdxl", "bert");
      const lines = [
        line("POST /predictions/mnist HTTP/1.1", 200, 118),
        line("POST /predictions/resnet-18/2.0 HTTP/1.1", 503, 4),
        line("POST /v1/models/sdxl:predict HTTP/1.1", 200, 9000),
        line("POST /v2/models/bert/infer HTTP/1.1", 500, 30),
        line("POST /v2/models/bert/versions/3/infer HTTP/1.1", 200, 31),
        line("POST /explanations/mnist?x=1 HTTP/1.1", 200, 7),
        line("GET /predictions/mnist HTTP/1.1", 200, 5),
      ];
      for (const l of lines)
        expect(ts.apply(l, "file", "access_log")).to.deep.equal({ ok: true, record: "access" });
      expect(access).to.deep.equal([
        { model: "mnist", version: "default", status: 200, latencyMs: 118 },
        { model: "resnet-18", version: "2.0", status: 503, latencyMs: 4 },
        { model: "sdxl", version: "default", status: 200, latencyMs: 9000 },
        { model: "bert", version: "default", status: 500, latencyMs: 30 },
        { model: "bert", version: "3", status: 200, latencyMs: 31 },
        { model: "mnist", version: "default", status: 200, latencyMs: 7 },
        { model: "mnist", version: "default", status: 200, latencyMs: 5 },
      ]);
      expect(await h.scrape()).not.to.match(/^Requests[245]XX\{/m);
    });

    it("records nothing for management, ping, metrics, API description, OPTIONS and gRPC calls", () => {
      const { ts, access } = rig();
      const lines = [
        line("GET /ping HTTP/1.1", 200, 1),
        line("GET /models HTTP/1.1", 200, 1),
        line("GET /models/mnist HTTP/1.1", 200, 1),
        line("POST /models?url=mnist.mar HTTP/1.1", 200, 900),
        line("PUT /models/mnist?min_worker=2 HTTP/1.1", 202, 1),
        line("DELETE /models/mnist/1.0 HTTP/1.1", 200, 1),
        line("GET /metrics HTTP/1.1", 200, 1),
        line("GET /metrics?name[]=Requests2XX HTTP/1.1", 200, 1),
        line("GET /api-description HTTP/1.1", 200, 1),
        line("OPTIONS /predictions/mnist HTTP/1.1", 200, 1),
        line("gRPC org.pytorch.serve.grpc.inference.InferenceAPIsService/Predictions HTTP/2.0", 0, 27),
      ];
      for (const l of lines)
        expect(ts.apply(l, "file", "access_log")).to.deep.equal({ ok: true, record: "access" });
      expect(access).to.deep.equal([]);
    });

    it("takes the access line on the console and without a hint", () => {
      const { ts, access } = rig();
      loaded(ts, "a", "b");
      ts.apply(
        `${T} [INFO ] epollEventLoopGroup-3-1 ACCESS_LOG - /127.0.0.1:1 "POST /predictions/a HTTP/1.1" 200 3`,
        "file",
      );
      ts.apply(line("POST /predictions/b HTTP/1.1", 200, 4), "file");
      expect(access.map((a) => a.model)).to.deep.equal(["a", "b"]);
    });

    it("attributes no 404 to a model, known or not (TorchServe's 404 is 'no such model'), nor spends a place on it", () => {
      const { ts, access } = rig({ maxAccessModels: 1 });
      loaded(ts, "mnist");
      ts.apply(line("POST /predictions/made-up-1 HTTP/1.1", 404, 1), "file", "access_log");
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 200, 2), "file", "access_log");
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 404, 3), "file", "access_log");
      expect(access).to.deep.equal([{ model: "mnist", version: "default", status: 200, latencyMs: 2 }]);
    });

    it("records a negative time (the clock went back) as 0", () => {
      const { ts, access } = rig();
      loaded(ts, "m");
      ts.apply(line("POST /predictions/m HTTP/1.1", 200, -2), "file", "access_log");
      expect(access).to.deep.equal([{ model: "m", version: "default", status: 200, latencyMs: 0 }]);
    });

    it("records at most maxAccessModels model versions; further ones are counted, not recorded", async () => {
      const { h, ts, access } = rig({ maxAccessModels: 2 });
      loaded(ts, "a", "b", "c", "d");
      for (const m of ["a", "b", "c", "a", "d"])
        ts.apply(line(`POST /predictions/${m} HTTP/1.1`, 200, 1), "file", "access_log");
      expect(access.map((a) => a.model)).to.deep.equal(["a", "b", "a"]);
      expect(rejected(await h.scrape(), "file", "invalid")).to.equal(2);
    });

    it("keeps a real model's series after 1,000 made-up 4,000-character names answered 400 (refused as oversized, counted)", async () => {
      const { h, ts } = rig();
      for (let i = 0; i < 1000; i++) {
        const name = `${i}`.padEnd(4000, "x");
        ts.apply(line(`POST /predictions/${name} HTTP/1.1`, 400, 1), "torchserve", "access_log");
      }
      ts.apply(
        `${T} - ts_inference_requests_total.Count:1.0|#model_name:resnet18,model_version:default|#hostname:${H},timestamp:${TS}`,
        "torchserve",
        "ts_metrics",
      );
      ts.apply(line("POST /predictions/resnet18 HTTP/1.1", 503, 7), "torchserve", "access_log");
      const text = await h.scrape();
      expect(rejected(text, "torchserve", "oversized")).to.equal(1000);
      expect(
        sample(
          text,
          `serve_inference_responses_total{model_name="resnet18",model_version="default",status_class="5XX",hostname="${H}",}`,
        ),
      ).to.equal(1);
      expect(text.length).to.be.below(100_000);
    });

    it('counts names TorchServe never served under one model_name="" series, never their own', async () => {
      const { h, ts } = rig({ waitMs: 5 });
      loaded(ts, "resnet18");
      for (let i = 0; i < 1000; i++) {
        ts.apply(line(`POST /predictions/made-up-${i} HTTP/1.1`, 400, 1), "torchserve", "access_log");
      }
      await new Promise((r) => setTimeout(r, 50));
      ts.apply(line("POST /predictions/resnet18 HTTP/1.1", 500, 7), "torchserve", "access_log");
      const text = await h.scrape();
      expect(
        sample(
          text,
          'serve_inference_responses_total{model_name="",model_version="",status_class="4XX",hostname="h",}',
        ),
      ).to.equal(1000);
      expect(text).not.to.include("made-up");
      expect(
        sample(
          text,
          'serve_inference_responses_total{model_name="resnet18",model_version="default",status_class="5XX",hostname="h",}',
        ),
      ).to.equal(1);
      ts.stop();
    });

    it("gives a response that came before TorchServe's record of its model (another file) to that model", () => {
      const { ts, access } = rig({ waitMs: 60_000 });
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 200, 3), "torchserve", "access_log");
      expect(access).to.deep.equal([]);
      ts.apply(
        `${T} - HandlerTime.ms:1.5|#ModelName:mnist,Level:Model|#hostname:${H},requestID:r,timestamp:${TS}`,
        "torchserve",
        "model_metrics",
      );
      expect(access).to.deep.equal([{ model: "mnist", version: "default", status: 200, latencyMs: 3 }]);
      ts.stop();
    });

    it("gives the access log's series TorchServe's hostname, learned from its records, not the sidecar's", async () => {
      const { h, ts } = rig();
      ts.apply(
        `${T} - ts_inference_requests_total.Count:1.0|#model_name:mnist,model_version:default|#hostname:${H},timestamp:${TS}`,
        "torchserve",
        "ts_metrics",
      );
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 200, 3), "torchserve", "access_log");
      const text = await h.scrape();
      expect(text).to.include(
        `serve_inference_responses_total{model_name="mnist",model_version="default",status_class="2XX",hostname="${H}",} 1.0`,
      );
      expect(text).to.include(
        `serve_request_duration_seconds_count{model_name="mnist",model_version="default",hostname="${H}",} 1.0`,
      );
      expect(text).not.to.match(/^serve_(inference|request).*hostname="h",/m);
    });

    it("uses torchserve_hostname before any record names the host", () => {
      const { ts, hosts } = rig({ hostname: "ts-host" });
      loaded(ts, "mnist");
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 200, 3), "torchserve", "access_log");
      ts.apply(
        `${T} - ts_inference_requests_total.Count:1.0|#model_name:mnist,model_version:default|#hostname:${H},timestamp:${TS}`,
        "torchserve",
        "ts_metrics",
      );
      ts.apply(line("POST /predictions/mnist HTTP/1.1", 200, 3), "torchserve", "access_log");
      expect(hosts).to.deep.equal(["ts-host", "ts-host"]);
    });

    it("learns served models from WorkerLoadTime's worker name", () => {
      const { ts, access } = rig({ waitMs: 60_000 });
      ts.apply(
        `${T} - WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-my.model-v2_1.0,Level:Host|#hostname:${H},timestamp:${TS}`,
        "torchserve",
        "ts_metrics",
      );
      ts.apply(line("POST /predictions/my.model-v2 HTTP/1.1", 200, 3), "torchserve", "access_log");
      expect(access.map((a) => a.model)).to.deep.equal(["my.model-v2"]);
      ts.stop();
    });

    for (const [title, encoded] of [
      ["a CR (%0D)", "m%0Dx"],
      ["a NUL (%00)", "m%00"],
      ["a SOH (%01)", "%01m"],
      ["a line separator (%E2%80%A8)", "m%E2%80%A8"],
    ] as const) {
      it(`refuses a model name with ${title}, as metric lines do, and counts it`, async () => {
        const { h, ts, access } = rig({ waitMs: 5 });
        ts.apply(line(`POST /predictions/${encoded} HTTP/1.1`, 400, 1), "torchserve", "access_log");
        await new Promise((r) => setTimeout(r, 20));
        expect(access).to.deep.equal([]);
        expect(rejected(await h.scrape(), "torchserve", "invalid")).to.equal(1);
      });
    }
  });

  it("never throws on random interleavings of TorchServe's lines and garbage, and counts what it refuses", async () => {
    const piece = fc.constantFrom(
      `${T} - `,
      `${T} [INFO ] x TS_METRICS - `,
      `${T} [INFO ] x MODEL_METRICS - `,
      `${T} [INFO ] x ACCESS_LOG - `,
      `${T} [INFO ] x MODEL_LOG - `,
      "Requests2XX.Count:1.0",
      "HandlerTime.ms:1.0",
      "W-9000-m_1.0.ms:1",
      "GPUUtilization.Percent:1",
      "|#Level:Host",
      "|#ModelName:m,Level:Model",
      "|#",
      "device_id:0",
      "|#hostname:h,timestamp:1",
      "|#hostname:h,requestID:a,b,timestamp:null",
      '/1.2.3.4:5 "POST /predictions/m HTTP/1.1" 200 3',
      '"',
      " ",
      "[METRICS]",
    );
    const text = fc.oneof(
      fc.array(piece, { maxLength: 6 }).map((p) => p.join("")),
      fc.string({ maxLength: 40 }),
    );
    const hint = fc.constantFrom<TorchServeFile | undefined>(
      undefined,
      "ts_metrics",
      "model_metrics",
      "access_log",
    );
    const { h, ts } = rig({ autoDetect: true, catalog: loadDefaultCatalog() });
    let refused = 0;
    fc.assert(
      fc.property(text, hint, (t, hh) => {
        const outcome = ts.apply(t, "file", hh);
        if (outcome !== undefined && !outcome.ok) refused++;
      }),
      { numRuns: 2000 },
    );
    const scraped = await h.scrape();
    const counted = scraped
      .split("\n")
      .filter((l) => l.startsWith("serve_metric_lines_rejected_total{"))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    expect(counted).to.equal(refused);
  });
});
