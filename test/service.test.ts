import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { appendFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../src/config/errors.js";
import type { Settings } from "../src/config/types.js";
import { request } from "./support/http.js";
import { until } from "./support/net.js";
import { startTestService } from "./support/service.js";
import { tempDir } from "./support/temp.js";
import { requireTool } from "./support/tools.js";

describe("the service's metric-line sources", function () {
  this.timeout(20_000);

  it("follows metric_log_files and applies the [METRICS] lines written after start, ignoring other lines", async () => {
    const file = join(tempDir("follow-"), "model_log.log");
    writeFileSync(
      file,
      "[METRICS]PredictionTime.Milliseconds:1|#ModelName:old,Level:Model|#hostname:h,1699061430\n",
    );
    const { service } = await startTestService({ metricLogFiles: [file] });
    try {
      appendFileSync(
        file,
        "2024-01-01T00:00:00,000 [INFO ] W-9000-mnist_1.0-stdout MODEL_LOG - loading\n" +
          "2024-01-01T00:00:00,001 [INFO ] W-9000-mnist_1.0-stdout MODEL_METRICS - [METRICS]PredictionTime.Milliseconds:42.5|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:w1,1699061430,r\n",
      );
      await until(
        async () => (await service.scrape(["PredictionTime"])).includes("mnist"),
        "the followed line",
      );
      const text = await service.scrape(["PredictionTime", "serve_metric_lines_rejected_total"]);
      expect(text).to.include('PredictionTime{ModelName="mnist",Level="Model",Hostname="w1",} 42.5\n');
      expect(text).not.to.include('ModelName="old"'); // written before start: like tail -F, not replayed
      expect(text).not.to.include("serve_metric_lines_rejected_total{"); // the plain log line is not a rejection
    } finally {
      await service.stop();
    }
  });

  it("with torchserve_log_from_start, opens its ports before TorchServe's backlog is read, and reports it read", async () => {
    const logs = tempDir("backlog-");
    const lines = 30_000;
    // About 3 MiB, read in 64 KiB chunks: far more reads than one turn of the event loop.
    const line = (i: number): string =>
      `2026-11-28T09:30:01,123 - Requests2XX.Count:1.0|#Level:Host|#hostname:ts-host,timestamp:${1780000000 + i}\n`;
    writeFileSync(join(logs, "ts_metrics.log"), Array.from({ length: lines }, (_, i) => line(i)).join(""));
    const { service, logger, url } = await startTestService({
      torchserveLogDir: logs,
      torchserveLogFromStart: true,
    });
    try {
      const done = (): boolean => logger.lines.some((l) => l.startsWith("INFO TorchServe backlog read:"));
      // Listening, and the backlog not read yet: the follower no longer holds up the start.
      expect(service.metricsUrl).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(done()).to.equal(false);
      expect(
        logger.lines.some((l) => /^INFO torchserve_log_from_start=true: reading \d+\.\d MiB/.test(l)),
      ).to.equal(true);
      expect((await request(url)).status).to.equal(200);
      await until(done, "the backlog to be read", 60_000);
      expect(logger.lines.find((l) => l.startsWith("INFO TorchServe backlog read:"))).to.match(
        new RegExp(`^INFO TorchServe backlog read: ${lines} lines in \\d+\\.\\d s; following new lines$`),
      );
      expect(await service.scrape(["Requests2XX"])).to.include(
        `Requests2XX{Level="Host",Hostname="ts-host",} ${lines}.0`,
      );
    } finally {
      await service.stop();
    }
  });

  it("takes from a followed file neither a quoted marker nor a forged frontend metric", async () => {
    const file = join(tempDir("follow-"), "model_log.log");
    writeFileSync(file, "");
    const { service } = await startTestService({ metricLogFiles: [file] });
    try {
      appendFileSync(
        file,
        "2024-01-01T00:00:00,000 [INFO ] W-9000-m_1.0-stdout MODEL_LOG - input: great movie! [METRICS]PredictionTime.Milliseconds:666|#ModelName:forged,Level:Model|#hostname:vm,1\n" +
          "[METRICS]Requests5XX.Count:100000|#Level:Host|#hostname:vm,1,r\n" +
          "[METRICS]PredictionTime.Milliseconds:1|#ModelName:real,Level:Model|#hostname:w1,1699061430\n",
      );
      await until(
        async () => (await service.scrape(["PredictionTime"])).includes("real"),
        "the followed line",
      );
      const text = await service.scrape([
        "PredictionTime",
        "Requests5XX",
        "serve_metric_lines_rejected_total",
      ]);
      expect(text).not.to.include("forged");
      expect(text).not.to.match(/^Requests5XX\{/m);
      expect(text).to.include('serve_metric_lines_rejected_total{source="file",reason="forbidden",');
      expect(text).not.to.include('reason="malformed"'); // the quoting line is a log line, not a bad metric line
    } finally {
      await service.stop();
    }
  });

  it("registers undeclared metrics on first sight with model_metrics_auto_detect=true", async () => {
    const { service } = await startTestService({
      modelMetricsAutoDetect: true,
      enableInferenceApi: true,
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
    });
    try {
      const lines = [
        "[METRICS]HandlerMethodTime.Milliseconds:3.5|#MethodName:preprocess,ModelName:mnist,Level:Model|#type:GAUGE|#hostname:h,1699061430,r",
        "[METRICS]ExamplePercentMetric.Percent:50|#ModelName:mnist,Level:Model|#type:HISTOGRAM|#hostname:h,1699061430,r",
        "[METRICS]InferenceRequestCount.Count:1|#|#type:COUNTER|#hostname:h,1699061430",
        "[METRICS]InferenceRequestCount.Count:2|#|#type:COUNTER|#hostname:h,1699061430",
      ].join("\n");
      const res = await request(`${service.inferenceUrl ?? ""}/metric-lines`, {
        method: "POST",
        body: lines,
      });
      expect(JSON.parse(res.body)).to.deep.equal({ accepted: 4, rejected: [], rejected_count: 0 });
      const text = await service.scrape();
      // TorchServe's own auto-detect test patterns, each exactly once.
      for (const pattern of [
        /TYPE HandlerMethodTime gauge/g,
        /HandlerMethodTime\{MethodName="preprocess",ModelName="mnist",Level="Model",Hostname=".+",\} \d+\.\d+/g,
        /TYPE ExamplePercentMetric histogram/g,
        /ExamplePercentMetric_sum\{ModelName="mnist",Level="Model",Hostname=".+",\} \d+\.\d+/g,
        /ExamplePercentMetric_count\{ModelName="mnist",Level="Model",Hostname=".+",\} \d+\.\d+/g,
        /TYPE InferenceRequestCount counter/g,
        /InferenceRequestCount\{Hostname=".+",\} \d+\.\d+/g,
      ]) {
        expect(text.match(pattern) ?? [], String(pattern)).to.have.length(1);
      }
      expect(text).to.include('InferenceRequestCount{Hostname="h",} 3.0\n');
    } finally {
      await service.stop();
    }
  });

  it("caps series at max_series_per_metric: the rest go to one overflow series, warned about once per metric", async () => {
    const { service, logger } = await startTestService({ maxSeriesPerMetric: 100 });
    try {
      for (let i = 0; i < 150; i++) {
        service.recordMetric("HandlerTime", i, { ModelName: `m${i}`, Level: "Model" });
        service.recordInference({ model: `m${i}`, status: 200, latencyMs: 1 });
      }
      const text = await service.scrape(["HandlerTime", "ts_inference_requests_total"]);
      const handler = text.split("\n").filter((l) => l.startsWith("HandlerTime{"));
      expect(handler).to.have.length(101);
      expect(handler.filter((l) => l.includes('ModelName="m'))).to.have.length(100);
      expect(handler[100]).to.equal('HandlerTime{otel_metric_overflow="true",} 149.0');
      const requests = text.split("\n").filter((l) => l.startsWith("ts_inference_requests_total{"));
      expect(requests[100]).to.equal('ts_inference_requests_total{otel_metric_overflow="true",} 50.0');
      await service.scrape();
      const warned = logger.lines
        .filter((l) => l.includes("max_series_per_metric"))
        .map((l) => l.split(":")[0]);
      expect(warned).to.have.members([
        "WARN HandlerTime",
        "WARN ts_inference_requests_total",
        "WARN ts_inference_latency_microseconds",
        "WARN ts_queue_latency_microseconds",
        "WARN serve_request_duration_seconds",
        "WARN serve_inference_responses_total",
        "WARN serve_handler_time_seconds",
      ]);
    } finally {
      await service.stop();
    }
  });
});

describe("the service's TLS files", () => {
  let dir: string;
  before(function () {
    requireTool(this, "openssl");
    dir = tempDir("tls-");
    const [key, cert] = [join(dir, "a.key"), join(dir, "a.crt")];
    const args = ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"];
    execFileSync("openssl", [...args, "-keyout", key, "-out", cert], { stdio: "ignore" });
    writeFileSync(join(dir, "garbage.pem"), "not a PEM file\n");
  });

  const refusal = async (certificateFile: string, privateKeyFile: string): Promise<ConfigError> => {
    const err = await startTestService({
      metricsAddress: { protocol: "https", host: "127.0.0.1", port: 0 },
      certificateFile: join(dir, certificateFile),
      privateKeyFile: join(dir, privateKeyFile),
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(ConfigError);
    return err as ConfigError;
  };

  it("names certificate_file when it is not a certificate", async () => {
    const err = await refusal("garbage.pem", "a.key");
    expect([err.key, err.value]).to.deep.equal(["certificate_file", join(dir, "garbage.pem")]);
  });

  it("names certificate_file, and suggests a swap, when it holds the private key", async () => {
    const err = await refusal("a.key", "a.crt");
    expect([err.key, err.value]).to.deep.equal(["certificate_file", join(dir, "a.key")]);
    expect(err.message).to.include("swapped");
  });

  it("names private_key_file when it is not a private key", async () => {
    for (const [file, hint] of [
      ["garbage.pem", ""],
      ["a.crt", "it holds a certificate"],
    ] as const) {
      const err = await refusal("a.crt", file);
      expect([err.key, err.value]).to.deep.equal(["private_key_file", join(dir, file)]);
      expect(err.message).to.include(hint);
    }
  });
});

describe("the service's start warnings and activities", () => {
  const inference = (host: string): Partial<Settings> => ({
    enableInferenceApi: true,
    inferenceAddress: { protocol: "http", host, port: 0 },
  });
  const unauthenticated = (lines: readonly string[]): string[] =>
    lines.filter((l) => l.startsWith("WARN inference_address") && l.includes("no authentication"));

  for (const host of ["0.0.0.0", "::"]) {
    it(`warns that /metric-lines has no authentication when the inference API binds ${host}`, async () => {
      const { service, logger } = await startTestService(inference(host));
      try {
        const warnings = unauthenticated(logger.lines);
        expect(warnings).to.have.length(1);
        expect(warnings[0]).to.include(`listening on ${host}`).and.to.include("/metric-lines");
      } finally {
        await service.stop();
      }
    });
  }

  it("does not warn on loopback, and lists what it does", async () => {
    const { service, logger } = await startTestService(inference("127.0.0.1"));
    try {
      expect(unauthenticated(logger.lines)).to.deep.equal([]);
      expect(service.activities).to.deep.equal([
        `metrics API on ${service.metricsUrl ?? ""}/metrics`,
        `inference API on ${service.inferenceUrl ?? ""}`,
      ]);
    } finally {
      await service.stop();
    }
  });

  it("lists no activity when it only answers its embedder", async () => {
    const { service } = await startTestService({ enableMetricsApi: false });
    try {
      expect(service.activities).to.deep.equal([]);
      expect(await service.scrape(["MemoryUsed"])).to.include("MemoryUsed{");
    } finally {
      await service.stop();
    }
  });
});
