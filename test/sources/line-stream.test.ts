import { expect } from "chai";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";

import { createMemoryLogger } from "../../src/log.js";
import { readLineStream } from "../../src/sources/line-stream.js";

describe("readLineStream", () => {
  it("hands on lines fed in pieces, split inside lines and inside characters, and reports the end", async () => {
    const input = new PassThrough();
    const lines: string[] = [];
    const reader = readLineStream({
      input,
      name: "standard input",
      logger: createMemoryLogger(),
      onLine: (l) => lines.push(l),
    });
    const bytes = Buffer.from("first\r\nsécond line\n\nthird without newline");
    // Cut after the first byte of "é" (2 bytes) among others.
    const cuts = [3, 9, 10, 20, bytes.length];
    let from = 0;
    for (const cut of cuts) {
      input.write(bytes.subarray(from, cut));
      from = cut;
      await new Promise((resolve) => setImmediate(resolve));
    }
    input.end();
    const end = await reader.ended;
    expect(lines).to.deep.equal(["first", "sécond line", "", "third without newline"]);
    expect(end).to.deep.equal({ reason: "end", lines: 4, cutLines: 0 });
    expect(reader.lastLineAt()).to.be.a("number");
  });

  it("reads a real child process's output to its end", async () => {
    const script = `
      const lines = [];
      for (let i = 0; i < 2000; i++) lines.push("2024-05-30T21:46:03,625 [INFO ] W-9000-mnist TS_METRICS - Requests2XX.Count:1.0|#Level:Host|#hostname:h,timestamp:" + i);
      const text = lines.join("\\n") + "\\n";
      let at = 0;
      const next = () => {
        if (at >= text.length) return;
        process.stdout.write(text.slice(at, at + 777), next);
        at += 777;
      };
      next();
    `;
    const child = spawn(process.execPath, ["-e", script], { stdio: ["ignore", "pipe", "inherit"] });
    const lines: string[] = [];
    const reader = readLineStream({
      input: child.stdout,
      name: "child",
      logger: createMemoryLogger(),
      onLine: (l) => lines.push(l),
    });
    const end = await reader.ended;
    expect(end.reason).to.equal("end");
    expect(lines).to.have.length(2000);
    expect(lines[1999]).to.match(/timestamp:1999$/);
    expect(new Set(lines).size).to.equal(2000);
  });

  it("cuts a huge line at the cap, logs that once, and goes on with the next line", async () => {
    const input = new PassThrough();
    const lines: string[] = [];
    const heads: string[] = [];
    const logger = createMemoryLogger();
    const reader = readLineStream({
      input,
      name: "standard input",
      logger,
      maxLineBytes: 1024,
      onLine: (l) => lines.push(l),
      onCut: (h) => heads.push(h),
    });
    const chunk = Buffer.alloc(1024 * 1024, "x");
    for (let i = 0; i < 16; i++) input.write(chunk);
    input.write("\nok\n");
    for (let i = 0; i < 4; i++) input.write(chunk);
    input.end("\nlast\n");
    const end = await reader.ended;
    expect(lines).to.deep.equal(["ok", "last"]);
    expect(heads.map((h) => h.length)).to.deep.equal([1024, 1024]);
    expect(end).to.deep.equal({ reason: "end", lines: 2, cutLines: 2 });
    expect(logger.lines.filter((l) => l.includes("was cut"))).to.have.length(1);
  });

  it("survives binary garbage: one line per newline byte, bad bytes decoded as U+FFFD", async () => {
    const input = new PassThrough();
    const lines: string[] = [];
    const reader = readLineStream({
      input,
      name: "standard input",
      logger: createMemoryLogger(),
      onLine: (l) => lines.push(l),
    });
    const garbage = Buffer.concat([randomBytes(200_000), Buffer.from([0xff, 0xfe, 0x00, 0x0a, 0xc3])]);
    input.end(garbage);
    const end = await reader.ended;
    const newlines = garbage.filter((b) => b === 0x0a).length;
    // Whatever follows the last newline (here the lone 0xc3) is a last line of its own.
    expect(end.reason).to.equal("end");
    expect(lines.length).to.equal(newlines + 1);
    expect(lines[lines.length - 1]).to.equal("\ufffd");
  });

  it("goes on after onLine throws, logging the first failure and the count at the end", async () => {
    const input = new PassThrough();
    const logger = createMemoryLogger();
    const seen: string[] = [];
    const reader = readLineStream({
      input,
      name: "standard input",
      logger,
      onLine: (l) => {
        seen.push(l);
        if (l.startsWith("bad")) throw new Error("boom");
      },
    });
    input.end("bad 1\nbad 2\ngood\n");
    const end = await reader.ended;
    expect(seen).to.deep.equal(["bad 1", "bad 2", "good"]);
    expect(end.lines).to.equal(3);
    expect(logger.lines).to.deep.equal([
      "ERROR handling a line of standard input failed: boom",
      "ERROR handling 2 lines of standard input failed in all",
    ]);
  });

  it("ends with the error when the stream fails, and with stopped after stop()", async () => {
    const failing = new PassThrough();
    const lines: string[] = [];
    const reader = readLineStream({
      input: failing,
      name: "a",
      logger: createMemoryLogger(),
      onLine: (l) => lines.push(l),
    });
    failing.write("one\n");
    await new Promise((resolve) => setImmediate(resolve));
    failing.destroy(new Error("EIO: i/o error, read"));
    expect(await reader.ended).to.deep.equal({
      reason: "error",
      error: "EIO: i/o error, read",
      lines: 1,
      cutLines: 0,
    });

    const open = new PassThrough();
    const stopped = readLineStream({
      input: open,
      name: "b",
      logger: createMemoryLogger(),
      onLine: () => undefined,
    });
    open.write("partial");
    stopped.stop();
    expect(await stopped.ended).to.deep.equal({ reason: "stopped", lines: 0, cutLines: 0 });
    expect(open.destroyed).to.equal(true);
  });
});
