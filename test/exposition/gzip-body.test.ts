import { expect } from "chai";
import fc from "fast-check";
import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { GzipBody } from "../../src/exposition/gzip-body.js";
import { countGzipMembers } from "../support/gzip.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

const text = (chunks: readonly Uint8Array[]): string => Buffer.concat(chunks).toString("utf8");
const unzip = (pieces: readonly Buffer[]): string => gunzipSync(Buffer.concat(pieces)).toString("utf8");

/** A chunk of about `kib` KiB of exposition-like text, different for each `seed`. */
function chunk(kib: number, seed: number): Buffer {
  let out = "";
  for (let i = 0; out.length < kib * 1024; i++)
    out += `PredictionTime{ModelName="m${seed}_${i}",} ${i * 0.5}\n`;
  return Buffer.from(out);
}

describe("GzipBody", () => {
  it("is one gzip member that decodes to exactly the chunks' text, for any chunks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(fc.string(), fc.string({ unit: "grapheme", maxLength: 40_000 }))),
        (texts) => {
          const chunks = texts.map((t) => Buffer.from(t));
          const body = Buffer.concat(new GzipBody().compress(chunks));
          expect(countGzipMembers(body)).to.equal(1);
          expect(gunzipSync(body).toString("utf8")).to.equal(text(chunks));
        },
      ),
      { numRuns: 100 },
    );
  });

  it("answers an empty exposition with a valid gzip body of nothing", () => {
    for (const chunks of [[], [Buffer.alloc(0)]]) {
      const body = Buffer.concat(new GzipBody().compress(chunks));
      expect(countGzipMembers(body)).to.equal(1);
      expect(gunzipSync(body).length).to.equal(0);
    }
  });

  it("reuses the segments of unchanged chunks and compresses again only runs with a new chunk", () => {
    const gzip = new GzipBody();
    const chunks = [Buffer.from("# HELP a x\n"), chunk(40, 1), Buffer.from("# HELP b x\n"), chunk(40, 2)];
    // Header, two segments (each run holds 32 KiB at least), last block, trailer.
    const first = gzip.compress(chunks);
    expect(first).to.have.length(5);
    const again = gzip.compress(chunks);
    expect(again[1]).to.equal(first[1]);
    expect(again[2]).to.equal(first[2]);

    // A family's text changes: a new chunk object, even with the same bytes.
    const changed = [chunks[0], chunks[1], chunks[2], Buffer.from(chunk(40, 3))] as Buffer[];
    const after = gzip.compress(changed);
    expect(after[1]).to.equal(first[1]);
    expect(after[2]).not.to.equal(first[2]);
    expect(unzip(after)).to.equal(text(changed));
  });

  it("sends as few bytes as compressing the whole text at once, give or take 10%", () => {
    const chunks = Array.from({ length: 20 }, (_, i) => chunk(i % 2 === 0 ? 1 : 64, i));
    const bytes = Buffer.concat(new GzipBody().compress(chunks)).length;
    const whole = gzipSync(Buffer.concat(chunks), { level: 1 }).length;
    expect(bytes).to.be.below(0.15 * Buffer.concat(chunks).length);
    expect(bytes).to.be.below(1.1 * whole);
  });

  it("is read whole by gzip(1)", function () {
    const gzip = requireTool(this, "gzip");
    const chunks = Array.from({ length: 8 }, (_, i) => chunk(30, i));
    const file = join(tempDir("gzip-body-"), "body.gz");
    writeFileSync(file, Buffer.concat(new GzipBody().compress(chunks)));
    expect(execFileSync(gzip, ["-dc", file], { maxBuffer: 64 << 20 }).toString()).to.equal(text(chunks));
  });
});
