import { expect } from "chai";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { appendFile, mkdir, open, rename, rm, truncate, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { FileFollower, type FileFollowerOptions } from "../../src/sources/file-follower.js";

const POLL_MS = 20;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Resolves once check() holds; fails after the deadline, saying what it waited for. */
async function waitFor(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** Paths the process has open under dir, from /proc (Linux only). */
function openFilesUnder(dir: string): string[] {
  const fds = "/proc/self/fd";
  const found: string[] = [];
  for (const fd of readdirSync(fds)) {
    try {
      const target = readlinkSync(path.join(fds, fd));
      if (target.startsWith(dir)) found.push(target);
    } catch {
      // The fd closed between readdir and readlink (e.g. the readdir's own).
    }
  }
  return found;
}

describe("FileFollower", () => {
  let dir: string;
  let file: string;
  let lines: string[];
  let logger: MemoryLogger;
  let follower: FileFollower | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "file-follower-"));
    file = path.join(dir, "model_metrics.log");
    lines = [];
    logger = createMemoryLogger();
    follower = undefined;
  });
  afterEach(async () => {
    await follower?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  async function follow(overrides: Partial<FileFollowerOptions> = {}): Promise<FileFollower> {
    // A line handed on after a test ends must not land in the next test's array.
    const sink = lines;
    follower = new FileFollower({
      path: file,
      logger,
      pollMs: POLL_MS,
      onLine: (l) => sink.push(l),
      ...overrides,
    });
    await follower.start();
    return follower;
  }

  const logged = (pattern: RegExp): string[] => logger.lines.filter((l) => pattern.test(l));

  it("hands on appended lines in order, skipping what was there before start()", async () => {
    await writeFile(file, "old 1\nold 2\n");
    await follow();
    await appendFile(file, "a\nb\n");
    await appendFile(file, "c\n");
    await waitFor("three lines", () => lines.length >= 3);
    expect(lines).to.deep.equal(["a", "b", "c"]);
  });

  it("reads what the file already holds with fromStart", async () => {
    await writeFile(file, "old 1\nold 2\n");
    await follow({ fromStart: true });
    await appendFile(file, "new\n");
    await waitFor("three lines", () => lines.length >= 3);
    expect(lines).to.deep.equal(["old 1", "old 2", "new"]);
  });

  it("holds a partial line until its newline arrives", async () => {
    await writeFile(file, "");
    await follow();
    // One write: once "first" has arrived, "par" has been read too.
    await appendFile(file, "first\npar");
    await waitFor("the first line", () => lines.length >= 1);
    expect(lines).to.deep.equal(["first"]);
    await appendFile(file, "tial\nnext\n");
    await waitFor("three lines", () => lines.length >= 3);
    expect(lines).to.deep.equal(["first", "partial", "next"]);
  });

  it("keeps a character whose UTF-8 bytes arrive in two writes", async () => {
    await writeFile(file, "");
    await follow();
    const cafe = Buffer.from("café\n", "utf8");
    const split = cafe.length - 2; // between the two bytes of "é"
    await appendFile(file, Buffer.concat([Buffer.from("x\n"), cafe.subarray(0, split)]));
    await waitFor("the first line", () => lines.length >= 1);
    await appendFile(file, cafe.subarray(split));
    await waitFor("two lines", () => lines.length >= 2);
    expect(lines).to.deep.equal(["x", "café"]);
  });

  it("follows logrotate's rename-and-create without losing a line", async () => {
    await writeFile(file, "");
    await follow();
    const writer = await open(file, "a");
    try {
      await writer.write("1\n2\n");
      await waitFor("lines 1 and 2", () => lines.length >= 2);
      await writer.write("3\n");
      await rename(file, `${file}.1`);
      // The writer goes on writing to the renamed file until it reopens the path.
      await writer.write("4\nunfinished");
      // The new file is longer than what was read of the old one: size alone cannot tell.
      await writeFile(file, "5 is a longer line than any before\n6\n");
      await waitFor("seven lines", () => lines.length >= 7);
    } finally {
      await writer.close();
    }
    expect(lines).to.deep.equal([
      "1",
      "2",
      "3",
      "4",
      "unfinished",
      "5 is a longer line than any before",
      "6",
    ]);
    expect(logged(/was rotated/)).to.have.length(1);
  });

  it("keeps reading the old file while the path is missing after a rename", async () => {
    await writeFile(file, "");
    await follow();
    const writer = await open(file, "a");
    try {
      await rename(file, `${file}.1`);
      await waitFor("the disappearance to be logged", () => logged(/disappeared/).length > 0);
      await writer.write("late\n");
      await waitFor("the line written to the renamed file", () => lines.length >= 1);
    } finally {
      await writer.close();
    }
    await writeFile(file, "new\n");
    await waitFor("the new file's line", () => lines.length >= 2);
    expect(lines).to.deep.equal(["late", "new"]);
  });

  it("reads again from the start after copytruncate", async () => {
    await writeFile(file, "");
    await follow();
    await appendFile(file, "a fairly long line before the truncation\n");
    await waitFor("the first line", () => lines.length >= 1);
    await truncate(file, 0);
    await appendFile(file, "after\n");
    await waitFor("the line after truncation", () => lines.length >= 2);
    await appendFile(file, "more\n");
    await waitFor("three lines", () => lines.length >= 3);
    expect(lines).to.deep.equal(["a fairly long line before the truncation", "after", "more"]);
    expect(logged(/was truncated/)).to.have.length(1);
  });

  it("waits for a file created after start(), logging that once, and reads it from its start", async () => {
    await follow();
    // Several polls find nothing; the wait is logged once, not every poll.
    await sleep(POLL_MS * 6);
    await writeFile(file, "first\nsecond\n");
    await waitFor("two lines", () => lines.length >= 2);
    expect(lines).to.deep.equal(["first", "second"]);
    expect(logged(/waiting for/)).to.deep.equal([`INFO waiting for ${file} to appear`]);
    expect(logged(/following/)).to.deep.equal([`INFO following ${file}`]);
  });

  it("waits for a deleted file to come back, logging once", async () => {
    await writeFile(file, "");
    await follow();
    await rm(file);
    await waitFor("the disappearance to be logged", () => logged(/disappeared/).length > 0);
    await sleep(POLL_MS * 6);
    await writeFile(file, "back\n");
    await waitFor("the line of the new file", () => lines.length >= 1);
    expect(lines).to.deep.equal(["back"]);
    expect(logged(/disappeared/)).to.have.length(1);
  });

  it("logs a read error once, keeps polling, and recovers", async () => {
    // A directory where the file should be: stat works, reading fails with EISDIR.
    await writeFile(file, "");
    await follow();
    await rm(file);
    await mkdir(file);
    await waitFor("the error to be logged", () => logged(/cannot read/).length > 0);
    await sleep(POLL_MS * 6);
    expect(logged(/cannot read/)).to.have.length(1);
    await rm(file, { recursive: true });
    await writeFile(file, "ok\n");
    await waitFor("the line of the new file", () => lines.length >= 1);
    expect(lines).to.deep.equal(["ok"]);
  });

  it("goes on after onLine throws", async () => {
    await writeFile(file, "");
    const seen: string[] = [];
    await follow({
      onLine: (line) => {
        seen.push(line);
        if (line === "bad") throw new Error("consumer failed");
      },
    });
    await appendFile(file, "bad\ngood\n");
    await waitFor("two lines", () => seen.length >= 2);
    expect(seen).to.deep.equal(["bad", "good"]);
    expect(logged(/consumer failed/)).to.have.length(1);
  });

  it("refuses a pollMs that is not a positive number", () => {
    const options = { path: file, logger, onLine: (): void => undefined };
    expect(() => new FileFollower({ ...options, pollMs: 0 })).to.throw(RangeError, /pollMs/);
    expect(() => new FileFollower({ ...options, pollMs: Number.NaN })).to.throw(RangeError, /pollMs/);
  });

  it("after stop(), reads nothing more and has the file closed", async function () {
    if (!existsSync("/proc/self/fd")) this.skip();
    await writeFile(file, "");
    const f = await follow();
    await appendFile(file, "before\n");
    await waitFor("the line", () => lines.length >= 1);
    expect(openFilesUnder(dir)).to.deep.equal([file]);
    await f.stop();
    expect(openFilesUnder(dir)).to.deep.equal([]);
    await appendFile(file, "after\n");
    // Absence can only be shown by waiting: several poll intervals.
    await sleep(POLL_MS * 6);
    expect(lines).to.deep.equal(["before"]);
    // A stopped follower stays stopped.
    await f.start();
    await appendFile(file, "again\n");
    await sleep(POLL_MS * 3);
    expect(lines).to.deep.equal(["before"]);
    expect(openFilesUnder(dir)).to.deep.equal([]);
  });

  it("lets the process exit once stopped", async () => {
    const module = fileURLToPath(new URL("../../src/sources/file-follower.ts", import.meta.url));
    const logModule = fileURLToPath(new URL("../../src/log.ts", import.meta.url));
    // The child follows a file, sees a line, stops, and must then exit on its own.
    const script = `
      import { appendFile, writeFile } from "node:fs/promises";
      const { FileFollower } = await import(${JSON.stringify(module)});
      const { createMemoryLogger } = await import(${JSON.stringify(logModule)});
      const file = ${JSON.stringify(file)};
      await writeFile(file, "");
      let seen = "";
      const follower = new FileFollower({ path: file, pollMs: 10, logger: createMemoryLogger(), onLine: (l) => (seen = l) });
      await follower.start();
      await appendFile(file, "hello\\n");
      while (seen === "") await new Promise((r) => setTimeout(r, 5));
      await follower.stop();
      console.log("stopped after " + seen);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => {
      const killer = setTimeout(() => child.kill("SIGKILL"), 15_000);
      child.on("exit", (c) => {
        clearTimeout(killer);
        resolve(c);
      });
    });
    expect({ code, out: out.trim() }).to.deep.equal({ code: 0, out: "stopped after hello" });
  });
});
