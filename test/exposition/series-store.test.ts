import type { Attributes } from "@opentelemetry/api";
import { AggregationTemporality, MeterProvider } from "@opentelemetry/sdk-metrics";
import { expect } from "chai";
import fc from "fast-check";
import { metricsByName, PullReader } from "../../src/exposition/pull-reader.js";
import { renderTorchServeText, SeriesStore } from "../../src/exposition/series-store.js";
import { CHUNK_CHARS, chunksToString } from "../../src/exposition/text-chunks.js";
import type { FamilySpec } from "../../src/exposition/torchserve-text.js";
import { NativeBuckets } from "../../src/telemetry/native-buckets.js";
import { decodeMetricFamilies, type DecodedFamily } from "../support/metric-family.js";

const FAMILIES: FamilySpec[] = [
  { name: "Count", type: "counter", unit: "Count", labels: ["Model", "Level"] },
  { name: "Bare", type: "counter", unit: "Count", labels: [] },
  { name: "Depth", type: "gauge", unit: "Count", labels: ["Model"] },
  { name: "Latency", type: "histogram", unit: "ms", labels: ["Model", "Level"] },
];
const SAMPLE_NAMES = ["Count", "Bare", "Depth", "Latency_bucket", "Latency_count", "Latency_sum", "Other"];

/** One provider read by the SDK's own cumulative reader and by a delta reader feeding a store. */
function pipeline(limit = Infinity) {
  const cumulative = new PullReader(AggregationTemporality.CUMULATIVE);
  const delta = new PullReader(AggregationTemporality.DELTA);
  const provider = new MeterProvider({ readers: [cumulative, delta] });
  const meter = provider.getMeter("t");
  const count = meter.createCounter("Count");
  const bare = meter.createCounter("Bare");
  const depth = meter.createGauge("Depth");
  const latency = meter.createHistogram("Latency", { advice: { explicitBucketBoundaries: [1, 10] } });
  const overflowed: string[] = [];
  const store = new SeriesStore({
    families: FAMILIES,
    limitOf: () => limit,
    onOverflow: (f) => overflowed.push(f),
  });
  return {
    record: {
      Count: count.add.bind(count),
      Bare: bare.add.bind(bare),
      Depth: depth.record.bind(depth),
      Latency: latency.record.bind(latency),
    },
    overflowed,
    store,
    deltaReader: delta,
    /** The SDK's cumulative collection, rendered. */
    reference: async (filter?: ReadonlySet<string>) =>
      renderTorchServeText(FAMILIES, metricsByName((await cumulative.collect()).resourceMetrics), filter),
    /** The delta collection added into the store, rendered. */
    stored: async (filter?: ReadonlySet<string>) => {
      store.apply((await delta.collect()).resourceMetrics);
      return chunksToString(store.render(FAMILIES, filter));
    },
  };
}

const MODELS = ["a", 'b"q', "c\\d", "e\nf", ""];
const LEVELS = ["Model", "Host", undefined];

/**
 * The same label values in either key order: the SDK's series identity ignores the order. An
 * undeclared attribute (`Zone`) makes another series with the same declared values.
 */
function attributes(
  model: string,
  level: string | undefined,
  reversed: boolean,
  zone: string | undefined,
): Attributes {
  const pairs: [string, string][] = [["Model", model]];
  if (level !== undefined) pairs.push(["Level", level]);
  if (zone !== undefined) pairs.push(["Zone", zone]);
  return Object.fromEntries(reversed ? pairs.reverse() : pairs);
}

const step = fc.oneof(
  fc.record({
    kind: fc.constant("record" as const),
    metric: fc.constantFrom("Count", "Bare", "Depth", "Latency"),
    value: fc.oneof(fc.integer({ min: 0, max: 1000 }), fc.double({ min: 0, max: 1e9, noNaN: true })),
    model: fc.constantFrom(...MODELS),
    level: fc.constantFrom(...LEVELS),
    reversed: fc.boolean(),
    zone: fc.constantFrom(undefined, undefined, "z"),
  }),
  fc.record({
    kind: fc.constant("scrape" as const),
    filter: fc.option(fc.subarray(SAMPLE_NAMES), { nil: undefined }),
  }),
);

describe("SeriesStore", () => {
  it("renders, from delta collections, exactly what the SDK's cumulative collection renders", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 40 }), async (steps) => {
        const p = pipeline();
        for (const s of [...steps, { kind: "scrape" as const, filter: undefined }]) {
          if (s.kind === "record") {
            const attrs = s.metric === "Bare" ? {} : attributes(s.model, s.level, s.reversed, s.zone);
            p.record[s.metric](s.value, attrs);
            continue;
          }
          const filter = s.filter && new Set(s.filter);
          // Both readers collect at the same moment, so both see the same recordings.
          const [expected, actual] = [await p.reference(filter), await p.stored(filter)];
          expect(actual).to.equal(expected);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("matches each delta's points to their series whatever their order, undeclared attributes included", async () => {
    const p = pipeline();
    const deltas: Attributes[][] = [
      [{ Model: "a", Level: "Model" }, { Model: "b", Level: "Model" }, { Model: "c" }],
      // The same values as the previous delta's points, place by place, but other series.
      [{ Model: "a", Level: "Model", Zone: "z" }, { Model: "b" }, { Model: "c", Level: "Host" }],
      // One series gone from the middle, one new, the rest in their old order, then all reversed.
      [{ Model: "a", Level: "Model" }, { Model: "c" }, { Model: "d" }, { Model: "b", Level: "Model" }],
      [{ Model: "b", Level: "Model" }, { Model: "d" }, { Model: "c" }, { Model: "a", Level: "Model" }],
    ];
    for (const [round, delta] of deltas.entries()) {
      for (const attrs of delta) p.record.Count(round + 1, attrs);
      const [expected, actual] = [await p.reference(), await p.stored()];
      expect(actual, `delta ${round}`).to.equal(expected);
    }
    const lines = (await p.stored(new Set(["Count"]))).split("\n").filter((l) => l.startsWith("Count{"));
    expect(lines).to.include('Count{Model="a",Level="Model",Zone="z",} 2.0');
    expect(lines).to.include('Count{Model="a",Level="Model",} 8.0');
    expect(lines).to.have.length(7);
  });

  it("keeps counting across collections and reuses a family's text until one of its series changes", async () => {
    const p = pipeline();
    p.record.Count(1, { Model: "a", Level: "Model" });
    p.record.Count(1, { Model: "b", Level: "Model" });
    p.record.Depth(5, { Model: "a" });
    const first = await p.stored();
    expect(first).to.include('Count{Model="a",Level="Model",} 1.0\nCount{Model="b",Level="Model",} 1.0\n');
    expect(await p.stored()).to.equal(first);
    p.record.Count(2, { Level: "Model", Model: "b" });
    p.record.Depth(7, { Model: "a" });
    const second = await p.stored();
    expect(second).to.include('Count{Model="a",Level="Model",} 1.0\nCount{Model="b",Level="Model",} 3.0\n');
    expect(second).to.include('Depth{Model="a",} 7.0\n');
    expect(second).to.equal(await p.reference());
  });

  it("holds its limit across collections, adding later series into one overflow series, reported once", async () => {
    const p = pipeline(2);
    p.record.Count(1, { Model: "a", Level: "Model" });
    p.record.Count(1, { Model: "b", Level: "Model" });
    await p.stored();
    // The SDK's own limit counts series per collection interval, so these arrive as new series.
    p.record.Count(5, { Model: "c", Level: "Model" });
    p.record.Count(1, { Model: "a", Level: "Model" });
    await p.stored();
    p.record.Count(2, { Model: "d", Level: "Model" });
    p.record.Count(3, { Model: "c", Level: "Model" });
    const lines = (await p.stored(new Set(["Count"]))).split("\n").filter((l) => l.startsWith("Count{"));
    expect(lines).to.deep.equal([
      'Count{Model="a",Level="Model",} 2.0',
      'Count{Model="b",Level="Model",} 1.0',
      'Count{otel_metric_overflow="true",} 10.0',
    ]);
    expect(p.overflowed).to.deep.equal(["Count"]);
  });

  it("forgets an evicted series: gone from the text, no longer counted against the limit, back from zero", async () => {
    const p = pipeline(2);
    p.record.Count(5, { Model: "a", Level: "Model" });
    p.record.Count(1, { Model: "b", Level: "Model" });
    await p.stored();
    p.store.evict("Count", 'Model="a",Level="Model",');
    expect(p.store.size).to.equal(1);
    p.record.Count(2, { Model: "c", Level: "Model" });
    p.record.Count(3, { Model: "a", Level: "Model" });
    const lines = (await p.stored(new Set(["Count"]))).split("\n").filter((l) => l.startsWith("Count{"));
    // c took the place a left; a came back after c, so the limit sends it into the overflow series.
    expect(lines).to.deep.equal([
      'Count{Model="b",Level="Model",} 1.0',
      'Count{Model="c",Level="Model",} 2.0',
      'Count{otel_metric_overflow="true",} 3.0',
    ]);
    p.store.evict("Count", 'otel_metric_overflow="true",');
    p.store.evict("Count", 'Model="b",Level="Model",');
    p.record.Count(4, { Model: "a", Level: "Model" });
    // A counter that comes back starts over: its earlier 5 are gone with it.
    expect(await p.stored(new Set(["Count"]))).to.include(
      'Count{Model="c",Level="Model",} 2.0\nCount{Model="a",Level="Model",} 4.0\n',
    );
    expect(p.overflowed).to.deep.equal(["Count"]);
  });

  it("reports every point added by family and label text, past the limit as the overflow series", async () => {
    const updates: string[] = [];
    const delta = new PullReader(AggregationTemporality.DELTA);
    const provider = new MeterProvider({ readers: [delta] });
    const count = provider.getMeter("t").createCounter("Count");
    const store = new SeriesStore({
      families: FAMILIES,
      limitOf: () => 1,
      onUpdate: (family, labels) => updates.push(`${family} ${labels}`),
    });
    count.add(1, { Model: "a" });
    store.apply((await delta.collect()).resourceMetrics);
    count.add(1, { Model: "a" });
    count.add(1, { Model: "b" });
    count.add(1, { Model: "c" });
    store.apply((await delta.collect()).resourceMetrics);
    expect(updates).to.deep.equal([
      'Count Model="a",',
      'Count Model="a",',
      'Count otel_metric_overflow="true",',
      'Count otel_metric_overflow="true",',
    ]);
  });

  it("renders in chunks, never one string: a header per family and bounded sample chunks, reused until a change", async () => {
    const p = pipeline();
    const value = "v".repeat(1000);
    // Enough samples for several chunks in one family.
    for (let i = 0; i < 300; i++) p.record.Depth(i, { Model: `${value}${i}` });
    p.record.Count(1, { Model: "a", Level: "Model" });
    p.store.apply(await collectDelta(p));
    const first = p.store.render(FAMILIES);
    const text = chunksToString(first);
    expect(text).to.equal(await p.reference());
    expect(first.length).to.be.greaterThan(FAMILIES.length + 2);
    for (const chunk of first) {
      // Each chunk is whole lines, and no more than one sample past the chunk size.
      expect(chunk.length).to.be.lessThan(CHUNK_CHARS + 1100);
      expect(chunk.toString().endsWith("\n")).to.equal(true);
    }
    const second = p.store.render(FAMILIES);
    expect(second).to.have.length(first.length);
    second.forEach((chunk, i) => expect(chunk).to.equal(first[i])); // the very same Buffers
    p.record.Count(1, { Model: "a", Level: "Model" });
    p.store.apply(await collectDelta(p));
    const third = p.store.render(FAMILIES);
    const depthChunks = (chunks: Buffer[]) => chunks.filter((c) => c.toString().startsWith("Depth{"));
    depthChunks(third).forEach((chunk, i) => expect(chunk).to.equal(depthChunks(first)[i]));
    expect(chunksToString(third)).to.include('Count{Model="a",Level="Model",} 2.0\n');
  });
});

/** The pipeline's next delta collection, for a test that applies it to the store itself. */
async function collectDelta(p: ReturnType<typeof pipeline>) {
  return p.deltaReader.collect().then((r) => r.resourceMetrics);
}

describe("SeriesStore native buckets", () => {
  const LATENCY = FAMILIES.filter((f) => f.name === "Latency");
  const LIMITS = { schema: 3, maxBuckets: 160 };

  /** A classic SDK histogram and its native buckets, as the pipeline builds them. */
  function histograms(limit = Infinity) {
    const classicReader = new PullReader(AggregationTemporality.DELTA);
    const classic = new MeterProvider({ readers: [classicReader] })
      .getMeter("t")
      .createHistogram("Latency", { advice: { explicitBucketBoundaries: [1, 10] } });
    const buckets = new NativeBuckets(160);
    const native = buckets.family("Latency", ["Model", "Level"], limit);
    const store = new SeriesStore({ families: FAMILIES, limitOf: () => limit });
    return {
      store,
      record(value: number, attributes: Attributes, only?: "native") {
        if (only === undefined) classic.record(value, attributes);
        native.record(value, attributes);
      },
      /** Native first, then classic, as the scraper takes them; classic applied first. */
      async scrape(): Promise<DecodedFamily[]> {
        const nativeDelta = buckets.take();
        store.apply((await classicReader.collect()).resourceMetrics);
        store.applyNative(nativeDelta, LIMITS);
        return decodeMetricFamilies(Buffer.concat(store.renderProtobuf(LATENCY)));
      },
    };
  }

  const nativeCount = (families: DecodedFamily[], model: string): number | undefined => {
    const metric = families[0]?.metric.find((m) => m.label.some((l) => l.value === model));
    if (metric?.histogram === undefined) return undefined;
    let total = metric.histogram.zeroCount ?? 0;
    let count = 0;
    for (const delta of metric.histogram.positiveDelta ?? []) total += count += delta;
    return total;
  };

  it("adds them into the histogram series of the same labels, scrape after scrape", async () => {
    const h = histograms();
    h.record(0.5, { Model: "a" });
    h.record(20, { Model: "a" });
    expect(nativeCount(await h.scrape(), "a")).to.equal(2);
    h.record(0, { Model: "a" });
    const families = await h.scrape();
    expect(nativeCount(families, "a")).to.equal(3);
    expect(families[0]?.metric[0]?.histogram?.sampleCount).to.equal(3);
    // The text never shows them.
    expect(chunksToString(h.store.render(LATENCY))).not.to.match(/schema|zero/);
  });

  it("starts no series of its own: a native point without its classic series is dropped", async () => {
    const h = histograms();
    h.record(1, { Model: "a" });
    h.record(2, { Model: "ghost" }, "native");
    const families = await h.scrape();
    expect(families[0]?.metric.map((m) => m.label.map((l) => l.value).join())).to.deep.equal(["a"]);
  });

  it("forgets them with their series: an evicted series starts again from its next observation", async () => {
    const h = histograms();
    h.record(1, { Model: "a" });
    h.record(1, { Model: "a" });
    expect(nativeCount(await h.scrape(), "a")).to.equal(2);
    h.store.evict("Latency", 'Model="a",');
    h.record(3, { Model: "a" });
    const families = await h.scrape();
    expect(nativeCount(families, "a")).to.equal(1);
    expect(families[0]?.metric[0]?.histogram?.sampleCount).to.equal(1);
  });

  it("adds a series past the limit into the overflow series' native buckets", async () => {
    const h = histograms(1);
    h.record(1, { Model: "a" });
    h.record(1, { Model: "b" });
    h.record(1, { Model: "c" });
    const families = await h.scrape();
    expect(nativeCount(families, "a")).to.equal(1);
    expect(nativeCount(families, "true")).to.equal(2);
  });
});
