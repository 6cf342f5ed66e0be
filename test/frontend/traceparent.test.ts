import { expect } from "chai";
import { parseTraceparent } from "../../src/frontend/traceparent.js";

const TRACE = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN = "00f067aa0ba902b7";

describe("parseTraceparent", () => {
  it("reads the trace and parent ids of a version 00 header", () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).to.deep.equal({ traceId: TRACE, spanId: SPAN });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-00`)).to.deep.equal({ traceId: TRACE, spanId: SPAN });
  });

  it("ignores a missing header", () => {
    expect(parseTraceparent(undefined)).to.equal(undefined);
    expect(parseTraceparent("")).to.equal(undefined);
  });

  it("refuses uppercase hex, as the specification does", () => {
    expect(parseTraceparent(`00-${TRACE.toUpperCase()}-${SPAN}-01`)).to.equal(undefined);
    expect(parseTraceparent(`00-${TRACE}-${SPAN.toUpperCase()}-01`)).to.equal(undefined);
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-0A`)).to.equal(undefined);
  });

  it("refuses all-zero ids", () => {
    expect(parseTraceparent(`00-${"0".repeat(32)}-${SPAN}-01`)).to.equal(undefined);
    expect(parseTraceparent(`00-${TRACE}-${"0".repeat(16)}-01`)).to.equal(undefined);
  });

  it("refuses a malformed version 00 header", () => {
    for (const bad of [
      `00-${TRACE}-${SPAN}-01-extra`, // version 00 has exactly four fields
      `00-${TRACE}-${SPAN}-1`,
      `00-${TRACE.slice(1)}-${SPAN}0-01`,
      `00_${TRACE}-${SPAN}-01`,
      `00-${TRACE}_${SPAN}-01`,
      `00-${TRACE}-${SPAN}_01`,
      `00-${TRACE.slice(0, 31)}g-${SPAN}-01`,
      ` 00-${TRACE}-${SPAN}-01`,
      `0-${TRACE}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-01, 00-${TRACE}-${SPAN}-01`, // repeated headers, joined by Node
    ]) {
      expect(parseTraceparent(bad), bad).to.equal(undefined);
    }
  });

  it("reads a later version's first four fields, ignoring what follows a dash", () => {
    expect(parseTraceparent(`cc-${TRACE}-${SPAN}-01`)).to.deep.equal({ traceId: TRACE, spanId: SPAN });
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-09-what-the-future-holds`)).to.deep.equal({
      traceId: TRACE,
      spanId: SPAN,
    });
  });

  it("refuses a later version whose fifth field is not dash-separated, and version ff", () => {
    expect(parseTraceparent(`01-${TRACE}-${SPAN}-01x`)).to.equal(undefined);
    expect(parseTraceparent(`ff-${TRACE}-${SPAN}-01`)).to.equal(undefined);
    expect(parseTraceparent(`0G-${TRACE}-${SPAN}-01`)).to.equal(undefined);
  });

  it("takes no array (only set-cookie is one in Node)", () => {
    expect(parseTraceparent([`00-${TRACE}-${SPAN}-01`])).to.equal(undefined);
  });
});
