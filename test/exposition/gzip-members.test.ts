import { expect } from "chai";
import fc from "fast-check";
import { gunzipSync } from "node:zlib";
import { GzipMembers } from "../../src/exposition/gzip-members.js";
import { countGzipMembers } from "../support/gzip.js";

const text = (chunks: readonly Uint8Array[]): string => Buffer.concat(chunks).toString("utf8");
const unzip = (members: readonly Buffer[]): string => gunzipSync(Buffer.concat(members)).toString("utf8");

/** A chunk of about `kib` KiB of exposition-like text, different for each `seed`. */
function chunk(kib: number, seed: number): Buffer {
  let out = "";
  for (let i = 0; out.length < kib * 1024; i++)
    out += `PredictionTime{ModelName="m${seed}_${i}",} ${i * 0.5}\n`;
  return Buffer.from(out);
}

describe("GzipMembers", () => {
  it("decodes to exactly the chunks' text, for any chunks, in members back to back", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.string({ unit: "grapheme", maxLength: 5000 }))),
        (texts) => {
          const chunks = texts.map((t) => Buffer.from(t));
          const body = Buffer.concat(new GzipMembers().compress(chunks));
          expect(gunzipSync(body).toString("utf8")).to.equal(text(chunks));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("answers an empty exposition with one member of nothing: a valid gzip body", () => {
    const members = new GzipMembers().compress([Buffer.alloc(0)]);
    expect(countGzipMembers(Buffer.concat(members))).to.equal(1);
    expect(unzip(members)).to.equal("");
  });

  it("puts small chunks together in one member and large ones in members of their own", () => {
    const small = Array.from({ length: 30 }, (_, i) => Buffer.from(`# HELP f${i} x\n# TYPE f${i} gauge\n`));
    expect(new GzipMembers().compress(small)).to.have.length(1);
    const large = [chunk(64, 1), chunk(64, 2), chunk(64, 3)];
    expect(new GzipMembers().compress(large)).to.have.length(3);
  });

  it("reuses the members of unchanged chunks and compresses again only runs with a new chunk", () => {
    const gzip = new GzipMembers();
    const chunks = [Buffer.from("# HELP a x\n"), chunk(40, 1), Buffer.from("# HELP b x\n"), chunk(40, 2)];
    const first = gzip.compress(chunks);
    expect(first).to.have.length(2);
    const again = gzip.compress(chunks);
    expect(again[0]).to.equal(first[0]);
    expect(again[1]).to.equal(first[1]);

    // A family's text changes: a new chunk object, even with the same bytes.
    const changed = [chunks[0], chunks[1], chunks[2], Buffer.from(chunk(40, 2))] as Buffer[];
    const after = gzip.compress(changed);
    expect(after[0]).to.equal(first[0]);
    expect(after[1]).not.to.equal(first[1]);
    expect(unzip(after)).to.equal(text(changed));
  });

  it("sends about as few bytes as compressing the whole text at once", () => {
    const chunks = Array.from({ length: 20 }, (_, i) => chunk(i % 2 === 0 ? 1 : 64, i));
    const bytes = Buffer.concat(new GzipMembers().compress(chunks)).length;
    expect(bytes).to.be.below(0.15 * Buffer.concat(chunks).length);
  });
});
