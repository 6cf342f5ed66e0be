import { expect } from "chai";
import { appendFileSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { request } from "./support/http.js";
import { until } from "./support/net.js";
import { startTestService } from "./support/service.js";

describe("the service's metric-line sources", function () {
  this.timeout(20_000);

  it("follows metric_log_files and applies the [METRICS] lines written after start, ignoring other lines", async () => {
    const file = join(mkdtempSync(join(tmpdir(), "follow-")), "model_log.log");
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
      ]);
    } finally {
      await service.stop();
    }
  });
});
