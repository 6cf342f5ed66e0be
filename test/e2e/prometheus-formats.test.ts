import { expect } from "chai";
import type { MetricsService } from "../../src/service.js";
import { instantQuery, waitForScrapes } from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";
import { startScraper, stopScraper, storedSeries, type Scraper } from "../support/prometheus-scraper.js";

describe("Debian's Prometheus scraping each exposition format", function () {
  this.timeout(90_000);
  let service: MetricsService;
  let metricsUrl: string;
  let text: Scraper | undefined;
  let protobuf: Scraper | undefined;

  before(async function () {
    const binary = requireTool(this, "prometheus");
    ({ service, url: metricsUrl } = await startTestService({ disableSystemMetrics: true }));
    for (const [model, latencyMs, status] of [
      ["resnet18", 12.5, 200],
      ["resnet18", 250, 200],
      ["bert", 3000, 503],
    ] as const) {
      service.recordInference({ model, status, latencyMs, queueMs: 0.5, backendMs: latencyMs - 1 });
    }
    service.recordWorkerLoad({ workerName: "W-9000-resnet18_1.0", loadTimeMs: 4593 });
    service.recordMetric("PredictionTime", 83.13, { ModelName: "resnet18", Level: "Model" });
    text = await startScraper(binary, metricsUrl, []);
    protobuf = await startScraper(binary, metricsUrl, [
      "--enable-feature=native-histograms,exemplar-storage",
    ]);
    await waitForScrapes(text.prometheus, "serve-metrics", 2);
    await waitForScrapes(protobuf.prometheus, "serve-metrics", 2);
  });

  after(async () => {
    await stopScraper(text);
    await stopScraper(protobuf);
    await service.stop();
  });

  it("negotiates protobuf with native histograms on, and text 0.0.4 without", () => {
    expect(protobuf?.seen.length).to.be.at.least(2);
    for (const s of protobuf?.seen ?? []) {
      expect(s.accept).to.match(
        /^application\/vnd\.google\.protobuf;proto=io\.prometheus\.client\.MetricFamily;encoding=delimited/,
      );
      expect(s.contentType).to.equal(
        "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
      );
    }
    for (const s of text?.seen ?? [])
      expect(s.contentType).to.equal("text/plain; version=0.0.4; charset=utf-8");
  });

  it("stores the same series names and labels whichever format it negotiated (no _total added)", async () => {
    const fromText = await storedSeries(text?.prometheus.api ?? "");
    const fromProtobuf = await storedSeries(protobuf?.prometheus.api ?? "");
    expect(fromText.length).to.be.greaterThan(20);
    expect(fromText).to.include('Requests2XX{Hostname="test-host",Level="Host"}');
    expect(fromText).to.include(
      'serve_request_duration_seconds_bucket{hostname="test-host",le="10.0",model_name="bert",model_version="default"}',
    );
    // Prometheus 2.42 stores a histogram with native buckets as one native series of the family's
    // name, without its classic _bucket, _count and _sum series: fold those of the text the same way.
    const expected = [...new Set(fromText.map(asNative))].sort();
    expect(fromProtobuf).to.include(
      'serve_request_duration_seconds{hostname="test-host",model_name="bert",model_version="default"}',
    );
    expect(
      fromProtobuf.filter((s) => !expected.includes(s)),
      "only in protobuf",
    ).to.deep.equal([]);
    expect(
      expected.filter((s) => !fromProtobuf.includes(s)),
      "only in text",
    ).to.deep.equal([]);
  });

  it("stores the same values whichever format it negotiated", async () => {
    const values = async (api: string, promql: string): Promise<string[]> =>
      (await instantQuery(api, promql))
        .map((r) => `${JSON.stringify({ ...r.metric, instance: "" })} ${r.value[1]}`)
        .sort();
    for (const promql of [
      "ts_inference_requests_total",
      "ts_inference_latency_microseconds",
      "WorkerLoadTime",
      "PredictionTime",
    ]) {
      const fromText = await values(text?.prometheus.api ?? "", promql);
      expect(fromText, promql).not.to.be.empty;
      expect(await values(protobuf?.prometheus.api ?? "", promql), promql).to.deep.equal(fromText);
    }
    // A native histogram's count and sum are those of the classic one.
    for (const [classic, native] of <[string, string][]>[
      ["serve_request_duration_seconds_count", "histogram_count(serve_request_duration_seconds)"],
      ["serve_request_duration_seconds_sum", "histogram_sum(serve_request_duration_seconds)"],
      ["serve_prediction_time_seconds_count", "histogram_count(serve_prediction_time_seconds)"],
    ]) {
      const strip = (lines: string[]): string[] => lines.map((l) => l.replace(/"__name__":"[^"]*",/, ""));
      const fromText = strip(await values(text?.prometheus.api ?? "", `${classic} + 0`));
      expect(fromText, classic).not.to.be.empty;
      expect(strip(await values(protobuf?.prometheus.api ?? "", native)), native).to.deep.equal(fromText);
    }
  });
});

/** The families that carry native buckets by default (native_histograms). */
const NATIVE = [
  "serve_request_duration_seconds",
  "serve_handler_time_seconds",
  "serve_prediction_time_seconds",
];

/** A stored classic series of a native family as Prometheus stores the native one: `name{labels but le}`. */
function asNative(series: string): string {
  const m = /^(\w+?)_(bucket|count|sum)\{(.*)\}$/.exec(series);
  if (m === null || !NATIVE.includes(m[1] ?? "")) return series;
  const labels = (m[3] ?? "").split(",").filter((l) => !l.startsWith("le="));
  return `${m[1]}{${labels.join(",")}}`;
}
