import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { lookBack, readTailLines } from "../../src/sources/look-back.js";

describe("readTailLines", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "look-back-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("gives a small file's complete lines, leaving out an unfinished last one", async () => {
    const file = path.join(dir, "f.log");
    await writeFile(file, "a\nb\nunfinished");
    expect(await readTailLines(file, 1024)).to.deep.equal(["a", "b"]);
  });

  it("reads at most maxBytes from the end, leaving out the line the window cuts", async () => {
    const file = path.join(dir, "f.log");
    await writeFile(file, "first line\nsecond\nthird\n");
    // The last 12 bytes are "econd\nthird\n": the cut "second" is left out; 13 hold it whole.
    expect(await readTailLines(file, 12)).to.deep.equal(["third"]);
    expect(await readTailLines(file, 13)).to.deep.equal(["second", "third"]);
    expect(await readTailLines(file, 14)).to.deep.equal(["second", "third"]);
  });

  it("gives nothing for a missing file or a directory", async () => {
    expect(await readTailLines(path.join(dir, "missing.log"))).to.deep.equal([]);
    await mkdir(path.join(dir, "d.log"));
    expect(await readTailLines(path.join(dir, "d.log"))).to.deep.equal([]);
  });

  it("looks back into the two metric files and ts_log.log, not the access log", async () => {
    const paths = {
      ts_metrics: path.join(dir, "ts_metrics.log"),
      model_metrics: path.join(dir, "model_metrics.log"),
      ts_log: path.join(dir, "ts_log.log"),
    };
    await writeFile(paths.ts_metrics, "t\n");
    await writeFile(paths.ts_log, "l\n");
    expect(await lookBack(paths)).to.deep.equal([
      { file: "ts_metrics", lines: ["t"] },
      { file: "model_metrics", lines: [] },
      { file: "ts_log", lines: ["l"] },
    ]);
  });
});
