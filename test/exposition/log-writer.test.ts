import { expect } from "chai";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  unlinkSync,
} from "node:fs";
import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { formatMetricLogLine, log4jTimestamp, MetricsLogWriter } from "../../src/exposition/log-writer.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { createTelemetry, type Telemetry } from "../../src/telemetry/pipeline.js";
import type { RecordEvent } from "../../src/telemetry/recorder.js";
import { REPO_ROOT } from "../support/cli.js";

const TS_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d,\d{3} - /;

// Every directory a test made, removed after it so that a run leaves nothing in the temp dir.
const tempDirs: string[] = [];
afterEach(() => {
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "metrics-log-"));
  tempDirs.push(dir);
  return dir;
}

function setup(
  mode: "log" | "legacy",
  checkIntervalMs = 1000,
): { t: Telemetry; writer: MetricsLogWriter; dir: string } {
  const dir = join(tempDir(), "logs");
  const t = createTelemetry({
    metrics: loadDefaultCatalog().metrics,
    format: "torchserve",
    hostname: "h",
    logger: createMemoryLogger(),
  });
  const writer = new MetricsLogWriter({
    directory: dir,
    mode,
    logger: createMemoryLogger(),
    checkIntervalMs,
  });
  t.recorder.addListener((e) => writer.write(e));
  return { t, writer, dir };
}

function lines(dir: string, file: string): string[] {
  const path = join(dir, file);
  return existsSync(path)
    ? readFileSync(path, "utf8")
        .split("\n")
        .filter((l) => l !== "")
    : [];
}

describe("the log-mode writer", () => {
  it("formats TorchServe's log4j timestamp", () => {
    expect(log4jTimestamp(new Date(2024, 0, 2, 3, 4, 5, 6))).to.equal("2024-01-02T03:04:05,006");
  });

  it("writes frontend and system updates to ts_metrics.log in TorchServe's format", () => {
    const { t, writer, dir } = setup("log");
    try {
      t.recorder.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5, queueMs: 1 });
      t.recorder.recordSystem(
        {
          cpuUtilization: 12.5,
          memoryUsedMiB: 8245.62109375,
          memoryAvailableMiB: 1,
          memoryUtilization: 2,
          diskUsedGiB: 3,
          diskAvailableGiB: 4,
          diskUtilization: 5,
        },
        [],
      );
      const got = lines(dir, "ts_metrics.log");
      expect(got.every((l) => TS_LINE.test(l))).to.be.true;
      const bodies = got.map((l) => l.replace(TS_LINE, "").replace(/timestamp:\d+$/, "timestamp:T"));
      expect(bodies).to.include("Requests2XX.Count:1.0|#Level:Host|#hostname:h,timestamp:T");
      expect(bodies).to.include(
        "ts_inference_requests_total.Count:1.0|#model_name:resnet18,model_version:default|#hostname:h,timestamp:T",
      );
      expect(bodies).to.include(
        "ts_inference_latency_microseconds.Microseconds:12500.0|#model_name:resnet18,model_version:default|#hostname:h,timestamp:T",
      );
      expect(bodies).to.include("QueueTime.Milliseconds:1.0|#Level:Host|#hostname:h,timestamp:T");
      expect(bodies).to.include("MemoryUsed.Megabytes:8245.62109375|#Level:Host|#hostname:h,timestamp:T");
      expect(lines(dir, "model_metrics.log")).to.deep.equal([]);
    } finally {
      writer.stop();
    }
  });

  it("writes backend updates to model_metrics.log with their request id", () => {
    const { t, writer, dir } = setup("log");
    try {
      t.recorder.record(
        "PredictionTime",
        71.95,
        { ModelName: "mnist", Level: "Model", Hostname: "w1" },
        { requestId: "6d1726a7", unit: "Milliseconds" },
      );
      const [line] = lines(dir, "model_metrics.log");
      expect(line?.replace(TS_LINE, "")).to.match(
        /^PredictionTime\.Milliseconds:71\.95\|#ModelName:mnist,Level:Model\|#hostname:w1,requestID:6d1726a7,timestamp:\d+$/,
      );
    } finally {
      writer.stop();
    }
  });

  it("keeps the three ts_* counters out of the logs in legacy mode, and logs the rest", () => {
    const { t, writer, dir } = setup("legacy");
    try {
      t.recorder.recordInference({ model: "m", status: 200, latencyMs: 1 });
      const names = lines(dir, "ts_metrics.log").map((l) => l.replace(TS_LINE, "").split(".")[0]);
      expect(names).to.include.members(["Requests2XX", "QueueTime", "WorkerThreadTime"]);
      expect(names).not.to.include.members(["ts_inference_requests_total"]);
      expect(names.some((n) => n?.startsWith("ts_"))).to.be.false;
    } finally {
      writer.stop();
    }
  });

  it("follows logrotate: a renamed file is replaced at the next check, and SIGHUP reopens at once", async () => {
    const { t, writer, dir } = setup("log", 20);
    try {
      t.recorder.recordResponse(200);
      renameSync(join(dir, "ts_metrics.log"), join(dir, "ts_metrics.log.1"));
      await new Promise((r) => setTimeout(r, 100));
      t.recorder.recordResponse(404);
      expect(lines(dir, "ts_metrics.log.1").map((l) => l.includes("Requests2XX"))).to.deep.equal([true]);
      expect(lines(dir, "ts_metrics.log").map((l) => l.includes("Requests4XX"))).to.deep.equal([true]);

      renameSync(join(dir, "ts_metrics.log"), join(dir, "ts_metrics.log.2"));
      process.emit("SIGHUP", "SIGHUP");
      t.recorder.recordResponse(500);
      expect(lines(dir, "ts_metrics.log").map((l) => l.includes("Requests5XX"))).to.deep.equal([true]);
    } finally {
      writer.stop();
    }
  });

  it("formats a line without dimensions", () => {
    const [definition] = loadDefaultCatalog().metrics;
    if (definition === undefined) throw new Error("empty catalog");
    const line = formatMetricLogLine(
      {
        definition: { ...definition, dimensions: [] },
        value: 1e7,
        attributes: {},
        requestId: undefined,
        unit: undefined,
      },
      new Date(0),
    );
    expect(line).to.equal("Requests2XX.Count:1.0E7|#|#hostname:,timestamp:0");
  });

  describe("on a file that cannot be written (a full disk)", () => {
    const FULL = "/dev/full";
    let dir: string;
    let logger: MemoryLogger;
    let writer: MetricsLogWriter;

    beforeEach(function () {
      // /dev/full fails every write with ENOSPC, as a full disk does, for root too.
      if (!existsSync(FULL)) this.skip();
      dir = join(tempDir(), "logs");
      mkdirSync(dir);
      symlinkSync(FULL, join(dir, "ts_metrics.log"));
      logger = createMemoryLogger();
      // The interval check is left to the test: reopen() is called where a rotation would be.
      writer = new MetricsLogWriter({ directory: dir, mode: "log", logger, checkIntervalMs: 60_000 });
    });
    afterEach(() => writer.stop());

    const [requests2xx] = loadDefaultCatalog().metrics;
    const update = (value: number): void => {
      if (requests2xx === undefined) throw new Error("empty catalog");
      writer.write({
        definition: requests2xx,
        value,
        attributes: { Level: "Host" },
        requestId: undefined,
        unit: undefined,
      });
    };
    const levels = (): string[] => logger.lines.map((l) => l.split(" ")[0] ?? "");

    it("logs one error when writing starts failing and one line when it works again, with the count lost", () => {
      for (let i = 0; i < 50; i++) update(i);
      expect(logger.lines).to.have.length(1);
      expect(logger.lines[0]).to.match(
        /^ERROR cannot write .*ts_metrics\.log: .*ENOSPC.*; its metric lines are dropped until it can be written again$/,
      );

      // The disk has room again (here: the path names a regular file again).
      unlinkSync(join(dir, "ts_metrics.log"));
      writer.reopen();
      update(50);
      update(51);
      expect(logger.lines.slice(1)).to.deep.equal([
        `INFO writing ${join(dir, "ts_metrics.log")} again; 50 metric lines could not be written before this one`,
      ]);
      expect(lines(dir, "ts_metrics.log").map((l) => l.replace(TS_LINE, "").split("|")[0])).to.deep.equal([
        "Requests2XX.Count:50.0",
        "Requests2XX.Count:51.0",
      ]);

      // Failing again is a new change of state: logged once more, once.
      unlinkSync(join(dir, "ts_metrics.log"));
      symlinkSync(FULL, join(dir, "ts_metrics.log"));
      writer.reopen();
      for (let i = 0; i < 20; i++) update(i);
      expect(levels()).to.deep.equal(["ERROR", "INFO", "ERROR"]);
    });

    it("says at stop how many lines were lost if it is still failing", () => {
      for (let i = 0; i < 7; i++) update(i);
      writer.stop();
      expect(logger.lines.slice(1)).to.deep.equal([
        `WARN stopping with 7 metric lines not written to ${join(dir, "ts_metrics.log")}`,
      ]);
    });
  });

  it("writes whole lines up to a file size limit and counts the rest lost, though the kernel writes the last one short", async function () {
    this.timeout(20_000);
    // A file size limit (RLIMIT_FSIZE, bash's ulimit -f, in KiB) makes the write that crosses it
    // really short, as a disk filling up does, and every later one fail with EFBIG.
    const limit = 16 * 1024;
    const count = 1000;
    const dir = join(tempDir(), "logs");
    const { stdout } = await promisify(execFile)(
      "bash",
      [
        "-c",
        `ulimit -f ${limit / 1024} && exec "$0" --import tsx test/fixtures/log-writer-child.ts "$1" "$2"`,
        process.execPath,
        dir,
        String(count),
      ],
      // No compile cache: tsx's own files must not meet the limit.
      { cwd: REPO_ROOT, env: { ...process.env, TSX_DISABLE_CACHE: "1" } },
    );
    const text = readFileSync(join(dir, "ts_metrics.log"), "utf8");
    const written = text.split("\n");
    expect(written.pop()).to.equal("", "the file ends with a whole line");
    for (const line of written)
      expect(line).to.match(/^\S+ - Requests2XX\.Count:\d+\.0\|#Level:Host\|#hostname:,timestamp:\d+$/);
    // Every line from the first, in order: none lost before the limit, none glued to another.
    expect(written.map((l) => Number(/Count:(\d+)/.exec(l)?.[1]))).to.deep.equal([...written.keys()]);
    // The next line did not fit whole: the kernel took part of it, and that part was taken back.
    const size = Buffer.byteLength(text);
    expect(size).to.be.below(limit);
    expect(size + Buffer.byteLength(written.at(-1) ?? "") + 1).to.be.above(limit);
    const logged = JSON.parse(stdout) as string[];
    expect(logged[0]).to.match(/^ERROR cannot write .*ts_metrics\.log: EFBIG/);
    expect(logged.at(-1)).to.equal(
      `WARN stopping with ${count - written.length} metric lines not written to ${join(dir, "ts_metrics.log")}`,
    );
  });

  const noDimensions = (value: number): RecordEvent => {
    const [definition] = loadDefaultCatalog().metrics;
    if (definition === undefined) throw new Error("empty catalog");
    return { definition, value, attributes: {}, requestId: undefined, unit: undefined };
  };
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  it("logs a file that cannot be reopened once, not at every check, and when it can again", async () => {
    const dir = join(tempDir(), "logs");
    const logger = createMemoryLogger();
    const writer = new MetricsLogWriter({ directory: dir, mode: "log", logger, checkIntervalMs: 10 });
    try {
      // The directory goes away (an unmounted volume): every check's open fails with ENOENT.
      rmSync(dir, { recursive: true });
      await sleep(100);
      const cannotOpen = (name: string): string =>
        `ERROR cannot open ${join(dir, name)}: ENOENT: no such file or directory, open '${join(dir, name)}'; ` +
        "its metric lines still go to the file open before";
      expect(logger.lines).to.deep.equal([cannotOpen("ts_metrics.log"), cannotOpen("model_metrics.log")]);
      mkdirSync(dir);
      await sleep(100);
      writer.write(noDimensions(1));
      expect(lines(dir, "ts_metrics.log")).to.have.length(1);
      expect(logger.lines.slice(2)).to.deep.equal([
        `INFO opened ${join(dir, "ts_metrics.log")} again`,
        `INFO opened ${join(dir, "model_metrics.log")} again`,
      ]);
    } finally {
      writer.stop();
    }
  });

  it("counts the lines dropped while a file could not be opened at all", async () => {
    const dir = join(tempDir(), "logs");
    // A directory where the file should be: opening it for appending fails with EISDIR, for root too.
    mkdirSync(join(dir, "ts_metrics.log"), { recursive: true });
    const logger = createMemoryLogger();
    const writer = new MetricsLogWriter({ directory: dir, mode: "log", logger, checkIntervalMs: 10 });
    try {
      for (let i = 0; i < 3; i++) writer.write(noDimensions(i));
      await sleep(50);
      expect(logger.lines).to.have.length(1);
      expect(logger.lines[0]).to.match(
        /^ERROR cannot open .*ts_metrics\.log: EISDIR.*; its metric lines are dropped until it can be opened$/,
      );
      rmSync(join(dir, "ts_metrics.log"), { recursive: true });
      await sleep(100);
      writer.write(noDimensions(3));
      expect(logger.lines.slice(1)).to.deep.equal([
        `INFO opened ${join(dir, "ts_metrics.log")} again`,
        `INFO writing ${join(dir, "ts_metrics.log")} again; 3 metric lines could not be written before this one`,
      ]);
      expect(lines(dir, "ts_metrics.log")).to.have.length(1);
    } finally {
      writer.stop();
    }
  });
});
