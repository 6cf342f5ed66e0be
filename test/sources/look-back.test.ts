import { expect } from "chai";
import { mkdtempSync, rmSync } from "node:fs";
import { chmod, mkdir, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";

import {
  lookBack,
  newestRotatedFile,
  readLookBackLines,
  readTailLines,
} from "../../src/sources/look-back.js";

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

describe("readLookBackLines: a live file and, when it is short, its newest rotated copy", () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), "look-back-rotated-"))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** Writes a file whose modification time is `minutesAgo` in the past. */
  async function put(name: string, content: string | Buffer, minutesAgo: number): Promise<string> {
    const file = path.join(dir, name);
    await writeFile(file, content);
    const t = new Date(Date.now() - minutesAgo * 60_000);
    await utimes(file, t, t);
    return file;
  }

  it("finds the newest rotated copy by time, in log4j2's gzip form, uncompressed or log4j 1's, and nothing else", async () => {
    const live = await put("ts_metrics.log", "", 0);
    await put("ts_metrics.05-Dec.log.gz", gzipSync("old\n"), 3000);
    // 06-Dec sorts before 30-Nov by name, not by time: time decides.
    await put("ts_metrics.30-Nov.log.gz", gzipSync("older\n"), 9000);
    await put("ts_metrics.06-Dec.log.gz", gzipSync("newer\n"), 60);
    expect(await newestRotatedFile(live)).to.equal(path.join(dir, "ts_metrics.06-Dec.log.gz"));
    await put("ts_metrics.2026-12-07-15.log", "newest\n", 1);
    expect(await newestRotatedFile(live)).to.equal(path.join(dir, "ts_metrics.2026-12-07-15.log"));
    // Not a copy of ts_metrics.log: other files' archives, other names, a directory.
    await put("model_metrics.07-Dec.log.gz", gzipSync("m\n"), 0);
    await put("ts_metrics_extra.log", "x\n", 0);
    await put("ts_metrics.07-Dec.txt", "x\n", 0);
    await mkdir(path.join(dir, "ts_metrics.08-Dec.log"));
    expect(await newestRotatedFile(live)).to.equal(path.join(dir, "ts_metrics.2026-12-07-15.log"));
    await put("ts_metrics.log.2026-12-07", "log4j1\n", 0);
    expect(await newestRotatedFile(live)).to.equal(path.join(dir, "ts_metrics.log.2026-12-07"));
    expect(await newestRotatedFile(path.join(dir, "model_log.log"))).to.equal(undefined);
  });

  it("puts the gzip copy's last lines before the live file's, within one bound for both", async () => {
    const live = await put("ts_metrics.log", "live-1\nlive-2\n", 0);
    await put("ts_metrics.07-Dec.log.gz", gzipSync("first line\nsecond\nthird\n"), 1);
    // The live file holds 14 bytes; a bound of 26 leaves 12 for the copy: "econd\nthird\n",
    // whose cut first line is left out; 13 hold "second" whole.
    expect(await readLookBackLines(live, 26)).to.deep.equal(["third", "live-1", "live-2"]);
    expect(await readLookBackLines(live, 27)).to.deep.equal(["second", "third", "live-1", "live-2"]);
    expect(await readLookBackLines(live, 1024)).to.deep.equal([
      "first line",
      "second",
      "third",
      "live-1",
      "live-2",
    ]);
    // A live file as long as the bound: no copy is read.
    expect(await readLookBackLines(live, 14)).to.deep.equal(["live-1", "live-2"]);
  });

  it("keeps only the window of a large gzip copy, its last lines whole", async () => {
    const live = await put("model_metrics.log", "", 0);
    const lines = Array.from({ length: 200_000 }, (_, i) => `line ${i}`);
    await put("model_metrics.07-Dec.log.gz", gzipSync(`${lines.join("\n")}\n`), 1);
    const back = await readLookBackLines(live, 4096);
    expect(back.at(-1)).to.equal("line 199999");
    expect(back.length).to.be.within(300, 500);
    expect(back).to.deep.equal(lines.slice(-back.length));
    expect(back.join("\n").length).to.be.at.most(4096);
  });

  it("reads an uncompressed copy the same way", async () => {
    const live = await put("ts_log.log", "now\n", 0);
    await put("ts_log.2026-12-07-15.log", "a\nb\nunfinished", 1);
    expect(await readLookBackLines(live, 1024)).to.deep.equal(["a", "b", "now"]);
  });

  it("passes over a gzip copy that does not read whole (log4j2 still compressing it) to its uncompressed original", async () => {
    const live = await put("ts_metrics.log", "now\n", 0);
    const whole = gzipSync("a\nb\n");
    await put("ts_metrics.07-Dec.log", "a\nb\n", 1);
    await put("ts_metrics.07-Dec.log.gz", whole.subarray(0, whole.length - 6), 0);
    expect(await readLookBackLines(live, 1024)).to.deep.equal(["a", "b", "now"]);
    // Without another copy: the live lines alone, for a truncated, a non-gzip or an unreadable copy.
    rmSync(path.join(dir, "ts_metrics.07-Dec.log"));
    expect(await readLookBackLines(live, 1024)).to.deep.equal(["now"]);
    await put("ts_metrics.07-Dec.log.gz", Buffer.from("not gzip at all\n"), 0);
    expect(await readLookBackLines(live, 1024)).to.deep.equal(["now"]);
    if (process.getuid?.() !== 0) {
      const locked = await put("ts_metrics.07-Dec.log.gz", gzipSync("a\n"), 0);
      await chmod(locked, 0o000);
      expect(await readLookBackLines(live, 1024)).to.deep.equal(["now"]);
    }
  });

  it("reads the copies through lookBack, for the metric files and ts_log.log", async () => {
    const paths = {
      ts_metrics: path.join(dir, "ts_metrics.log"),
      model_metrics: path.join(dir, "model_metrics.log"),
      ts_log: path.join(dir, "ts_log.log"),
    };
    await put("ts_metrics.log", "t\n", 0);
    await put("ts_metrics.07-Dec.log.gz", gzipSync("rotated t\n"), 1);
    await put("model_metrics.07-Dec.log.gz", gzipSync("rotated m\n"), 1);
    expect(await lookBack(paths)).to.deep.equal([
      { file: "ts_metrics", lines: ["rotated t", "t"] },
      { file: "model_metrics", lines: ["rotated m"] },
      { file: "ts_log", lines: [] },
    ]);
  });
});
