import { expect } from "chai";
import { addExponential } from "../../src/exposition/native-histogram.js";
import { NativeBuckets } from "../../src/telemetry/native-buckets.js";

describe("NativeBuckets", () => {
  const DIMS = ["model_name", "hostname"];

  /** Points of one take as `labels → count`. */
  function counts(buckets: NativeBuckets, family = "h"): Record<string, number> {
    const out: Record<string, number> = {};
    for (const { attributes, point } of buckets.take().get(family) ?? []) {
      const total =
        point.zeroCount +
        point.positive.bucketCounts.reduce((a, b) => a + b, 0) +
        point.negative.bucketCounts.reduce((a, b) => a + b, 0);
      out[JSON.stringify(attributes)] = total;
    }
    return out;
  }

  it("keeps one series per label values, whether the attributes come frozen and kept or fresh each time", () => {
    const buckets = new NativeBuckets(160);
    const family = buckets.family("h", DIMS, 100);
    const bound = Object.freeze({ model_name: "a", hostname: "x" });
    family.record(0.1, bound);
    family.record(0.2, bound);
    family.record(0.3, { model_name: "a", hostname: "x" });
    family.record(0.3, { hostname: "x", model_name: "b" });
    expect(counts(buckets)).to.deep.equal({
      '{"model_name":"a","hostname":"x"}': 3,
      '{"hostname":"x","model_name":"b"}': 1,
    });
  });

  it("started at the schema, gives the store the buckets it gets from OpenTelemetry's finest scale", () => {
    const limits = { schema: 3, maxBuckets: 160 };
    const values = [0, 0.004, 0.0041, 0.017, 0.25, 0.25, 1, 2];
    const stored = (buckets: NativeBuckets) => {
      const family = buckets.family("h", DIMS, 100);
      for (const v of values) family.record(v, { model_name: "a", hostname: "x" });
      const [native] = buckets.take().get("h") ?? [];
      if (native === undefined) throw new Error("no point");
      return { scale: native.point.scale, stored: addExponential(undefined, native.point, limits) };
    };
    const atSchema = stored(new NativeBuckets(160, 3));
    const finest = stored(new NativeBuckets(160));
    expect(atSchema.scale).to.be.at.most(3);
    expect(finest.scale).to.be.above(3);
    expect(atSchema.stored).to.deep.equal(finest.stored);
  });

  it("hands over each observation once: a take starts every series over", () => {
    const buckets = new NativeBuckets(160);
    const family = buckets.family("h", DIMS, 100);
    const bound = Object.freeze({ model_name: "a", hostname: "x" });
    family.record(1, bound);
    expect(Object.values(counts(buckets))).to.deep.equal([1]);
    expect(buckets.take().size).to.equal(0);
    family.record(2, bound);
    expect(Object.values(counts(buckets))).to.deep.equal([1]);
  });

  it("drops negative values as the SDK's histogram does; NaN only starts the series (a zero series)", () => {
    const buckets = new NativeBuckets(160);
    const family = buckets.family("h", DIMS, 100);
    family.record(-1, { model_name: "a", hostname: "x" });
    family.record(Number.NaN, { model_name: "b", hostname: "x" });
    expect(counts(buckets)).to.deep.equal({ '{"model_name":"b","hostname":"x"}': 0 });
  });

  it("adds series past the limit into one overflow series, as the SDK does for the classic stream", () => {
    const buckets = new NativeBuckets(160);
    const family = buckets.family("h", DIMS, 2);
    for (const model of ["a", "b", "c", "d"])
      family.record(1, Object.freeze({ model_name: model, hostname: "x" }));
    family.record(1, Object.freeze({ model_name: "d", hostname: "x" }));
    expect(counts(buckets)).to.deep.equal({
      '{"model_name":"a","hostname":"x"}': 1,
      '{"model_name":"b","hostname":"x"}': 1,
      '{"otel.metric.overflow":true}': 3,
    });
  });

  it("holds no more series than the limit, however many label values come between two takes", () => {
    const buckets = new NativeBuckets(160);
    const family = buckets.family("h", DIMS, 10);
    for (let i = 0; i < 10_000; i++) family.record(1, { model_name: `m${i}`, hostname: "x" });
    expect(Object.keys(counts(buckets))).to.have.length(11);
  });
});
