import { expect } from "chai";
import fc from "fast-check";
import {
  AggregationTemporality,
  AggregationType,
  DataPointType,
  MeterProvider,
  type ExponentialHistogram,
} from "@opentelemetry/sdk-metrics";
import {
  addExponential,
  nativeSpans,
  type NativeBuckets,
  type NativeHistogram,
} from "../../src/exposition/native-histogram.js";
import { PullReader } from "../../src/exposition/pull-reader.js";

/** OpenTelemetry's own exponential aggregation: a delta reader of one histogram. */
function otelHistogram(maxSize: number) {
  const reader = new PullReader(AggregationTemporality.DELTA);
  const provider = new MeterProvider({
    readers: [reader],
    views: [
      {
        instrumentName: "h",
        aggregation: {
          type: AggregationType.EXPONENTIAL_HISTOGRAM,
          options: { maxSize, recordMinMax: false },
        },
      },
    ],
  });
  const histogram = provider.getMeter("test").createHistogram("h");
  return {
    record: (value: number) => histogram.record(value),
    /** The delta point since the last call, if anything was recorded. */
    async collect(): Promise<ExponentialHistogram | undefined> {
      const { resourceMetrics } = await reader.collect();
      const metric = resourceMetrics.scopeMetrics[0]?.metrics[0];
      if (metric?.dataPointType !== DataPointType.EXPONENTIAL_HISTOGRAM) return undefined;
      return metric.dataPoints[0]?.value;
    },
  };
}

/** Prometheus bucket index → count, from spans and deltas. */
function expand({ spans, deltas }: ReturnType<typeof nativeSpans>): Map<number, number> {
  const out = new Map<number, number>();
  let index = 0;
  let count = 0;
  let d = 0;
  for (const [i, span] of spans.entries()) {
    index += span.offset;
    if (i === 0) index = span.offset;
    for (let j = 0; j < span.length; j++) {
      count += deltas[d++] ?? NaN;
      if (count !== 0) out.set(index, count);
      index++;
    }
  }
  expect(d).to.equal(deltas.length);
  return out;
}

/** The buckets at `schema` of a state at a finer schema: what Prometheus' index of each would be. */
function atSchema(buckets: NativeBuckets, from: number, to: number): Map<number, number> {
  const out = new Map<number, number>();
  for (const [i, count] of buckets.counts.entries()) {
    if (count === 0) continue;
    const index = Math.floor((buckets.offset + i) / 2 ** (from - to)) + 1;
    out.set(index, (out.get(index) ?? 0) + count);
  }
  return out;
}

describe("native histogram buckets", () => {
  it("puts a value where Prometheus' bucket of it is: (base^(i-1), base^i]", async () => {
    const otel = otelHistogram(160);
    for (const v of [1, 2, 3, 0.75, 1000]) otel.record(v);
    const point = await otel.collect();
    const state = addExponential(undefined, point!, { schema: 0, maxBuckets: 160 });
    expect(state.schema).to.equal(0);
    // At schema 0 bounds are powers of 2: 1 in (0.5, 1] is bucket 0, 2 in (1, 2] bucket 1,
    // 3 in (2, 4] bucket 2, 0.75 bucket 0, 1000 in (512, 1024] bucket 10.
    expect([...expand(nativeSpans(state.positive))]).to.deep.equal([
      [0, 2],
      [1, 1],
      [2, 1],
      [10, 1],
    ]);
  });

  it("adds deltas up to what one aggregation of every value gives, at the coarsest schema seen", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.array(
            fc.oneof(
              fc.constant(0),
              fc.double({ min: 1e-6, max: 1e6, noNaN: true }),
              fc.double({ min: -1e3, max: -1e-3, noNaN: true }),
            ),
            { maxLength: 30 },
          ),
          { minLength: 1, maxLength: 6 },
        ),
        fc.integer({ min: -2, max: 8 }),
        async (deltas, schema) => {
          const otel = otelHistogram(4096);
          const whole = otelHistogram(4096);
          let state: NativeHistogram | undefined;
          for (const values of deltas) {
            for (const v of values) {
              otel.record(v);
              whole.record(v);
            }
            const point = await otel.collect();
            if (point !== undefined) state = addExponential(state, point, { schema, maxBuckets: 4096 });
          }
          const all = await whole.collect();
          if (all === undefined) return;
          expect(state).to.not.equal(undefined);
          const got = state!;
          expect(got.schema).to.be.at.most(schema);
          expect(got.zeroCount).to.equal(all.zeroCount);
          const from = { offset: all.positive.offset, counts: all.positive.bucketCounts };
          const negative = { offset: all.negative.offset, counts: all.negative.bucketCounts };
          // The single aggregation may be finer; brought to our schema it must agree bucket for bucket.
          expect(got.schema).to.be.at.most(all.count === all.zeroCount ? got.schema : all.scale);
          expect(expand(nativeSpans(got.positive))).to.deep.equal(atSchema(from, all.scale, got.schema));
          expect(expand(nativeSpans(got.negative))).to.deep.equal(atSchema(negative, all.scale, got.schema));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("halves the resolution until each sign spans at most maxBuckets, losing no count", async () => {
    const otel = otelHistogram(160);
    // 1 ms to 1000 s at schema 3 would need 160 buckets; 40 allowed.
    for (let v = 0.001; v < 1000; v *= 1.3) otel.record(v);
    const point = await otel.collect();
    const state = addExponential(undefined, point!, { schema: 3, maxBuckets: 40 });
    expect(state.positive.counts.length).to.be.at.most(40);
    expect(state.schema).to.equal(1);
    const total = [...expand(nativeSpans(state.positive)).values()].reduce((a, b) => a + b, 0);
    expect(total).to.equal(point!.count);
  });

  it("never goes finer than the configured schema, nor below -4", async () => {
    const otel = otelHistogram(160);
    otel.record(1.5);
    const fine = addExponential(undefined, (await otel.collect())!, { schema: 8, maxBuckets: 160 });
    expect(fine.schema).to.equal(8);
    otel.record(1e-300);
    otel.record(1e300);
    const coarse = addExponential(undefined, (await otel.collect())!, { schema: 3, maxBuckets: 2 });
    expect(coarse.schema).to.equal(-4);
    expect([...expand(nativeSpans(coarse.positive)).values()].reduce((a, b) => a + b, 0)).to.equal(2);
  });

  it("keeps the schema a point of zeros only leaves unsaid, and counts its zeros", async () => {
    const otel = otelHistogram(160);
    otel.record(0.3);
    let state = addExponential(undefined, (await otel.collect())!, { schema: 3, maxBuckets: 160 });
    otel.record(0);
    otel.record(0);
    state = addExponential(state, (await otel.collect())!, { schema: 3, maxBuckets: 160 });
    expect(state.schema).to.equal(3);
    expect(state.zeroCount).to.equal(2);
  });

  it("writes runs of more than two empty buckets as a new span, shorter ones as zero deltas", () => {
    const { spans, deltas } = nativeSpans({ offset: -3, counts: [0, 2, 0, 0, 5, 0, 0, 0, 1, 0] });
    // OpenTelemetry index -2 is Prometheus index -1.
    expect(spans).to.deep.equal([
      { offset: -1, length: 4 },
      { offset: 3, length: 1 },
    ]);
    expect(deltas).to.deep.equal([2, -2, 0, 5, -4]);
    expect(nativeSpans({ offset: 0, counts: [] })).to.deep.equal({ spans: [], deltas: [] });
  });
});
