import { expect } from "chai";
import { bucketIndex, exemplarLabelsFit, MAX_EXEMPLAR_LABEL_CHARS } from "../../src/exposition/exemplars.js";

describe("exemplar helpers", () => {
  it("places a value in the bucket the SDK counts it in (upper bound inclusive)", () => {
    const bounds = [0.1, 1, 10];
    expect([0, 0.1, 0.10001, 1, 5, 10, 11, Infinity].map((v) => bucketIndex(bounds, v))).to.deep.equal([
      0, 0, 1, 1, 2, 2, 3, 3,
    ]);
    expect(bucketIndex([], 5)).to.equal(0);
  });

  it("caps a label set at 128 UTF-8 characters, names and values together", () => {
    const name = "request_id"; // 10 characters
    expect(exemplarLabelsFit({ [name]: "x".repeat(MAX_EXEMPLAR_LABEL_CHARS - 10) })).to.equal(true);
    expect(exemplarLabelsFit({ [name]: "x".repeat(MAX_EXEMPLAR_LABEL_CHARS - 9) })).to.equal(false);
    // Characters, not UTF-16 units nor bytes: 118 emoji are 236 units and 472 bytes.
    expect(exemplarLabelsFit({ [name]: "😀".repeat(118) })).to.equal(true);
    expect(exemplarLabelsFit({ [name]: "😀".repeat(119) })).to.equal(false);
    expect(exemplarLabelsFit({ trace_id: "a".repeat(32), span_id: "b".repeat(16) })).to.equal(true);
  });
});
