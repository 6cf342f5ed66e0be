import { expect } from "chai";
import { PendingExemplars, type ExemplarTarget } from "../../src/telemetry/pending-exemplars.js";

function target(boundaries: readonly number[], model = "m"): ExemplarTarget {
  return { family: "F", attributes: { model_name: model }, boundaries, slots: undefined };
}

describe("PendingExemplars", () => {
  it("keeps the last exemplar per bucket of a series, and queues the series once", () => {
    const pending = new PendingExemplars();
    const t = target([1, 10]);
    pending.offer(t, { trace_id: "a" }, 0.5);
    pending.offer(t, { trace_id: "b" }, 0.7);
    pending.offer(t, { trace_id: "c" }, 50);
    expect(pending.size).to.equal(1);
    const [update, ...rest] = pending.take();
    expect(rest).to.deep.equal([]);
    expect(update?.exemplars.map((e) => e?.labels.trace_id)).to.deep.equal(["b", undefined, "c"]);
    expect(update?.exemplars[0]?.value).to.equal(0.7);
    expect(pending.take()).to.deep.equal([]);
  });

  it("keeps one exemplar for a counter", () => {
    const pending = new PendingExemplars();
    const t = target([]);
    pending.offer(t, { trace_id: "a" }, 1);
    pending.offer(t, { trace_id: "b" }, 1);
    expect(pending.take()[0]?.exemplars.map((e) => e?.labels.trace_id)).to.deep.equal(["b"]);
  });

  it("drops a label set longer than 128 characters", () => {
    const pending = new PendingExemplars();
    pending.offer(target([]), { request_id: "x".repeat(200) }, 1);
    expect([pending.size, pending.dropped]).to.deep.equal([0, 1]);
  });

  it("stays bounded when nobody takes: 10,000 series wait at most", () => {
    const pending = new PendingExemplars();
    for (let i = 0; i < 12_000; i++) pending.offer(target([1], String(i)), { trace_id: "a" }, 1);
    expect(pending.size).to.equal(10_000);
    expect(pending.dropped).to.equal(2_000);
    expect(pending.take()).to.have.length(10_000);
    expect(pending.size).to.equal(0);
  });
});
