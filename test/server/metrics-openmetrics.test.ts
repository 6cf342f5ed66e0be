import { expect } from "chai";
import { requestRaw as get } from "../support/http.js";
import { gunzipSync } from "node:zlib";
import type { MetricsService } from "../../src/service.js";
import { OPENMETRICS_CONTENT_TYPE } from "../../src/exposition/openmetrics-text.js";
import { PROTOBUF_CONTENT_TYPE } from "../../src/server/accept-format.js";
import { openMetricsSeries, parseOpenMetrics, textSeries } from "../support/openmetrics.js";
import { startTestService } from "../support/service.js";
import { requirePythonModule } from "../support/tools.js";

/** What Debian's Prometheus 2.42 sends with default flags (scrape/scrape.go, scrapeAcceptHeader). */
const PROMETHEUS_ACCEPT =
  "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75," +
  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/** What it sends with --enable-feature=native-histograms (scrapeAcceptHeaderWithProtobuf). */
const PROMETHEUS_NATIVE_ACCEPT =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited," +
  "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75," +
  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
const TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** The text without the Requests2XX samples, which count the scrapes themselves. */
const withoutScrapeCounts = (series: string[]): string[] =>
  series.filter((s) => !s.startsWith("Requests2XX{"));

function record(service: MetricsService): void {
  service.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5, queueMs: 0.5 });
  service.recordInference({ model: "resnet18", status: 503, latencyMs: 80, queueMs: 2 });
  service.recordInference({ model: 'we"ird\\model\nname', status: 200, latencyMs: 3000, queueMs: 1 });
  service.recordWorkerLoad({ workerName: "W-9000-resnet18_1.0", loadTimeMs: 4593 });
  for (let i = 0; i < 50; i++) {
    service.recordMetric("PredictionTime", i / 7, { ModelName: `m${i % 10}`, Level: "Model" });
  }
}

describe("/metrics in OpenMetrics text", () => {
  describe("with openmetrics=true", function () {
    let service: MetricsService | undefined;
    let url: string;
    let python: string;

    before(async function () {
      python = requirePythonModule(this, "prometheus_client.openmetrics.parser", "prometheus-client");
      const started = await startTestService({ disableSystemMetrics: true, openMetrics: true });
      ({ service, url } = started);
      record(started.service);
    });
    after(() => service?.stop());

    it("answers Prometheus' default Accept with OpenMetrics 1.0.0 holding the text's samples", async () => {
      const om = await get(url, { Accept: PROMETHEUS_ACCEPT });
      const text = await get(url, { Accept: "text/plain;version=0.0.4" });
      expect(om.status).to.equal(200);
      expect(om.headers["content-type"]).to.equal(OPENMETRICS_CONTENT_TYPE);
      expect(om.headers.vary).to.equal("Accept-Encoding, Accept");
      expect(om.body.toString().endsWith("\n# EOF\n")).to.equal(true);
      expect(text.headers["content-type"]).to.equal(TEXT_CONTENT_TYPE);
      const families = parseOpenMetrics(python, om.body.toString());
      const types = new Map(families.map((f) => [f.name, f.type]));
      expect(types.get("Requests2XX")).to.equal("unknown");
      expect(types.get("ts_inference_requests")).to.equal("counter");
      expect(types.get("ts_inference_latency_microseconds")).to.equal("unknown");
      expect(types.get("PredictionTime")).to.equal("gauge");
      expect(types.get("serve_request_duration_seconds")).to.equal("histogram");
      const fromText = withoutScrapeCounts(textSeries(text.body.toString()));
      expect(fromText.length).to.be.greaterThan(60);
      expect(withoutScrapeCounts(openMetricsSeries(families))).to.deep.equal(fromText);
    });

    it("still answers text 0.0.4, TorchServe's bytes, to clients that do not prefer OpenMetrics, and protobuf to those that ask for it", async () => {
      const bytes = (body: Buffer): string =>
        body
          .toString()
          .split("\n")
          .filter((line) => !line.startsWith("Requests2XX"))
          .join("\n");
      const plain = bytes((await get(url)).body);
      for (const accept of [
        undefined,
        "*/*",
        "text/plain;version=0.0.4",
        "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.5",
        "application/openmetrics-text;version=2.0.0,text/plain;q=0.1",
      ]) {
        const res = await get(url, accept === undefined ? {} : { Accept: accept });
        expect(res.headers["content-type"], accept).to.equal(TEXT_CONTENT_TYPE);
        expect(bytes(res.body), accept).to.equal(plain);
      }
      const proto = await get(url, { Accept: PROMETHEUS_NATIVE_ACCEPT });
      expect(proto.headers["content-type"]).to.equal(PROTOBUF_CONTENT_TYPE);
    });

    it("compresses OpenMetrics with gzip and filters it with name[]", async () => {
      const gzip = await get(url, { Accept: PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip" });
      const plain = await get(url, { Accept: PROMETHEUS_ACCEPT });
      expect(gzip.headers["content-encoding"]).to.equal("gzip");
      expect(gzip.headers["content-type"]).to.equal(OPENMETRICS_CONTENT_TYPE);
      const unzipped = gunzipSync(gzip.body).toString();
      expect(withoutScrapeCounts(openMetricsSeries(parseOpenMetrics(python, unzipped)))).to.deep.equal(
        withoutScrapeCounts(openMetricsSeries(parseOpenMetrics(python, plain.body.toString()))),
      );
      const filtered = await get(
        `${url}?name[]=ts_inference_requests_total&name[]=serve_request_duration_seconds_count`,
        { Accept: PROMETHEUS_ACCEPT, "Accept-Encoding": "gzip" },
      );
      expect(parseOpenMetrics(python, gunzipSync(filtered.body).toString()).map((f) => f.name)).to.deep.equal(
        ["ts_inference_requests", "serve_request_duration_seconds"],
      );
      const none = await get(`${url}?name[]=nothing`, { Accept: PROMETHEUS_ACCEPT });
      expect(none.body.toString()).to.equal("# EOF\n");
    });

    it("carries a traced request's exemplar on its latency bucket and response counter, from the exemplar store", async () => {
      const before = (await get(url, { Accept: PROMETHEUS_ACCEPT })).body.toString();
      expect(before).not.to.include("4bf92f3577b34da6a3ce929d0e0e4736");
      service?.recordInference({
        model: "resnet18",
        status: 200,
        latencyMs: 40,
        trace: { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" },
      });
      const text = (await get(url, { Accept: PROMETHEUS_ACCEPT })).body.toString();
      const exemplar = /# \{trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"\} /;
      const lines = text.split("\n").filter((line) => exemplar.test(line));
      expect(lines.map((line) => line.split("{")[0])).to.have.members([
        "serve_request_duration_seconds_bucket",
        "serve_inference_responses_total",
      ]);
      expect(lines.find((l) => l.startsWith("serve_request_duration_seconds_bucket"))).to.match(
        /le="0\.05"\} 2\.0 # \{[^}]*\} 0\.04 \d+\.\d{3}$/,
      );
      // prometheus_client's parser takes it, exemplar and all.
      expect(parseOpenMetrics(python, text).length).to.be.greaterThan(10);
    });
  });

  it("is never negotiated with openmetrics off (the default): Prometheus gets TorchServe's text", async () => {
    const { service, url } = await startTestService({ disableSystemMetrics: true });
    try {
      record(service);
      const res = await get(url, { Accept: PROMETHEUS_ACCEPT });
      expect(res.headers["content-type"]).to.equal(TEXT_CONTENT_TYPE);
      expect(res.body.toString()).to.include("# TYPE ts_inference_requests_total counter\n");
      expect(res.body.toString()).not.to.include("# EOF");
    } finally {
      await service.stop();
    }
  });

  it("warns that metrics_format=otel keeps its own text, and answers it, with openmetrics=true", async () => {
    const { service, url, logger } = await startTestService({
      disableSystemMetrics: true,
      openMetrics: true,
      metricsFormat: "otel",
    });
    try {
      const res = await get(url, { Accept: PROMETHEUS_ACCEPT });
      expect(res.headers["content-type"]).to.equal("text/plain; version=0.0.4; charset=utf-8");
      expect(res.body.toString()).not.to.include("# EOF");
      expect(logger.lines).to.include(
        "WARN openmetrics=true is for TorchServe naming: with metrics_format=otel /metrics answers its own text only",
      );
    } finally {
      await service.stop();
    }
  });

  it("answers an empty but valid OpenMetrics exposition in log mode", async () => {
    const { service, url } = await startTestService({
      disableSystemMetrics: true,
      openMetrics: true,
      metricsMode: "log",
    });
    try {
      const res = await get(url, { Accept: PROMETHEUS_ACCEPT });
      expect(res.headers["content-type"]).to.equal(OPENMETRICS_CONTENT_TYPE);
      expect(res.body.toString()).to.equal("# EOF\n");
    } finally {
      await service.stop();
    }
  });
});
