import { PrometheusSerializer } from "@opentelemetry/exporter-prometheus";
import { AggregationTemporality, MeterProvider, type ResourceMetrics } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import { renderOtelChunks, renderOtelText } from "../../src/exposition/otel-text.js";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { chunksToString } from "../../src/exposition/text-chunks.js";

/** exporter-prometheus' serializer as the service configures it: the reference, in one call. */
const reference = new PrometheusSerializer(undefined, false, undefined, true, true);

/** A cumulative collection of a counter, a gauge and a histogram with `series` series each. */
async function collection(series: number): Promise<ResourceMetrics> {
  const reader = new PullReader(AggregationTemporality.CUMULATIVE);
  const provider = new MeterProvider({ readers: [reader] });
  const meter = provider.getMeter("t");
  const hits = meter.createCounter("hits", { unit: "1", description: "Hits" });
  const depth = meter.createGauge("depth");
  const latency = meter.createHistogram("latency", {
    unit: "ms",
    advice: { explicitBucketBoundaries: [1, 10] },
  });
  for (let i = 0; i < series; i++) {
    const attributes = { model: `m${i}`, note: i % 7 === 0 ? 'q"\\\n' : "" };
    hits.add(i, attributes);
    depth.record(i / 3, attributes);
    latency.record(i % 20, attributes);
  }
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics;
}

describe("renderOtelChunks", () => {
  it("is exporter-prometheus' text byte for byte, a metric of many points included", async () => {
    for (const series of [0, 1, 255, 256, 257, 1000]) {
      const data = await collection(series);
      const chunks = renderOtelChunks(data);
      expect(chunksToString(chunks), `${series} series`).to.equal(reference.serialize(data));
    }
  });

  it("comes in chunks, and serializes a metric a few hundred points at a time, headers once", async () => {
    const data = await collection(1000);
    const chunks = renderOtelChunks(data);
    expect(chunks.length).to.be.greaterThan(1);
    const text = chunksToString(chunks);
    expect(text.match(/^# TYPE hits_total counter$/gm)).to.have.length(1);
    expect(text.match(/^hits_total\{/gm)).to.have.length(1000);
  });

  it("filters by sample name across chunks, keeping each kept family's comment lines once", async () => {
    const data = await collection(1000);
    const text = renderOtelText(data, new Set(["hits_total", "latency_count"]));
    const lines = text.split("\n").filter((l) => l !== "");
    expect(lines.filter((l) => l.startsWith("hits_total{"))).to.have.length(1000);
    expect(lines.filter((l) => l.startsWith("latency_count{"))).to.have.length(1000);
    expect(lines.filter((l) => l.startsWith("# TYPE"))).to.deep.equal([
      "# TYPE hits_total counter",
      "# TYPE latency histogram",
    ]);
    expect(lines.filter((l) => !l.startsWith("#") && !/^(hits_total|latency_count)\{/.test(l))).to.deep.equal(
      [],
    );
    expect(renderOtelText(data, new Set(["nothing"]))).to.equal("");
  });
});
