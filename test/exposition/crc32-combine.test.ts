import { expect } from "chai";
import fc from "fast-check";
import { crc32 } from "node:zlib";
import { crc32Append, crc32Shift } from "../../src/exposition/crc32-combine.js";

describe("crc32Append", () => {
  it("gives the CRC-32 of the joined text from the pieces' CRCs and lengths", () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 3000 }), { maxLength: 6 }), (pieces) => {
        let crc = 0;
        for (const piece of pieces) crc = crc32Append(crc, crc32Shift(piece.length), crc32(piece));
        expect(crc).to.equal(crc32(Buffer.concat(pieces)));
      }),
      { numRuns: 300 },
    );
  });

  it("holds for pieces past 64 KiB and for empty ones", () => {
    const a = Buffer.alloc(100_000, "a");
    const b = Buffer.alloc(700_000, "b\n");
    expect(crc32Append(crc32(a), crc32Shift(b.length), crc32(b))).to.equal(crc32(Buffer.concat([a, b])));
    expect(crc32Append(crc32(a), crc32Shift(0), 0)).to.equal(crc32(a));
    expect(crc32Append(0, crc32Shift(a.length), crc32(a))).to.equal(crc32(a));
  });
});
