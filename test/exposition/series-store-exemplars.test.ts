import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import type { Exemplar } from "../../src/exposition/exemplars.js";
import { PullReader } from "../../src/exposition/pull-reader.js";
import { SeriesStore, type SeriesExemplars } from "../../src/exposition/series-store.js";
import { chunksToString } from "../../src/exposition/text-chunks.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { decodeMetricFamilies, type DecodedExemplar } from "../support/metric-family.js";

const FAMILIES: FamilySpec[] = [
  { name: "Responses", type: "counter", unit: "Count", labels: ["model_name"] },
  { name: "Depth", type: "gauge", unit: "Count", labels: ["model_name"] },
  { name: "Latency", type: "histogram", unit: "Seconds", labels: ["model_name"] },
];
const BOUNDS = [0.1, 1];

/** A delta pipeline into a store, as the scraper runs it: exemplars applied after their points. */
function pipeline(limit = Infinity) {
  const reader = new PullReader(AggregationTemporality.DELTA);
  const meter = new MeterProvider({ readers: [reader] }).getMeter("t");
  const responses = meter.createCounter("Responses");
  const depth = meter.createGauge("Depth");
  const latency = meter.createHistogram("Latency", { advice: { explicitBucketBoundaries: BOUNDS } });
  const store = new SeriesStore({ families: FAMILIES, limitOf: () => limit });
  return {
    responses,
    depth,
    latency,
    store,
    collect: async (exemplars: SeriesExemplars[] = []) => {
      store.apply((await reader.collect()).resourceMetrics);
      store.applyExemplars(exemplars);
    },
  };
}

function ex(trace: string, value: number, timestampMs = 1_700_000_000_123): Exemplar {
  return { labels: { trace_id: trace, span_id: "00f067aa0ba902b7" }, value, timestampMs };
}

function decoded(e: Exemplar): DecodedExemplar {
  return {
    label: Object.entries(e.labels).map(([name, value]) => ({ name, value })),
    value: e.value,
    timestamp: { seconds: Math.floor(e.timestampMs / 1000), nanos: (e.timestampMs % 1000) * 1e6 },
  };
}

describe("SeriesStore exemplars", () => {
  it("keeps the newest exemplar per classic bucket, placed by value", async () => {
    const p = pipeline();
    for (const v of [0.05, 0.5, 0.7, 5]) p.latency.record(v, { model_name: "m" });
    await p.collect([
      {
        family: "Latency",
        attributes: { model_name: "m" },
        exemplars: [ex("a", 0.05), ex("b", 0.7), ex("c", 5)],
      },
    ]);
    p.latency.record(0.06, { model_name: "m" });
    await p.collect([
      { family: "Latency", attributes: { model_name: "m" }, exemplars: [ex("d", 0.06, 1_700_000_001_000)] },
    ]);
    expect(p.store.exemplarsOf("Latency", 'model_name="m",')?.map((e) => e?.labels.trace_id)).to.deep.equal([
      "d",
      "b",
      "c",
    ]);
    expect(p.store.exemplarsOf("Latency", 'model_name="other",')).to.equal(undefined);
  });

  it("keeps one per counter series and none for a gauge or a series the store does not hold", async () => {
    const p = pipeline();
    p.responses.add(1, { model_name: "m" });
    p.depth.record(3, { model_name: "m" });
    await p.collect([
      { family: "Responses", attributes: { model_name: "m" }, exemplars: [ex("a", 1)] },
      { family: "Depth", attributes: { model_name: "m" }, exemplars: [ex("b", 3)] },
      { family: "Responses", attributes: { model_name: "never" }, exemplars: [ex("c", 1)] },
      { family: "Unknown", attributes: {}, exemplars: [ex("d", 1)] },
    ]);
    expect(p.store.exemplarsOf("Responses", 'model_name="m",')?.map((e) => e?.labels.trace_id)).to.deep.equal(
      ["a"],
    );
    expect(p.store.exemplarsOf("Depth", 'model_name="m",')).to.equal(undefined);
    expect(p.store.exemplarCount).to.equal(1);
  });

  it("forgets a series' exemplars when the series is evicted", async () => {
    const p = pipeline();
    p.latency.record(0.5, { model_name: "m" });
    await p.collect([
      { family: "Latency", attributes: { model_name: "m" }, exemplars: [undefined, ex("a", 0.5)] },
    ]);
    expect(p.store.exemplarCount).to.equal(1);
    p.store.evict("Latency", 'model_name="m",');
    expect(p.store.exemplarsOf("Latency", 'model_name="m",')).to.equal(undefined);
    expect(p.store.exemplarCount).to.equal(0);
  });

  it("stays bounded with many label sets: series past the limit go to the overflow series without exemplars", async () => {
    const p = pipeline(100);
    const updates: SeriesExemplars[] = [];
    for (let i = 0; i < 5_000; i++) {
      const attributes = { model_name: `m${i}` };
      p.latency.record(0.5, attributes);
      p.responses.add(1, attributes);
      updates.push({ family: "Latency", attributes, exemplars: [ex(`l${i}`, 0.05), ex(`k${i}`, 0.5)] });
      updates.push({ family: "Responses", attributes, exemplars: [ex(`r${i}`, 1)] });
    }
    await p.collect(updates);
    // 100 kept series per family: two exemplars per histogram, one per counter.
    expect(p.store.exemplarCount).to.equal(300);
    expect(p.store.exemplarsOf("Latency", 'otel_metric_overflow="true",')).to.equal(undefined);
    for (let i = 0; i < 100; i++) p.store.evict("Latency", `model_name="m${i}",`);
    expect(p.store.exemplarCount).to.equal(100);
  });

  it("writes exemplars into protobuf buckets and counters, leaves the text alone", async () => {
    const p = pipeline();
    p.latency.record(0.05, { model_name: "m" });
    p.latency.record(5, { model_name: "m" });
    p.responses.add(1, { model_name: "m" });
    p.responses.add(1, { model_name: "quiet" });
    await p.collect();
    const textBefore = chunksToString(p.store.render(FAMILIES));
    const before = decodeMetricFamilies(Buffer.concat(p.store.renderProtobuf(FAMILIES)));
    const low = ex("a".repeat(32), 0.05, 1_700_000_000_250);
    const inf = ex("c".repeat(32), 5);
    const counted = ex("b".repeat(32), 1);
    p.store.applyExemplars([
      { family: "Latency", attributes: { model_name: "m" }, exemplars: [low, undefined, inf] },
      { family: "Responses", attributes: { model_name: "m" }, exemplars: [counted] },
    ]);
    expect(chunksToString(p.store.render(FAMILIES))).to.equal(textBefore);
    const families = decodeMetricFamilies(Buffer.concat(p.store.renderProtobuf(FAMILIES)));
    // The cached family was written again.
    expect(families).to.not.deep.equal(before);
    const latency = families.find((f) => f.name === "Latency")?.metric[0]?.histogram;
    expect(latency?.bucket.map((b) => [b.upperBound, b.cumulativeCount, b.exemplar])).to.deep.equal([
      [0.1, 1, decoded(low)],
      [1, 1, null],
      // The +Inf bucket comes along only to carry its exemplar, with the histogram's count.
      [Infinity, 2, decoded(inf)],
    ]);
    const responses = families.find((f) => f.name === "Responses")?.metric;
    expect(responses?.map((m) => [m.label[0]?.value, m.counter?.value, m.counter?.exemplar])).to.deep.equal([
      ["m", 1, decoded(counted)],
      ["quiet", 1, null],
    ]);
  });

  it("leaves the +Inf bucket out of the protobuf when it has no exemplar", async () => {
    const p = pipeline();
    p.latency.record(5, { model_name: "m" });
    await p.collect([
      { family: "Latency", attributes: { model_name: "m" }, exemplars: [undefined, ex("a", 0.5)] },
    ]);
    const [family] = decodeMetricFamilies(Buffer.concat(p.store.renderProtobuf([FAMILIES[2] as FamilySpec])));
    expect(family?.metric[0]?.histogram?.bucket.map((b) => b.upperBound)).to.deep.equal([0.1, 1]);
    expect(family?.metric[0]?.histogram?.bucket[1]?.exemplar?.label[0]?.value).to.equal("a");
  });
});
