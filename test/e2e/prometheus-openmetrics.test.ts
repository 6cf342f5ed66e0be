import { expect } from "chai";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import type { MetricsService } from "../../src/service.js";
import type { Exemplar } from "../../src/exposition/exemplars.js";
import { OPENMETRICS_CONTENT_TYPE, type ExemplarSlots } from "../../src/exposition/openmetrics-text.js";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { SeriesStore } from "../../src/exposition/series-store.js";
import { chunksToString } from "../../src/exposition/text-chunks.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { apiGet, instantQuery, waitForScrapes } from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";
import {
  seriesKey,
  startScraper,
  stopScraper,
  storedSeries,
  type Scraper,
} from "../support/prometheus-scraper.js";

/**
 * Every stored series' latest value, as sorted `name{labels} value` lines, but for those that
 * change on their own between two Prometheus' scrapes: Requests2XX counts the scrapes, process_*
 * are sampled every few seconds, and the scrape_* series are Prometheus' own.
 */
async function storedValues(api: string): Promise<string[]> {
  const result = await instantQuery(
    api,
    '{job="serve-metrics",__name__!~"Requests2XX|process_.*|scrape_.*"}',
  );
  return result.map((r) => `${seriesKey(r.metric)} ${r.value[1]}`).sort();
}

describe("Debian's Prometheus scraping OpenMetrics text (openmetrics=true)", function () {
  this.timeout(90_000);
  let service: MetricsService | undefined;
  let text: Scraper | undefined;
  let openMetrics: Scraper | undefined;

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const started = await startTestService({ disableSystemMetrics: true, openMetrics: true });
    service = started.service;
    for (const [model, latencyMs, status] of [
      ["resnet18", 12.5, 200],
      ["resnet18", 250, 200],
      ['we"ird\\model', 0.3, 200],
      ["bert", 3000, 503],
    ] as const) {
      service.recordInference({ model, status, latencyMs, queueMs: 0.5, backendMs: latencyMs - 0.1 });
    }
    service.recordWorkerLoad({ workerName: "W-9000-resnet18_1.0", loadTimeMs: 4593 });
    service.recordMetric("PredictionTime", 83.13, { ModelName: "resnet18", Level: "Model" });
    service.recordMetric("HandlerTime", 1.2345678e7, { ModelName: "resnet18", Level: "Model" });
    // Default flags both; the proxy in front of the first one asks for text 0.0.4 in its stead.
    text = await startScraper(binary, started.url, [], "text/plain;version=0.0.4");
    openMetrics = await startScraper(binary, started.url, ["--enable-feature=exemplar-storage"]);
    await waitForScrapes(text.prometheus, "serve-metrics", 2);
    await waitForScrapes(openMetrics.prometheus, "serve-metrics", 2);
  });

  after(async () => {
    await stopScraper(text);
    await stopScraper(openMetrics);
    await service?.stop();
  });

  it("negotiates OpenMetrics with Prometheus' default Accept", () => {
    expect(openMetrics?.seen.length).to.be.at.least(2);
    for (const s of openMetrics?.seen ?? []) {
      expect(s.accept).to.equal(
        "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
      );
      expect(s.contentType).to.equal("application/openmetrics-text; version=1.0.0; charset=utf-8");
    }
    expect(text?.seen.length).to.be.at.least(2);
    for (const s of text?.seen ?? [])
      expect(s.contentType).to.equal("text/plain; version=0.0.4; charset=utf-8");
  });

  it("stores the same series names and labels as from text 0.0.4: no _total added, le as in the text", async () => {
    const fromText = await storedSeries(text?.prometheus.api ?? "");
    const fromOpenMetrics = await storedSeries(openMetrics?.prometheus.api ?? "");
    expect(fromText.length).to.be.greaterThan(40);
    expect(fromText).to.include('Requests2XX{Hostname="test-host",Level="Host"}');
    expect(fromText).to.include(
      'ts_inference_latency_microseconds{hostname="test-host",model_name="resnet18",model_version="default"}',
    );
    expect(fromText).to.include(
      'serve_request_duration_seconds_bucket{hostname="test-host",le="10.0",model_name="bert",model_version="default"}',
    );
    expect(
      fromOpenMetrics.filter((s) => !fromText.includes(s)),
      "only in OpenMetrics",
    ).to.deep.equal([]);
    expect(
      fromText.filter((s) => !fromOpenMetrics.includes(s)),
      "only in text",
    ).to.deep.equal([]);
  });

  it("stores the same values as from text 0.0.4", async () => {
    const fromText = await storedValues(text?.prometheus.api ?? "");
    expect(fromText.length).to.be.greaterThan(40);
    expect(fromText).to.include(
      'ts_inference_requests_total{hostname="test-host",model_name="resnet18",model_version="default"} 2',
    );
    expect(await storedValues(openMetrics?.prometheus.api ?? "")).to.deep.equal(fromText);
  });
});

/** A store whose exemplars the test sets, as the exemplar storage would hand them over. */
class StoreWithExemplars extends SeriesStore {
  readonly exemplars = new Map<string, ExemplarSlots>();
  override exemplarsOf(family: string, labels: string): ExemplarSlots | undefined {
    return this.exemplars.get(`${family} ${labels}`);
  }
}

describe("Debian's Prometheus storing the exemplars of our OpenMetrics text", function () {
  this.timeout(60_000);
  let server: Server | undefined;
  let scraper: Scraper | undefined;
  /** When the exemplars were taken; their times are set from it. */
  let now = 0;
  const trace = (traceId: string, value: number, timestampMs: number): Exemplar => ({
    labels: { trace_id: traceId, span_id: "00f067aa0ba902b7" },
    value,
    timestampMs,
  });

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const families: FamilySpec[] = [
      { name: "Requests2XX", type: "counter", unit: "Count", labels: ["Level"] },
      { name: "ts_inference_requests_total", type: "counter", unit: "Count", labels: ["model_name"] },
      { name: "serve_request_duration_seconds", type: "histogram", unit: "s", labels: ["model_name"] },
    ];
    const reader = new PullReader(AggregationTemporality.DELTA);
    const meter = new MeterProvider({ readers: [reader] }).getMeter("t");
    const store = new StoreWithExemplars({ families });
    meter.createCounter("Requests2XX").add(1, { Level: "Host" });
    meter.createCounter("ts_inference_requests_total").add(2, { model_name: 'we"ird' });
    const latency = meter.createHistogram("serve_request_duration_seconds", {
      advice: { explicitBucketBoundaries: [0.0005, 0.1, 1] },
    });
    latency.record(0.093, { model_name: 'we"ird' });
    latency.record(3, { model_name: 'we"ird' });
    store.apply((await reader.collect()).resourceMetrics);
    now = Date.now();
    store.exemplars.set('serve_request_duration_seconds model_name="we\\"ird",', [
      undefined,
      trace("4bf92f3577b34da6a3ce929d0e0e4736", 0.093, now - 1500),
      undefined,
      trace("5bf92f3577b34da6a3ce929d0e0e4737", 3, now - 1000),
    ]);
    store.exemplars.set('ts_inference_requests_total model_name="we\\"ird",', [
      { labels: { requestID: 'a\\b"c' }, value: 1, timestampMs: now - 500 },
    ]);
    // An exemplar here would fail the whole scrape: the renderer must leave it out.
    store.exemplars.set('Requests2XX Level="Host",', [trace("6bf92f3577b34da6a3ce929d0e0e4738", 1, now)]);
    server = createServer((_req, res) => {
      res.writeHead(200, { "Content-Type": OPENMETRICS_CONTENT_TYPE });
      res.end(chunksToString(store.renderOpenMetrics(families)));
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    scraper = await startScraper(binary, url, ["--enable-feature=exemplar-storage"]);
    await waitForScrapes(scraper.prometheus, "serve-metrics", 2);
  });

  after(async () => {
    await stopScraper(scraper);
    server?.closeAllConnections();
    await new Promise((resolve) => (server === undefined ? resolve(undefined) : server.close(resolve)));
  });

  it("stores the exemplars of classic buckets and _total counters, labels, values and times to the millisecond", async () => {
    const end = Date.now() / 1000;
    const found = await apiGet<
      {
        seriesLabels: Record<string, string>;
        exemplars: { labels: Record<string, string>; value: string; timestamp: number }[];
      }[]
    >(
      scraper?.prometheus.api ?? "",
      `/query_exemplars?query=${encodeURIComponent('{job="serve-metrics"}')}&start=${end - 600}&end=${end}`,
    );
    const stored = found
      .flatMap((f) => f.exemplars.map((e) => ({ series: seriesKey(f.seriesLabels), ...e })))
      .sort((a, b) => (a.series < b.series ? -1 : 1));
    // Times as milliseconds before `now`, as written.
    expect(stored.map((e) => ({ ...e, timestamp: Math.round(e.timestamp * 1000) - now }))).to.deep.equal([
      {
        series: 'serve_request_duration_seconds_bucket{le="+Inf",model_name="we\\"ird"}',
        labels: { trace_id: "5bf92f3577b34da6a3ce929d0e0e4737", span_id: "00f067aa0ba902b7" },
        value: "3",
        timestamp: -1000,
      },
      {
        series: 'serve_request_duration_seconds_bucket{le="0.1",model_name="we\\"ird"}',
        labels: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" },
        value: "0.093",
        timestamp: -1500,
      },
      {
        series: 'ts_inference_requests_total{model_name="we\\"ird"}',
        // 2.42 keeps an exemplar label value's escapes: textparse/openmetricsparse.go's Exemplar(),
        // unlike its Metric(), does not unescape. `a\b"c`, written `a\\b\"c`, is stored as written.
        labels: { requestID: 'a\\\\b\\"c' },
        value: "1",
        timestamp: -500,
      },
    ]);
  });
});

describe("Debian's Prometheus storing a traced request's exemplars from OpenMetrics (openmetrics=true)", function () {
  this.timeout(60_000);
  let service: MetricsService | undefined;
  let scraper: Scraper | undefined;
  const trace = { traceId: "0af7651916cd43dd8448eb211c80319c", spanId: "b7ad6b7169203331" };

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const started = await startTestService({ disableSystemMetrics: true, openMetrics: true });
    service = started.service;
    service.recordInference({ model: "resnet18", status: 200, latencyMs: 93, queueMs: 0.5, trace });
    // Default flags but exemplar storage: Prometheus asks for OpenMetrics first.
    scraper = await startScraper(binary, started.url, ["--enable-feature=exemplar-storage"]);
    await waitForScrapes(scraper.prometheus, "serve-metrics", 2);
  });

  after(async () => {
    await stopScraper(scraper);
    await service?.stop();
  });

  it("returns the trace context on the latency bucket and on the response counter, scraped as OpenMetrics", async () => {
    for (const s of scraper?.seen ?? [])
      expect(s.contentType).to.equal("application/openmetrics-text; version=1.0.0; charset=utf-8");
    const end = Date.now() / 1000;
    const found = await apiGet<
      {
        seriesLabels: Record<string, string>;
        exemplars: { labels: Record<string, string>; value: string }[];
      }[]
    >(
      scraper?.prometheus.api ?? "",
      `/query_exemplars?query=${encodeURIComponent('{job="serve-metrics"}')}&start=${end - 600}&end=${end}`,
    );
    const stored = found
      .flatMap((f) =>
        f.exemplars.map((e) => `${seriesKey(f.seriesLabels)} ${JSON.stringify(e.labels)} ${e.value}`),
      )
      .sort();
    const labels = JSON.stringify({ span_id: trace.spanId, trace_id: trace.traceId });
    expect(stored).to.deep.equal([
      `serve_inference_responses_total{hostname="test-host",model_name="resnet18",model_version="default",status_class="2XX"} ${labels} 1`,
      `serve_request_duration_seconds_bucket{hostname="test-host",le="0.1",model_name="resnet18",model_version="default"} ${labels} 0.093`,
    ]);
  });
});
