import { expect } from "chai";
import { once } from "node:events";
import { appendFile } from "node:fs/promises";
import { setTimeout as sleep } from "node:timers/promises";
import type { ChildProcess } from "node:child_process";
import { ConfigError } from "../../src/config/errors.js";
import { createMemoryLogger } from "../../src/log.js";
import { startMetricsService, type MetricsService } from "../../src/service.js";
import { makeTempDir, removeTempDir, writeTempFile } from "../config/support.js";
import { cleanEnv, spawnCli, waitForStderr } from "../support/cli.js";
import { until } from "../support/net.js";
import { OtlpReceiver, type ReceivedMetric } from "../support/otlp-receiver.js";
import { sampleValue } from "../support/samples.js";
import { startTestService } from "../support/service.js";
import { log4jTime, requestLines, TorchServeLogWriter } from "../support/torchserve-log-writer.js";

/** What TorchServe's lines for requests 0..n-1 must add up to on /metrics. */
function expected(n: number): { sums: Map<string, number>; last: Map<string, number>; accessMs: number } {
  const sums = new Map<string, number>();
  const last = new Map<string, number>();
  let accessMs = 0;
  for (let i = 0; i < n; i++) {
    const lines = requestLines(i);
    for (const line of [...lines.ts_metrics, ...lines.model_metrics]) {
      const [, name = "", value = ""] = /^(\w+)\.[^:]+:([^|]+)\|/.exec(line) ?? [];
      sums.set(name, (sums.get(name) ?? 0) + Number(value));
      last.set(name, Number(value));
    }
    for (const line of lines.access_log) accessMs += Number(line.split(" ").at(-1));
  }
  return { sums, last, accessMs };
}

const HOST = "ip-172-31-11-32";
const MODEL = `model_name="mnist",model_version="default"`;

/** Checks one scrape against what TorchServe logged for n requests. */
function expectTotals(text: string, n: number): void {
  const { sums, last, accessMs } = expected(n);
  const at = (series: string): number | undefined => sampleValue(text, series);
  expect(at(`Requests2XX{Level="Host",Hostname="${HOST}",}`)).to.equal(n);
  expect(at(`ts_inference_requests_total{${MODEL},hostname="${HOST}",}`)).to.equal(n);
  for (const name of ["ts_inference_latency_microseconds", "ts_queue_latency_microseconds"]) {
    expect(at(`${name}{${MODEL},hostname="${HOST}",}`)).to.be.closeTo(sums.get(name) ?? NaN, 1e-6 * n);
  }
  // Gauges hold the last value logged.
  expect(at(`QueueTime{Level="Host",Hostname="${HOST}",}`)).to.equal(last.get("QueueTime"));
  expect(at(`HandlerTime{ModelName="mnist",Level="Model",Hostname="${HOST}",}`)).to.equal(
    last.get("HandlerTime"),
  );
  // Beyond TorchServe: every request in the histograms and the per-model response classes, under
  // TorchServe's hostname (one host for every family it feeds), not the sidecar's.
  expect(at(`serve_request_duration_seconds_count{${MODEL},hostname="${HOST}",}`)).to.equal(n);
  expect(at(`serve_request_duration_seconds_sum{${MODEL},hostname="${HOST}",}`)).to.be.closeTo(
    accessMs / 1000,
    1e-6,
  );
  expect(text).to.match(
    new RegExp(
      `^serve_inference_responses_total\\{${MODEL},status_class="2XX",hostname="${HOST}",\\} ${n}\\.0$`,
      "m",
    ),
  );
  expect(text).to.match(
    new RegExp(`^serve_handler_time_seconds_count\\{[^}]*model_name="mnist"[^}]*\\} ${n}\\.0$`, "m"),
  );
}

describe("next to a running TorchServe", function () {
  this.timeout(60_000);
  let dir: string;
  let service: MetricsService | undefined;
  let child: ChildProcess | undefined;
  beforeEach(() => (dir = makeTempDir()));
  afterEach(async () => {
    await service?.stop();
    service = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await once(child, "exit");
    }
    child = undefined;
    removeTempDir(dir);
  });

  it("shows exactly what TorchServe logged for N requests across several rollovers, its own scrapes uncounted", async () => {
    // Rolled every 256 KiB, at about 250 requests a second: each file rolls over every second or
    // so, a rate no real TorchServe reaches (it rolls at 100 MB), yet never twice within one look
    // of the follower (500 ms), which would lose the file in between (see TorchServeLogFollower).
    const writer = new TorchServeLogWriter({ logDir: dir, rotateBytes: 256 * 1024 });
    await writer.open();
    const started = await startTestService({ torchserveLogDir: dir, disableSystemMetrics: undefined });
    service = started.service;
    const n = 1500;
    for (let i = 0; i < n; i += 25) {
      await writer.writeRequests(25);
      await sleep(100);
    }
    await writer.close();
    expect(writer.rotations.ts_metrics).to.be.at.least(3);
    let text = "";
    await until(async () => {
      text = await (await fetch(started.url)).text();
      return sampleValue(text, `ts_inference_requests_total{${MODEL},hostname="${HOST}",}`) === n;
    }, "all requests on /metrics");
    // A settled scrape: the last lines of every file are in.
    await until(async () => {
      text = await (await fetch(started.url)).text();
      return (
        sampleValue(text, `serve_request_duration_seconds_count{${MODEL},hostname="${HOST}",}`) === n &&
        // model_metrics.log is read on its own timer: its last record may come a look later.
        sampleValue(text, `HandlerTime{ModelName="mnist",Level="Model",Hostname="${HOST}",}`) ===
          expected(n).last.get("HandlerTime")
      );
    }, "every access line and the last record of each file");
    expectTotals(text, n);
    // Sampling is off by default next to TorchServe (its own host metrics win), and the scrapes
    // above were not counted: Requests2XX holds TorchServe's responses only.
    expect(text).not.to.match(/^CPUUtilization\{/m);
    expect(text).not.to.match(/^Requests2XX\{Level="Host",Hostname="test-host",\}/m);
    expect(started.logger.lines.filter((l) => l.startsWith("WARN"))).to.deep.equal([]);
  });

  it("started after TorchServe, shows its gauges at once (WorkerLoadTime, host metrics, the last HandlerTime) without counting its history", async () => {
    const writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    await writer.writeRequests(40);
    await writer.close();
    const t = log4jTime(new Date());
    await appendFile(
      `${dir}/ts_metrics.log`,
      `${t} - WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:${HOST},timestamp:1717105563\n` +
        `${t} - CPUUtilization.Percent:12.5|#Level:Host|#hostname:${HOST},timestamp:1717105563\n` +
        `${t} - GPUUtilization.Percent:40.0|#Level:Host,DeviceId:0|#hostname:${HOST},timestamp:1717105563\n`,
    );
    const started = await startTestService({ torchserveLogDir: dir });
    service = started.service;
    let text = "";
    await until(async () => {
      text = await (await fetch(started.url)).text();
      return /^WorkerLoadTime\{/m.test(text);
    }, "WorkerLoadTime primed");
    const { last } = expected(40);
    expect(
      sampleValue(text, `WorkerLoadTime{WorkerName="W-9000-mnist_1.0",Level="Host",Hostname="${HOST}",}`),
    ).to.equal(2704);
    expect(sampleValue(text, `CPUUtilization{Level="Host",Hostname="${HOST}",}`)).to.equal(12.5);
    expect(sampleValue(text, `GPUUtilization{Level="Host",DeviceId="0",Hostname="${HOST}",}`)).to.equal(40);
    expect(sampleValue(text, `QueueTime{Level="Host",Hostname="${HOST}",}`)).to.equal(last.get("QueueTime"));
    expect(sampleValue(text, `HandlerTime{ModelName="mnist",Level="Model",Hostname="${HOST}",}`)).to.equal(
      last.get("HandlerTime"),
    );
    // History is not counted: no counter, no histogram observation from before the start.
    expect(text).not.to.match(/^Requests2XX\{/m);
    expect(text).not.to.match(/^ts_inference_requests_total\{/m);
    expect(text).not.to.match(/^serve_handler_time_seconds_count\{/m);
    // The models its history shows are known: their request durations start at 0, nothing counted.
    expect(text).to.match(/^serve_request_duration_seconds_count\{model_name="mnist",/m);
    expect(text).not.to.match(/^serve_request_duration_seconds_count\{.* (?!0\.0$)\S+$/m);
    expect(started.logger.lines.join("\n")).to.match(/gauge series primed from the last 4 MiB of each file/);
  });

  it("started a minute after TorchServe rotated its files, shows the gauges of the rotated (gzip) copies, the live files' last values winning, without counting either", async () => {
    const writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    await writer.writeRequests(40);
    await writer.writeLines("ts_metrics", [
      `WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-mnist_1.0,Level:Host|#hostname:${HOST},timestamp:1717105563`,
      `CPUUtilization.Percent:12.5|#Level:Host|#hostname:${HOST},timestamp:1717105563`,
    ]);
    // TorchServe's rollover (rename, new empty file, gzip), then one more request in the new files.
    await writer.rotate("ts_metrics");
    await writer.rotate("model_metrics");
    await writer.writeRequests(1);
    await writer.close();
    const started = await startTestService({ torchserveLogDir: dir });
    service = started.service;
    let text = "";
    await until(async () => {
      text = await (await fetch(started.url)).text();
      return /^WorkerLoadTime\{/m.test(text);
    }, "WorkerLoadTime primed from the rotated copy");
    expect(
      sampleValue(text, `WorkerLoadTime{WorkerName="W-9000-mnist_1.0",Level="Host",Hostname="${HOST}",}`),
    ).to.equal(2704);
    expect(sampleValue(text, `CPUUtilization{Level="Host",Hostname="${HOST}",}`)).to.equal(12.5);
    // The 41st request, in the live files, is the last value.
    const { last } = expected(41);
    expect(sampleValue(text, `QueueTime{Level="Host",Hostname="${HOST}",}`)).to.equal(last.get("QueueTime"));
    expect(sampleValue(text, `HandlerTime{ModelName="mnist",Level="Model",Hostname="${HOST}",}`)).to.equal(
      last.get("HandlerTime"),
    );
    // Neither the copies' history nor the live files' is counted.
    expect(text).not.to.match(/^Requests2XX\{/m);
    expect(text).not.to.match(/^ts_inference_requests_total\{/m);
    expect(text).not.to.match(/^serve_handler_time_seconds_count\{/m);
  });

  it("reads the console form from standard input (docker logs -f torchserve | serve-metrics --stdin), skipping quoted and echoed lines", async () => {
    const config = writeTempFile(dir, "config.properties", "metrics_address=http://127.0.0.1:0\n");
    child = spawnCli(["--ts-config", config, "--stdin"], cleanEnv());
    const [, url = ""] = await waitForStderr(child, /metrics API listening on (http:\S+)\/metrics\n/);
    const n = 300;
    const time = log4jTime(new Date());
    const console: string[] = [];
    for (let i = 0; i < n; i++) {
      const lines = requestLines(i);
      for (const line of lines.ts_metrics)
        console.push(`${time} [INFO ] epollEventLoopGroup-3-2 TS_METRICS - ${line}`);
      for (const line of lines.model_metrics) {
        // What ts_log.log holds besides the record: the worker's raw line echoed, and a handler
        // logging its input, which quotes a metric line. Neither may count.
        console.push(
          `${time} [INFO ] W-9000-mnist_1.0 org.pytorch.serve.wlm.WorkerLifeCycle - result=[METRICS]${line}, pattern=[METRICS]`,
        );
        console.push(`${time} [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - input: ${line}`);
        console.push(`${time} [INFO ] W-9000-mnist_1.0-stdout MODEL_METRICS - ${line}`);
      }
      for (const line of lines.access_log)
        console.push(`${time} [INFO ] epollEventLoopGroup-3-2 ACCESS_LOG - ${line}`);
    }
    // In uneven pieces, as a pipe delivers them.
    const bytes = Buffer.from(`${console.join("\n")}\n`);
    for (let from = 0; from < bytes.length; from += 7919)
      child.stdin?.write(bytes.subarray(from, from + 7919));
    let text = "";
    await until(async () => {
      text = await (await fetch(`${url}/metrics`)).text();
      return sampleValue(text, `serve_request_duration_seconds_count{${MODEL},hostname="${HOST}",}`) === n;
    }, "every request from standard input");
    expectTotals(text, n);
    expect(text).not.to.match(/^serve_metric_lines_rejected_total\{source="stdin",reason="malformed",/m);
    // The end of the input is not the end of the service: it keeps serving what was read.
    child.stdin?.end();
    await waitForStderr(child, /standard input ended after \d+ lines/);
    expect((await fetch(`${url}/metrics`)).status).to.equal(200);
  });

  it("says once that TorchServe may run with metrics_mode=prometheus when no metric line comes for two intervals", async () => {
    const started = await startTestService({ torchserveLogDir: dir, metricTimeInterval: 0.2 });
    service = started.service;
    const hints = (): string[] => started.logger.lines.filter((l) => l.includes("metrics_mode=prometheus"));
    await until(() => hints().length > 0, "the hint");
    await sleep(1000);
    expect(hints()).to.have.length(1);
    expect(hints()[0]).to.match(/^WARN nothing from TorchServe in 0 s .*set metrics_mode=log/);
  });

  it("times the silence by TorchServe's metric_time_interval from its config.properties (torchserve_config), not by its own", async () => {
    // Its own metric_time_interval (10 min) would wait 20 min; TorchServe's 1 s, 2 s.
    const started = await startTestService({
      torchserveLogDir: dir,
      metricTimeInterval: 600,
      torchserveMetricTimeInterval: 1,
    });
    service = started.service;
    const hints = (): string[] => started.logger.lines.filter((l) => l.includes("nothing from TorchServe"));
    await until(() => hints().length > 0, "the silence warning");
    expect(hints()).to.have.length(1);
  });

  it("words the silence warning for what it saw: access lines without metric lines mean metrics_mode=prometheus; lines that stopped do not", async () => {
    const writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    // Silence after 4 s: the access line below is read (every 500 ms) well before the first check.
    const started = await startTestService({ torchserveLogDir: dir, metricTimeInterval: 2 });
    service = started.service;
    const t = log4jTime(new Date());
    await appendFile(
      `${dir}/access_log.log`,
      `${t} - /127.0.0.1:1 "POST /predictions/mnist HTTP/1.1" 200 3\n`,
    );
    const warned = (re: RegExp): string[] =>
      started.logger.lines.filter((l) => l.startsWith("WARN") && re.test(l));
    await until(() => warned(/runs with metrics_mode=prometheus/).length > 0, "the prometheus-mode warning");
    expect(warned(/runs with metrics_mode=prometheus/)[0]).to.match(
      /TorchServe answered 1 requests in its access log/,
    );
    await writer.writeRequests(1);
    await until(() => warned(/metric lines stopped/).length > 0, "the stopped warning");
    expect(warned(/metric lines stopped/)[0]).to.include("has probably stopped, hung");
    expect(warned(/metric lines stopped/)[0]).not.to.include("Set metrics_mode=log");
    await writer.close();
  });

  it("refuses to write metrics_mode=log files into the TorchServe directory it follows (exit status 2)", async () => {
    const err = await startTestService(
      { torchserveLogDir: dir, metricsMode: "log" },
      { env: { METRICS_LOCATION: dir } },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(ConfigError);
    expect(err).to.include({ key: "metrics_mode", value: "log", exitCode: 2 });
  });

  it("pushes the same figures over OTLP", async () => {
    const rx = await OtlpReceiver.startHttp();
    try {
      service = await startMetricsService({
        logger: createMemoryLogger(),
        hostname: "test-host",
        env: {
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
          OTEL_METRIC_EXPORT_INTERVAL: "200",
        },
        settings: { enableMetricsApi: false, numberOfGpu: 0, torchserveLogDir: dir },
      });
      const writer = new TorchServeLogWriter({ logDir: dir });
      await writer.open();
      const n = 200;
      await writer.writeRequests(n);
      await writer.close();
      const { sums } = expected(n);
      const point = (metric: ReceivedMetric | undefined): number | undefined => {
        const value = metric?.points[0]?.value;
        return typeof value === "number" ? value : value?.count;
      };
      const latest = (name: string): ReceivedMetric | undefined =>
        rx.exports.at(-1)?.metrics.find((m) => m.name === name);
      await until(
        () =>
          point(latest("ts_inference_requests_total")) === n &&
          point(latest("serve_request_duration_seconds")) === n,
        "an export with every request",
      );
      expect(point(latest("Requests2XX"))).to.equal(n);
      expect(point(latest("ts_inference_latency_microseconds"))).to.be.closeTo(
        sums.get("ts_inference_latency_microseconds") ?? NaN,
        1e-6 * n,
      );
    } finally {
      await service?.stop();
      service = undefined;
      await rx.close();
    }
  });
});
