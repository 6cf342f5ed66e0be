import { expect } from "chai";
import { createMemoryLogger } from "../../src/log.js";
import { startMetricsService, type MetricsService } from "../../src/service.js";
import type { MetricsFormat } from "../../src/config/types.js";
import { LIFECYCLE_INSTRUMENT_NAMES, lifecycleMetrics } from "../../src/telemetry/lifecycle-metrics.js";
import { until } from "../support/net.js";
import { OtlpReceiver } from "../support/otlp-receiver.js";
import { startTestService } from "../support/service.js";

/** The value of one sample of a scrape, by its name and some of its labels; undefined if absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split("\n")) {
    const m = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m?.[1] !== name) continue;
    const have = new Map([...(m[2] ?? "").matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return undefined;
}

const BROKEN = {
  model: "broken",
  version: "2.0",
  isDefault: true,
  workers: 1,
  url: undefined,
  command: "FW_DIE_AT_START=1 node test/fixtures/workers/faulty-worker.js --port {port}",
};
const ECHO = {
  model: "echo",
  version: "1.0",
  isDefault: true,
  workers: 2,
  url: undefined,
  command: "node test/fixtures/workers/echo-worker.js --port {port}",
};

describe("lifecycle and self metrics", function () {
  this.timeout(30_000);
  const services: MetricsService[] = [];
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.stop()));
  });

  for (const format of ["torchserve", "otel"] as MetricsFormat[]) {
    it(`counts workers by state, restarts by reason and each version's queue capacity (${format} naming)`, async () => {
      const { service } = await startTestService(
        {
          models: [BROKEN, ECHO],
          inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
          jobQueueSize: 7,
          metricsFormat: format,
        },
        { workerTimings: { backoff: { initialMs: 50, maxMs: 100 }, stopGraceMs: 1000 } },
      );
      services.push(service);
      let text = "";
      const restarts = (): number =>
        sample(text, "serve_worker_restarts_total", { model_name: "broken", reason: "exit" }) ?? 0;
      const echoReady = (): number =>
        sample(text, "serve_workers", { model_name: "echo", state: "ready" }) ?? 0;
      await until(async () => {
        text = await service.scrape();
        return restarts() >= 2 && echoReady() === 2;
      }, "two restarts of the broken worker and both echo workers ready");

      for (const state of ["starting", "backing_off"])
        expect(sample(text, "serve_workers", { model_name: "echo", state }), state).to.equal(0);
      expect(sample(text, "serve_workers", { model_name: "broken", state: "ready" })).to.equal(0);
      // The broken worker is always somewhere: starting or waiting for its restart.
      const broken = ["starting", "backing_off"].map(
        (state) =>
          sample(text, "serve_workers", { model_name: "broken", model_version: "2.0", state }) ?? NaN,
      );
      expect(broken[0]! + broken[1]!).to.equal(1);
      // Every reason starts at 0, so the first restart is an increase; echo never restarted.
      for (const reason of ["signal", "start_failed", "startup_timeout", "unresponsive"])
        expect(
          sample(text, "serve_worker_restarts_total", { model_name: "broken", reason }),
          reason,
        ).to.equal(0);
      expect(sample(text, "serve_worker_restarts_total", { model_name: "echo", reason: "exit" })).to.equal(0);
      for (const model of ["broken", "echo"])
        expect(sample(text, "serve_job_queue_size", { model_name: model, hostname: "test-host" })).to.equal(
          7,
        );
    });

    it(`shows the process metrics and applied lines under the standard names (${format} naming)`, async () => {
      const before = Date.now() / 1000;
      const { service } = await startTestService({ metricsFormat: format });
      services.push(service);
      expect(
        service.recordMetricLine(
          "[METRICS]HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:w1,1,r",
        ),
      ).to.deep.equal({ ok: true });
      expect(service.recordMetricLine("not a metric line").ok).to.equal(false);
      const text = await service.scrape();
      expect(sample(text, "serve_metric_lines_applied_total", { source: "http" })).to.equal(1);
      expect(
        sample(text, "serve_metric_lines_rejected_total", { source: "http", reason: "malformed" }),
      ).to.equal(1);
      const start = sample(text, "process_start_time_seconds", { hostname: "test-host" }) ?? NaN;
      expect(start).to.be.within(before - process.uptime() - 1, before);
      expect(sample(text, "process_cpu_seconds_total")).to.be.above(0);
      expect(sample(text, "process_resident_memory_bytes")).to.be.above(10 * 1024 * 1024);
      const open = sample(text, "process_open_fds") ?? NaN;
      expect(open)
        .to.be.above(2)
        .and.at.most(sample(text, "process_max_fds") ?? 0);
      for (const result of ["success", "failure"])
        expect(sample(text, "serve_otlp_exports_total", { result }), result).to.equal(0);
    });
  }

  it("tells why workers were restarted: killed by a signal, or not ready within the startup timeout", async () => {
    const { service } = await startTestService(
      {
        models: [
          // The shell kills itself: the leader ends by SIGKILL that nobody here sent.
          { ...BROKEN, model: "killed", command: "kill -KILL $$" },
          {
            ...BROKEN,
            model: "slow",
            command: "FW_NEVER_READY=1 node test/fixtures/workers/faulty-worker.js --port {port}",
            startupTimeoutSeconds: 0.3,
          },
        ],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      },
      { workerTimings: { backoff: { initialMs: 50, maxMs: 100 }, stopGraceMs: 200 } },
    );
    services.push(service);
    let text = "";
    const restarts = (model: string, reason: string): number =>
      sample(text, "serve_worker_restarts_total", { model_name: model, reason }) ?? 0;
    await until(
      async () => {
        text = await service.scrape();
        return restarts("killed", "signal") >= 1 && restarts("slow", "startup_timeout") >= 1;
      },
      "a restart of each",
      15_000,
    );
    expect(restarts("killed", "exit")).to.equal(0);
    expect(restarts("slow", "exit") + restarts("slow", "signal")).to.equal(0);
  });

  it("keeps worker, queue and process gauges under series expiry, which drops idle counters", async () => {
    const { service } = await startTestService(
      {
        models: [ECHO],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        seriesExpirySeconds: 1,
      },
      { workerTimings: { backoff: { initialMs: 50, maxMs: 100 }, stopGraceMs: 1000 } },
    );
    services.push(service);
    await service.workersReady();
    expect(
      service.recordMetricLine(
        "[METRICS]HandlerTime.Milliseconds:3|#ModelName:m,Level:Model|#hostname:w1,1,r",
      ).ok,
    ).to.equal(true);
    let text = await service.scrape();
    expect(sample(text, "serve_metric_lines_applied_total", { source: "http" })).to.equal(1);
    await until(async () => {
      text = await service.scrape();
      return sample(text, "serve_metric_lines_applied_total", { source: "http" }) === undefined;
    }, "the idle counter to expire");
    expect(sample(text, "serve_workers", { model_name: "echo", state: "ready" })).to.equal(2);
    expect(sample(text, "serve_job_queue_size", { model_name: "echo" })).to.be.above(0);
    expect(sample(text, "process_resident_memory_bytes")).to.be.above(0);
  });

  it("reads the process only when sampled, so that a scrape reads nothing from the OS", async () => {
    const { service } = await startTestService();
    services.push(service);
    const cpu = async (): Promise<number> =>
      sample(await service.scrape(), "process_cpu_seconds_total") ?? NaN;
    const first = await cpu();
    const burnUntil = performance.now() + 50;
    while (performance.now() < burnUntil); // CPU time that a reading made now would see
    await service.sampleSystem();
    const sampled = await cpu();
    expect(sampled).to.be.above(first);
    // Scrapes alone change nothing (the next timed reading is 15 s away).
    expect(await cpu()).to.equal(sampled);
  });

  it("counts OTLP exports by result, and pushes the new metrics under their names", async () => {
    const rx = await OtlpReceiver.startHttp();
    const logger = createMemoryLogger();
    const service = await startMetricsService({
      env: {
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        OTEL_METRIC_EXPORT_INTERVAL: "200",
        OTEL_EXPORTER_OTLP_TIMEOUT: "500",
      },
      logger,
      hostname: "test-host",
      settings: { metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 }, numberOfGpu: 0 },
    });
    services.push(service);
    try {
      let text = "";
      const exports = (result: string): number => sample(text, "serve_otlp_exports_total", { result }) ?? NaN;
      await until(async () => {
        text = await service.scrape();
        return exports("success") >= 1;
      }, "a successful export counted");
      expect(exports("failure")).to.equal(0);
      // The first export may come before the first reading of the process; a later one has it.
      const full = await rx.waitForExport((e) =>
        e.metrics.some((m) => m.name === "process_cpu_seconds_total"),
      );
      const names = full.metrics.map((m) => m.name);
      for (const name of [
        "process_resident_memory_bytes",
        "process_start_time_seconds",
        "serve_otlp_exports_total",
      ])
        expect(names, name).to.include(name);

      rx.setMode("unavailable");
      await until(async () => {
        text = await service.scrape();
        return exports("failure") >= 1;
      }, "a failed export counted");
    } finally {
      await service.stop();
      await rx.close();
    }
  });

  it("declares every family with a hostname label, last, and an OpenTelemetry name of the same sample name", () => {
    for (const def of lifecycleMetrics()) {
      expect(def.dimensions.at(-1), def.name).to.equal("hostname");
      expect(def.section).to.equal("ts_metrics");
      // exporter-prometheus turns dots into underscores and adds _total to counters, nothing more.
      const otel = LIFECYCLE_INSTRUMENT_NAMES[def.name] ?? "";
      expect(otel.replaceAll(".", "_") + (def.type === "counter" ? "_total" : ""), def.name).to.equal(
        def.name,
      );
    }
  });
});
