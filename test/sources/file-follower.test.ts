import { expect } from "chai";
import { execFileSync, spawn } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readlinkSync,
  rmSync,
  truncateSync,
} from "node:fs";
import { appendFile, chmod, mkdir, open, rename, rm, symlink, truncate, writeFile } from "node:fs/promises";
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

const FOLLOWER_MODULE = fileURLToPath(new URL("../../src/sources/file-follower.ts", import.meta.url));
const LOG_MODULE = fileURLToPath(new URL("../../src/log.ts", import.meta.url));

/**
 * Runs an ES module script in a child Node (with tsx), so that a follower blocking a thread or
 * spinning cannot take the test run down with it; the child is killed after `killAfterMs`.
 * The script finds `FileFollower` and `createMemoryLogger` in scope.
 */
async function runChild(body: string, killAfterMs = 15_000): Promise<{ code: number | null; out: string }> {
  const script = `
    const { FileFollower } = await import(${JSON.stringify(FOLLOWER_MODULE)});
    const { createMemoryLogger } = await import(${JSON.stringify(LOG_MODULE)});
    ${body}
  `;
  const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => {
    const killer = setTimeout(() => child.kill("SIGKILL"), killAfterMs);
    child.on("exit", (c) => {
      clearTimeout(killer);
      resolve(c);
    });
  });
  return { code, out: out.trim() };
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
    // A symbolic link to itself: stat fails with ELOOP, every poll.
    await writeFile(file, "");
    await follow();
    await rm(file);
    await symlink(file, file);
    await waitFor("the error to be logged", () => logged(/cannot read/).length > 0);
    await sleep(POLL_MS * 6);
    expect(logged(/cannot read/)).to.have.length(1);
    await rm(file);
    await writeFile(file, "ok\n");
    await waitFor("the line of the new file", () => lines.length >= 1);
    expect(lines).to.deep.equal(["ok"]);
    // Said when the poll that read the line ends, which may come a moment after the line.
    await waitFor("the recovery to be logged", () => logged(/reading .* again/).length > 0);
    await sleep(POLL_MS * 2);
    expect(logged(/reading .* again/)).to.have.length(1);
  });

  it("reads a file unreadable at start, once readable, from where it ended at start: no line written between is lost", async function () {
    this.timeout(30_000);
    await writeFile(file, "before start\n", { mode: 0o600 });
    chmodSync(dir, 0o777);
    // Root reads any file: the follower then runs in a child as nobody, for whom mode 000 is real.
    const asNobody = process.getuid?.() === 0;
    const script = `
      const { FileFollower } = await import(${JSON.stringify(FOLLOWER_MODULE)});
      const follower = new FileFollower({
        path: ${JSON.stringify(file)},
        pollMs: ${POLL_MS},
        logger: { info: (m) => console.log("INFO " + m), warn: (m) => console.log("WARN " + m), error: (m) => console.log("ERROR " + m) },
        onLine: (line) => console.log("LINE " + line),
      });
      await follower.start();
      console.log("STARTED");
      // The follower's timer never keeps a process alive; this one must live until told to stop.
      const alive = setInterval(() => undefined, 1000);
      process.on("SIGTERM", () => clearInterval(alive));
      process.on("SIGTERM", () => follower.stop().then(() => process.exit(0)));
    `;
    await chmod(file, 0o000);
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      stdio: ["ignore", "pipe", "pipe"],
      ...(asNobody && { uid: 65534, gid: 65534 }),
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    try {
      await waitFor(
        "the child to start and fail to read",
        () => /STARTED/.test(out) && /cannot read/.test(out),
        20_000,
      );
      await appendFile(file, "while unreadable\n");
      await chmod(file, 0o644);
      await waitFor("the line written while unreadable", () => /LINE while unreadable/.test(out), 10_000);
      await appendFile(file, "after\n");
      await waitFor("the line written after", () => /LINE after/.test(out), 10_000);
      expect(out.split("\n").filter((l) => l.startsWith("LINE "))).to.deep.equal([
        "LINE while unreadable",
        "LINE after",
      ]);
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("skips a directory that takes the file's place, warning once, and follows the file that comes back", async () => {
    await writeFile(file, "");
    await follow();
    await rm(file);
    await mkdir(file);
    await waitFor("the warning", () => logged(/not a regular file/).length > 0);
    await sleep(POLL_MS * 6);
    expect(logged(/not a regular file/)).to.deep.equal([
      `WARN ${file} is a directory, not a regular file; not reading it (checking again every poll)`,
    ]);
    expect(logged(/cannot read/)).to.deep.equal([]);
    await rm(file, { recursive: true });
    await writeFile(file, "ok\n");
    await waitFor("the line of the new file", () => lines.length >= 1);
    expect(lines).to.deep.equal(["ok"]);
  });

  it("skips FIFOs and devices, at start and when they appear later, never blocking start() or reading them", async () => {
    const fifo = path.join(dir, "at-start.fifo");
    const later = path.join(dir, "later.fifo");
    execFileSync("mkfifo", [fifo]);
    // In the child: a FIFO and /dev/zero at start (read from their start), a FIFO appearing later.
    const { code, out } = await runChild(`
      const logger = createMemoryLogger();
      let lines = 0;
      const make = (p) => new FileFollower({ path: p, pollMs: 5, fromStart: true, logger, onLine: () => lines++ });
      const followers = [${JSON.stringify(fifo)}, "/dev/zero", ${JSON.stringify(later)}].map(make);
      for (const f of followers) await f.start();
      (await import("node:child_process")).execFileSync("mkfifo", [${JSON.stringify(later)}]);
      const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
      while (!logger.lines.some((l) => l.includes("later.fifo is a FIFO"))) await sleep(5);
      await sleep(100); // many more polls: the warnings must not repeat
      for (const f of followers) await f.stop();
      console.log(JSON.stringify({ lines, warnings: logger.lines.filter((l) => l.startsWith("WARN")) }));
    `);
    expect(code, out).to.equal(0);
    const report = JSON.parse(out) as { lines: number; warnings: string[] };
    const suffix = "not a regular file; not reading it (checking again every poll)";
    expect(report.lines).to.equal(0);
    expect(report.warnings).to.have.members([
      `WARN ${fifo} is a FIFO, ${suffix}`,
      `WARN /dev/zero is a character device, ${suffix}`,
      `WARN ${later} is a FIFO, ${suffix}`,
    ]);
    expect(report.warnings).to.have.length(3);
  });

  it("keeps the event loop and the thread pool free while FIFOs and files keep swapping places", async () => {
    // More followers than libuv has threads (4): one open blocked on a FIFO per follower would
    // starve every other file system call of the process, and stop() would never return.
    const { code, out } = await runChild(`
      const { linkSync, renameSync, writeFileSync } = await import("node:fs");
      const { stat } = await import("node:fs/promises");
      const { execFileSync } = await import("node:child_process");
      const dir = ${JSON.stringify(dir)};
      const count = 6;
      const paths = Array.from({ length: count }, (_, i) => dir + "/f" + i + ".log");
      const fifos = paths.map((p) => p + ".fifo");
      const files = paths.map((p) => p + ".file");
      execFileSync("mkfifo", fifos);
      for (const f of files) writeFileSync(f, "a line\\n");
      const logger = createMemoryLogger();
      const followers = paths.map((p) => new FileFollower({ path: p, pollMs: 1, logger, onLine: () => {} }));
      for (const f of followers) await f.start();
      let statsDone = 0;
      let timersDone = 0;
      for (let round = 0; round < 400; round++) {
        for (let i = 0; i < count; i++) {
          // Atomic replacement: a poll sees either the FIFO or the file, and may stat one and open the other.
          linkSync(round % 2 === 0 ? fifos[i] : files[i], paths[i] + ".tmp");
          renameSync(paths[i] + ".tmp", paths[i]);
        }
        if (round % 20 === 0) {
          await stat(dir);
          statsDone++;
        }
        await new Promise((r) => setTimeout(r, round % 3));
        timersDone++;
      }
      for (const f of followers) await f.stop();
      console.log(JSON.stringify({ statsDone, timersDone }));
    `);
    expect({ code, out }).to.deep.equal({ code: 0, out: JSON.stringify({ statsDone: 20, timersDone: 400 }) });
  });

  it("reads again from the start after copytruncate when the file regrew past the offset between two polls", async () => {
    await writeFile(file, "");
    await follow({ pollMs: 500 });
    const numbered = (prefix: string, count: number): string[] =>
      Array.from({ length: count }, (_, i) => `${prefix} line ${String(i + 1).padStart(2, "0")}`);
    const before = numbered("old", 10);
    const after = numbered("new", 20);
    await appendFile(file, before.map((l) => `${l}\n`).join(""));
    await waitFor("the lines before", () => lines.length >= before.length);
    // Let the poll that read them finish; the next one is far off.
    await sleep(50);
    // Synchronously, so that no poll runs in between: the file is twice as long as before.
    truncateSync(file, 0);
    appendFileSync(file, after.map((l) => `${l}\n`).join(""));
    await waitFor("the lines after", () => lines.length >= before.length + after.length);
    await appendFile(file, "last\n");
    await waitFor("the last line", () => lines.includes("last"));
    expect(lines).to.deep.equal([...before, ...after, "last"]);
    expect(logged(/was truncated/)).to.have.length(1);
  });

  it("reads again from the start after copytruncate when the file regrew to exactly its old size", async () => {
    await writeFile(file, "");
    await follow();
    await appendFile(file, "first A\nfirst B\n");
    await waitFor("the first lines", () => lines.length >= 2);
    await sleep(POLL_MS * 3);
    truncateSync(file, 0);
    appendFileSync(file, "again A\nagain B\n");
    await waitFor("the lines after", () => lines.length >= 4);
    await sleep(POLL_MS * 6);
    expect(lines).to.deep.equal(["first A", "first B", "again A", "again B"]);
    expect(logged(/was truncated/)).to.have.length(1);
  });

  it("does not mistake appends for truncations", async () => {
    await writeFile(file, "x\n".repeat(200));
    await follow();
    for (let i = 0; i < 20; i++) {
      await appendFile(file, "x\n".repeat(i + 1));
      await sleep(POLL_MS / 2);
    }
    await waitFor("every appended line", () => lines.length >= 210);
    await sleep(POLL_MS * 3);
    expect(lines).to.have.length(210);
    expect(logged(/was truncated/)).to.deep.equal([]);
  });

  it("cuts a line of many MiB at the cap, drops the rest of it unbuffered, and goes on with the next line", async () => {
    await writeFile(file, "");
    await follow();
    // A marker just past the old 1 MiB cut must not start a line of its own.
    const huge = `[METRICS]${"x".repeat(1024 * 1024 - 9)}[METRICS]Forged.Count:1|#|#hostname:h,1${"y".repeat(5 * 1024 * 1024)}`;
    await appendFile(file, `${huge}\nnext\n`);
    await waitFor("the line after the huge one", () => lines.includes("next"));
    expect(lines.map((l) => l.length)).to.deep.equal([64 * 1024 + 1, 4]);
    expect(lines[0]).to.equal(huge.slice(0, 64 * 1024 + 1));
  });

  it("hands on a line exactly at the cap whole, and refuses a cap that is not a positive whole number", async () => {
    await writeFile(file, "");
    await follow({ maxLineChars: 10 });
    await appendFile(file, "0123456789\n01234567890123\nok\n");
    await waitFor("three lines", () => lines.length >= 3);
    expect(lines).to.deep.equal(["0123456789", "01234567890", "ok"]);
    const options = { path: file, logger, onLine: (): void => undefined };
    expect(() => new FileFollower({ ...options, maxLineChars: 0 })).to.throw(RangeError, /maxLineChars/);
    expect(() => new FileFollower({ ...options, maxLineChars: 1.5 })).to.throw(RangeError, /maxLineChars/);
  });

  it("readNow() hands on everything written before it, and looks asked for at once never hand a line twice", async () => {
    await writeFile(file, "");
    const f = await follow({ pollMs: 1 });
    const written: string[] = [];
    for (let i = 0; i < 200; i++) {
      written.push(`line ${i}`);
      await appendFile(file, `line ${i}\n`);
      if (i % 7 === 0) await Promise.all([f.readNow(), f.readNow(), f.readNow()]);
      if (i % 50 === 49) {
        await f.readNow();
        expect(lines).to.deep.equal(written);
      }
    }
    await f.stop();
    await appendFile(file, "after stop\n");
    await f.readNow();
    expect(lines).to.deep.equal(written);
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
    // The child follows a file, sees a line, stops, and must then exit on its own.
    const result = await runChild(`
      const { appendFile, writeFile } = await import("node:fs/promises");
      const file = ${JSON.stringify(file)};
      await writeFile(file, "");
      let seen = "";
      const follower = new FileFollower({ path: file, pollMs: 10, logger: createMemoryLogger(), onLine: (l) => (seen = l) });
      await follower.start();
      await appendFile(file, "hello\\n");
      while (seen === "") await new Promise((r) => setTimeout(r, 5));
      await follower.stop();
      console.log("stopped after " + seen);
    `);
    expect(result).to.deep.equal({ code: 0, out: "stopped after hello" });
  });
});
