import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import type { Exemplar } from "../../src/exposition/exemplars.js";
import {
  OPENMETRICS_EOF,
  openMetricsFamily,
  openMetricsHistogramSamples,
  openMetricsScalarSample,
  type ExemplarSlots,
} from "../../src/exposition/openmetrics-text.js";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { SeriesStore } from "../../src/exposition/series-store.js";
import { chunksToString } from "../../src/exposition/text-chunks.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { openMetricsSeries, parseOpenMetrics, textSeries } from "../support/openmetrics.js";
import { requirePythonModule } from "../support/tools.js";

const FAMILIES: FamilySpec[] = [
  { name: "Requests2XX", type: "counter", unit: "Count", labels: ["Level", "Hostname"] },
  { name: "ts_inference_requests_total", type: "counter", unit: "Count", labels: ["model_name"] },
  { name: "QueueTime", type: "gauge", unit: 'Milli "seconds" \\ per\nline', labels: ["Level"] },
  { name: "Latency", type: "histogram", unit: "s", labels: ["model_name"] },
  { name: "Unused_total", type: "counter", unit: "Count", labels: [] },
  { name: "UnusedHistogram", type: "histogram", unit: "s", labels: [] },
];

/** Exemplars handed to the store by test, as the exemplar storage hands them over. */
class StoreWithExemplars extends SeriesStore {
  readonly exemplars = new Map<string, ExemplarSlots>();
  override exemplarsOf(family: string, labels: string): ExemplarSlots | undefined {
    return this.exemplars.get(`${family} ${labels}`);
  }
}

/** A meter whose delta collections feed a store of FAMILIES. */
function pipeline(boundaries = [0.0005, 0.25, 1, 1e7]) {
  const reader = new PullReader(AggregationTemporality.DELTA);
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("t");
  const store = new StoreWithExemplars({ families: FAMILIES });
  return {
    requests: meter.createCounter("Requests2XX"),
    inferences: meter.createCounter("ts_inference_requests_total"),
    queue: meter.createGauge("QueueTime"),
    latency: meter.createHistogram("Latency", { advice: { explicitBucketBoundaries: boundaries } }),
    store,
    collect: async () => store.apply((await reader.collect()).resourceMetrics),
    openMetrics: (filter?: ReadonlySet<string>) => chunksToString(store.renderOpenMetrics(FAMILIES, filter)),
    text: (filter?: ReadonlySet<string>) => chunksToString(store.render(FAMILIES, filter)),
  };
}

describe("OpenMetrics text", () => {
  it("declares counters so that their sample names stay TorchServe's", () => {
    const spec = (name: string, type: FamilySpec["type"]): FamilySpec => ({
      name,
      type,
      unit: "",
      labels: [],
    });
    expect(openMetricsFamily(spec("Requests2XX", "counter"), false, true)).to.deep.equal({
      name: "Requests2XX",
      type: "unknown",
    });
    expect(openMetricsFamily(spec("ts_inference_requests_total", "counter"), false, true)).to.deep.equal({
      name: "ts_inference_requests",
      type: "counter",
    });
    // `_total` alone has no family name to keep.
    expect(openMetricsFamily(spec("_total", "counter"), false, true)).to.deep.equal({
      name: "_total",
      type: "unknown",
    });
    expect(openMetricsFamily(spec("ts_queue_latency_microseconds", "counter"), false, true).type).to.equal(
      "unknown",
    );
    expect(openMetricsFamily(spec("QueueTime", "gauge"), false, true)).to.deep.equal({
      name: "QueueTime",
      type: "gauge",
    });
    expect(openMetricsFamily(spec("H", "histogram"), true, true)).to.deep.equal({
      name: "H",
      type: "histogram",
    });
    expect(openMetricsFamily(spec("H", "histogram"), false, false).type).to.equal("histogram");
    // A view that aggregates a catalog histogram as something else: what the data is, as protobuf says.
    expect(openMetricsFamily(spec("H", "histogram"), false, true).type).to.equal("gauge");
  });

  it("renders every family type, HELP and TYPE first, labels without the trailing comma, ending with # EOF", async () => {
    const p = pipeline();
    p.requests.add(3, { Level: "Host", Hostname: "h" });
    p.inferences.add(5, { model_name: "resnet" });
    p.queue.record(2.5, { Level: "Model" });
    p.latency.record(0.0001, { model_name: "resnet" });
    p.latency.record(0.3, { model_name: "resnet" });
    await p.collect();
    expect(p.openMetrics()).to.equal(
      [
        "# HELP Requests2XX Torchserve prometheus counter metric with unit: Count",
        "# TYPE Requests2XX unknown",
        'Requests2XX{Level="Host",Hostname="h"} 3.0',
        "# HELP ts_inference_requests Torchserve prometheus counter metric with unit: Count",
        "# TYPE ts_inference_requests counter",
        'ts_inference_requests_total{model_name="resnet"} 5.0',
        '# HELP QueueTime Torchserve prometheus gauge metric with unit: Milli \\"seconds\\" \\\\ per\\nline',
        "# TYPE QueueTime gauge",
        'QueueTime{Level="Model"} 2.5',
        "# HELP Latency Torchserve prometheus histogram metric with unit: s",
        "# TYPE Latency histogram",
        'Latency_bucket{model_name="resnet",le="5.0E-4"} 1.0',
        'Latency_bucket{model_name="resnet",le="0.25"} 1.0',
        'Latency_bucket{model_name="resnet",le="1.0"} 2.0',
        'Latency_bucket{model_name="resnet",le="1.0E7"} 2.0',
        'Latency_bucket{model_name="resnet",le="+Inf"} 2.0',
        'Latency_count{model_name="resnet"} 2.0',
        'Latency_sum{model_name="resnet"} 0.3001',
        "# HELP Unused Torchserve prometheus counter metric with unit: Count",
        "# TYPE Unused counter",
        "# HELP UnusedHistogram Torchserve prometheus histogram metric with unit: s",
        "# TYPE UnusedHistogram histogram",
        "# EOF",
        "",
      ].join("\n"),
    );
  });

  describe("read by prometheus_client's OpenMetrics parser", function () {
    let python: string;
    before(function () {
      python = requirePythonModule(this, "prometheus_client.openmetrics.parser", "prometheus-client");
    });

    it("holds the same samples as the text 0.0.4 of the same store: names, labels and values", async () => {
      const p = pipeline();
      for (const level of ["Host", 'q"uo\\te', "new\nline", "ünï ☃", ""]) {
        p.requests.add(7, { Level: level, Hostname: "h" });
        p.queue.record(-1.5e-7, { Level: level });
      }
      p.requests.add(1.2345678e7, { Level: "big", Hostname: "h" });
      p.queue.record(NaN, { Level: "nan" });
      p.queue.record(Infinity, { Level: "inf" });
      p.queue.record(-Infinity, { Level: "-inf" });
      p.queue.record(-0, { Level: "-0" });
      p.inferences.add(0.1, { model_name: "m" });
      p.inferences.add(0.2, { model_name: "m" });
      for (const v of [0, 0.0001, 0.0005, 0.1, 0.25, 3, 1e8]) p.latency.record(v, { model_name: "m" });
      p.latency.record(1, { model_name: 'x"y' });
      await p.collect();
      // Twice, so that some families come from the cache and others were written again.
      p.queue.record(4, { Level: "Host" });
      await p.collect();

      const families = parseOpenMetrics(python, p.openMetrics());
      const fromText = textSeries(p.text());
      expect(fromText.length).to.be.greaterThan(25);
      expect(openMetricsSeries(families)).to.deep.equal(fromText);
      const types = Object.fromEntries(families.map((f) => [f.name, f.type]));
      expect(types).to.deep.equal({
        Requests2XX: "unknown",
        ts_inference_requests: "counter",
        QueueTime: "gauge",
        Latency: "histogram",
        Unused: "counter",
        UnusedHistogram: "histogram",
      });
      expect(families.find((f) => f.name === "QueueTime")?.help).to.equal(
        'Torchserve prometheus gauge metric with unit: Milli "seconds" \\ per\nline',
      );
    });

    it("answers name[] with the families it names, a histogram whole, and # EOF even for none", async () => {
      const p = pipeline();
      p.requests.add(1, { Level: "Host", Hostname: "h" });
      p.inferences.add(1, { model_name: "m" });
      p.latency.record(0.1, { model_name: "m" });
      await p.collect();
      const names = (filter: string[]): string[] =>
        parseOpenMetrics(python, p.openMetrics(new Set(filter))).map((f) => f.name);
      expect(names(["Requests2XX"])).to.deep.equal(["Requests2XX"]);
      expect(names(["ts_inference_requests_total", "Latency_count"])).to.deep.equal([
        "ts_inference_requests",
        "Latency",
      ]);
      const histogram = p.openMetrics(new Set(["Latency_sum"]));
      expect(histogram).to.include('Latency_bucket{model_name="m",le="+Inf"} 1.0\n');
      expect(histogram).to.include('Latency_count{model_name="m"} 1.0\n');
      // The family name of a _total counter is no sample name, and families without series are not named.
      expect(p.openMetrics(new Set(["ts_inference_requests", "Unused_total", "Nothing"]))).to.equal(
        OPENMETRICS_EOF,
      );
      expect(parseOpenMetrics(python, OPENMETRICS_EOF)).to.deep.equal([]);
    });

    it("writes exemplars on classic buckets and _total counters only, which the parser reads back", async () => {
      const p = pipeline([0.1, 1]);
      p.requests.add(1, { Level: "Host", Hostname: "h" });
      p.inferences.add(1, { model_name: "m" });
      p.latency.record(0.093, { model_name: "m" });
      p.latency.record(5, { model_name: "m" });
      await p.collect();
      const trace = (value: number, timestampMs: number): Exemplar => ({
        labels: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" },
        value,
        timestampMs,
      });
      p.store.exemplars.set('Latency model_name="m",', [
        trace(0.093, 1700000000123),
        undefined,
        trace(5, 1700000001000),
      ]);
      p.store.exemplars.set('ts_inference_requests_total model_name="m",', [
        { labels: { requestID: 'a "quoted"\\id' }, value: 1, timestampMs: 1700000000005 },
      ]);
      // Prometheus fails the whole scrape over an exemplar on a sample not named _total or _bucket.
      p.store.exemplars.set('Requests2XX Level="Host",Hostname="h",', [trace(1, 1700000000000)]);
      // The store's cache holds what was rendered before: a change to the series writes it again.
      p.latency.record(0.5, { model_name: "m" });
      p.inferences.add(1, { model_name: "m" });
      p.requests.add(1, { Level: "Host", Hostname: "h" });
      await p.collect();

      const text = p.openMetrics();
      expect(text).to.include(
        'Latency_bucket{model_name="m",le="0.1"} 1.0 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736",span_id="00f067aa0ba902b7"} 0.093 1700000000.123\n',
      );
      expect(text).to.include('Latency_bucket{model_name="m",le="1.0"} 2.0\n');
      expect(text).to.include(
        'ts_inference_requests_total{model_name="m"} 2.0 # {requestID="a \\"quoted\\"\\\\id"} 1.0 1700000000.005\n',
      );
      expect(text).to.include('Requests2XX{Level="Host",Hostname="h"} 2.0\n');

      const exemplars = parseOpenMetrics(python, text).flatMap((f) =>
        f.samples
          .filter((s) => s.exemplar !== null)
          .map((s) => ({ name: s.name, le: s.labels.le, ...s.exemplar })),
      );
      expect(exemplars).to.deep.equal([
        {
          name: "ts_inference_requests_total",
          le: undefined,
          labels: { requestID: 'a "quoted"\\id' },
          value: 1,
          timestamp: 1700000000.005,
        },
        {
          name: "Latency_bucket",
          le: "0.1",
          labels: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" },
          value: 0.093,
          timestamp: 1700000000.123,
        },
        {
          name: "Latency_bucket",
          le: "+Inf",
          labels: { trace_id: "4bf92f3577b34da6a3ce929d0e0e4736", span_id: "00f067aa0ba902b7" },
          value: 5,
          timestamp: 1700000001,
        },
      ]);
    });
  });

  it("writes an exemplar's time in seconds to the millisecond, and none when it is not a time", () => {
    const exemplar = (timestampMs: number): Exemplar => ({ labels: {}, value: 0.5, timestampMs });
    const family = { name: "c", type: "counter" } as const;
    expect(openMetricsScalarSample("c_total", "", 1, family, exemplar(5))).to.equal(
      "c_total 1.0 # {} 0.5 0.005\n",
    );
    expect(openMetricsScalarSample("c_total", "", 1, family, exemplar(1700000000999.6))).to.equal(
      "c_total 1.0 # {} 0.5 1700000001.000\n",
    );
    expect(openMetricsScalarSample("c_total", "", 1, family, exemplar(NaN))).to.equal(
      "c_total 1.0 # {} 0.5\n",
    );
    expect(openMetricsScalarSample("c_total", "", 1, family, exemplar(-1))).to.equal(
      "c_total 1.0 # {} 0.5\n",
    );
    expect(openMetricsScalarSample("g", "", 1, { name: "g", type: "gauge" }, exemplar(5))).to.equal(
      "g 1.0\n",
    );
    expect(
      openMetricsHistogramSamples("h", 'a="1",', { boundaries: [1], counts: [0, 2], sum: 9, count: 2 }, [
        undefined,
        exemplar(1000),
      ]),
    ).to.equal(
      'h_bucket{a="1",le="1.0"} 0.0\nh_bucket{a="1",le="+Inf"} 2.0 # {} 0.5 1.000\nh_count{a="1"} 2.0\nh_sum{a="1"} 9.0\n',
    );
  });

  it("keeps a family's chunks while it is unchanged, and writes it again after a change or an eviction", async () => {
    const p = pipeline();
    p.requests.add(1, { Level: "Host", Hostname: "h" });
    p.queue.record(1, { Level: "Model" });
    await p.collect();
    const first = p.store.renderOpenMetrics(FAMILIES);
    p.queue.record(2, { Level: "Model" });
    await p.collect();
    const second = p.store.renderOpenMetrics(FAMILIES);
    // One chunk per family here: Requests2XX, ts_inference_requests_total, QueueTime, …
    expect(second[0]).to.equal(first[0]); // unchanged: the same Buffer
    expect(second[1]).to.equal(first[1]);
    expect(second[2]).not.to.equal(first[2]); // changed
    expect(chunksToString(second)).to.include('QueueTime{Level="Model"} 2.0\n');
    p.store.evict("Requests2XX", 'Level="Host",Hostname="h",');
    expect(chunksToString(p.store.renderOpenMetrics(FAMILIES))).not.to.include("Requests2XX{");
  });
});
