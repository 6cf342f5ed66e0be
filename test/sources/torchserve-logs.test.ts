import { expect } from "chai";
import fc from "fast-check";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { appendFile, mkdir, open, rename, unlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";

import { createMemoryLogger } from "../../src/log.js";
import {
  TORCHSERVE_LOG_FILES,
  TorchServeLogFollower,
  type FollowedFile,
  type TorchServeLogFile,
  type TorchServeLogFollowerOptions,
} from "../../src/sources/torchserve-logs.js";
import { requestLines, TorchServeLogWriter } from "../support/torchserve-log-writer.js";

type Received = Record<TorchServeLogFile, string[]> & { ts_log?: string[] };
const received = (): Received => ({ ts_metrics: [], model_metrics: [], access_log: [] });
/** Files each line in `into` (ts_log.log's only when the test asks for them). */
const into =
  (got: Received) =>
  (line: string, file: FollowedFile): void => {
    if (file === "ts_log") got.ts_log?.push(line);
    else got[file].push(message(line));
  };
// The message after log4j2's `<time> - ` prefix, which the writer does not keep.
const message = (line: string): string => line.slice(line.indexOf(" - ") + 3);

describe("TorchServeLogFollower", () => {
  let dir: string;
  let follower: TorchServeLogFollower | undefined;
  let writer: TorchServeLogWriter | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "torchserve-logs-"));
    follower = undefined;
    writer = undefined;
  });
  afterEach(async () => {
    await follower?.stop();
    await writer?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  function follow(
    got: Received,
    overrides: Partial<TorchServeLogFollowerOptions> = {},
  ): TorchServeLogFollower {
    follower = new TorchServeLogFollower({
      logDir: dir,
      logger: createMemoryLogger(),
      pollMs: 5,
      onLine: into(got),
      ...overrides,
    });
    return follower;
  }

  it("follows the metric files in metricsDir and the access log in logDir, from their end by default", async () => {
    const metricsDir = path.join(dir, "metrics");
    await mkdir(metricsDir);
    await writeFile(path.join(metricsDir, "ts_metrics.log"), "2024-05-30T21:46:03,625 - old\n");
    await writeFile(path.join(dir, "access_log.log"), "2024-05-30T21:46:03,625 - old\n");
    const got = received();
    await follow(got, { metricsDir }).start();
    writer = new TorchServeLogWriter({ logDir: dir, metricsDir });
    await writer.open();
    await writer.writeRequests(3);
    await follower?.readNow();
    expect(got).to.deep.equal(writer.written);
    expect(got.ts_metrics).to.have.length(18);
    expect(got.access_log[0]).to.equal(requestLines(0).access_log[0]);
  });

  it("follows ts_log.log in logDir too, for what the other files leave out (metric types), unless told not to", async () => {
    const echo =
      "2024-05-30T21:46:03,625 [INFO ] W-9000-m_1.0-stdout org.pytorch.serve.wlm.WorkerLifeCycle - " +
      "result=[METRICS]C.Count:1.0|#ModelName:m|#type:COUNTER|#hostname:w,1,r, pattern=[METRICS]";
    const got: Received = { ...received(), ts_log: [] };
    await follow(got).start();
    await appendFile(path.join(dir, "ts_log.log"), `${echo}\n`);
    await follower?.readNow();
    expect(got.ts_log).to.deep.equal([echo]);
    expect(follower?.paths.ts_log).to.equal(path.join(dir, "ts_log.log"));

    const without: Received = { ...received(), ts_log: [] };
    const other = new TorchServeLogFollower({
      logDir: dir,
      logger: createMemoryLogger(),
      pollMs: 5,
      followTsLog: false,
      onLine: into(without),
    });
    try {
      await other.start();
      await appendFile(path.join(dir, "ts_log.log"), `${echo}\n`);
      await other.readNow();
      expect(without.ts_log).to.deep.equal([]);
    } finally {
      await other.stop();
    }
  });

  it("reads what the live files hold first with fromStart", async () => {
    writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    await writer.writeRequests(2);
    const got = received();
    await follow(got, { fromStart: true }).start();
    await writer.writeRequests(1);
    await follower?.readNow();
    expect(got).to.deep.equal(writer.written);
    expect(got.model_metrics).to.have.length(6);
  });

  it("waits for files that do not exist yet and reads them whole once they appear", async () => {
    const got = received();
    await follow(got).start();
    writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    await writer.writeRequests(4);
    await follower?.readNow();
    expect(got).to.deep.equal(writer.written);
  });

  it("reads a rolled file to its end, though gzip deleted it, before the new file, when the rename and create fall within one look", async () => {
    const live = path.join(dir, "model_metrics.log");
    await writeFile(live, "");
    const got = received();
    await follow(got).start();
    await appendFile(live, "t - a\n");
    await follower?.readNow();
    // Written, renamed away, deleted and replaced with no look in between.
    await appendFile(live, "t - b\nt - c\n");
    await rename(live, path.join(dir, "model_metrics.30-May.log"));
    await unlink(path.join(dir, "model_metrics.30-May.log"));
    await writeFile(live, "t - d\n");
    await follower?.readNow();
    expect(got.model_metrics).to.deep.equal(["a", "b", "c", "d"]);
  });

  it("reads a line that arrives in pieces once, whole", async () => {
    const live = path.join(dir, "ts_metrics.log");
    await writeFile(live, "");
    const got = received();
    await follow(got).start();
    const handle = await open(live, "a");
    try {
      await handle.write("2024-05-30T21:46:03,625 - Requests2XX.Co");
      await follower?.readNow();
      expect(got.ts_metrics).to.deep.equal([]);
      await handle.write("unt:1.0|#Level:Host|#hostname:h,timestamp:1717105563\n");
      await follower?.readNow();
    } finally {
      await handle.close();
    }
    expect(got.ts_metrics).to.deep.equal([
      "Requests2XX.Count:1.0|#Level:Host|#hostname:h,timestamp:1717105563",
    ]);
  });

  it("does not see a file that took the name and was rolled away between two looks (the documented limit)", async () => {
    const live = path.join(dir, "ts_metrics.log");
    await writeFile(live, "t - first\n");
    const got = received();
    await follow(got, { fromStart: true }).start();
    await rename(live, path.join(dir, "ts_metrics.1.log"));
    await writeFile(live, "t - middle\n");
    await rename(live, path.join(dir, "ts_metrics.2.log"));
    await writeFile(live, "t - last\n");
    await follower?.readNow();
    expect(got.ts_metrics).to.deep.equal(["first", "last"]);
  });

  it("tells when the last metric line arrived, not counting the access log", async () => {
    writer = new TorchServeLogWriter({ logDir: dir });
    await writer.open();
    await follow(received()).start();
    await writer.writeLines("access_log", ['/127.0.0.1:1 "GET /ping HTTP/1.1" 200 0']);
    await follower?.readNow();
    expect(follower?.lastLineAt()).to.equal(undefined);
    expect(follower?.lastLineAt(["access_log"])).to.be.a("number");
    const before = Date.now();
    await writer.writeRequests(1);
    await follower?.readNow();
    expect(follower?.lastLineAt()).to.be.at.least(before);
    expect(follower?.linesRead("ts_metrics")).to.equal(6);
    expect(follower?.linesRead("access_log")).to.equal(2);
  });

  it("hands on exactly the lines written, in order, while log4j2 rolls every file many times at a high rate", async () => {
    const got = received();
    const metricsDir = path.join(dir, "metrics");
    const started = follow(got, { pollMs: 2, metricsDir });
    writer = new TorchServeLogWriter({
      logDir: dir,
      metricsDir,
      rotateBytes: 128 * 1024,
      // Cuts every write in up to three pieces, anywhere, as async_logging's flushes do.
      cuts: (length) => [Math.floor(length / 3) + 7, Math.floor((length * 2) / 3) + 3],
      // One look at each file before it rolls: rollovers of one file are further apart than a
      // poll, as they are at TorchServe's 100 MB by a factor of hundreds (see TorchServeLogFollower).
      beforeRotate: () => started.readNow(),
    });
    await writer.open();
    await started.start();
    const requests = 5000;
    for (let done = 0; done < requests; done += 100) await writer.writeRequests(100);
    await started.readNow();

    expect(writer.rotations.ts_metrics).to.be.at.least(20);
    expect(writer.rotations.model_metrics).to.be.at.least(5);
    expect(writer.rotations.access_log).to.be.at.least(2);
    for (const file of TORCHSERVE_LOG_FILES) {
      expect(got[file].length, file).to.equal(writer.written[file].length);
      expect(got[file], file).to.deep.equal(writer.written[file]);
    }
    expect(got.ts_metrics).to.have.length(requests * 6);
    expect(got.model_metrics).to.have.length(requests * 2);
    expect(got.access_log).to.have.length(requests);
    await writer.close();
    expect(readdirSync(path.join(dir, "metrics")).sort()).to.include.members([
      "model_metrics.log",
      "ts_metrics.log",
    ]);
    expect(readdirSync(path.join(dir, "metrics")).filter((f) => f.endsWith(".log.gz"))).to.have.length(2);
  });

  it("delivers every written line exactly once, in order per file, whatever the interleaving of writes, pieces, rollovers and looks", async () => {
    const file = fc.constantFrom<TorchServeLogFile>(...TORCHSERVE_LOG_FILES);
    const op = fc.oneof(
      fc.record({
        kind: fc.constant("lines" as const),
        file,
        count: fc.integer({ min: 1, max: 4 }),
        cuts: fc.array(fc.nat({ max: 400 }), { maxLength: 4 }),
      }),
      fc.record({ kind: fc.constant("rotate" as const), file }),
      fc.record({ kind: fc.constant("look" as const) }),
      fc.record({ kind: fc.constant("pause" as const), ms: fc.integer({ min: 0, max: 3 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 40 }), fc.boolean(), async (ops, filesFirst) => {
        const runDir = mkdtempSync(path.join(dir, "run-"));
        const got = received();
        let cuts: readonly number[] = [];
        const run = new TorchServeLogFollower({
          logDir: runDir,
          logger: createMemoryLogger(),
          pollMs: 1,
          onLine: into(got),
        });
        const runWriter = new TorchServeLogWriter({ logDir: runDir, cuts: () => cuts });
        // A file rolled twice with no look at it in between is the documented limit, not tested here.
        const unseen = new Set<TorchServeLogFile>();
        try {
          if (filesFirst) await runWriter.open();
          await run.start();
          if (!filesFirst) {
            await runWriter.open();
            // Created after start: no look has opened them yet, as after a rollover.
            for (const f of TORCHSERVE_LOG_FILES) unseen.add(f);
          }
          let n = 0;
          for (const step of ops) {
            if (step.kind === "lines") {
              cuts = [...step.cuts].sort((a, b) => a - b);
              const lines = Array.from({ length: step.count }, () => requestLines(n++)[step.file][0] ?? "");
              await runWriter.writeLines(step.file, lines);
            } else if (step.kind === "rotate") {
              if (unseen.has(step.file)) {
                await run.readNow();
                unseen.clear();
              }
              await runWriter.rotate(step.file);
              unseen.add(step.file);
            } else if (step.kind === "look") {
              await run.readNow();
              unseen.clear();
            } else {
              await new Promise((resolve) => setTimeout(resolve, step.ms));
            }
          }
          await run.readNow();
          for (const f of TORCHSERVE_LOG_FILES) expect(got[f], f).to.deep.equal(runWriter.written[f]);
        } finally {
          await run.stop();
          await runWriter.close();
        }
      }),
      { numRuns: 60 },
    );
  });
});
