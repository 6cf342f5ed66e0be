import { expect } from "chai";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { until } from "../support/net.js";
import { HostSampler } from "../../src/sources/host.js";
import {
  SystemSampler,
  type SystemSample,
  type SystemSamplerOptions,
} from "../../src/sources/system-sampler.js";

const fixtures = fileURLToPath(new URL("../fixtures/", import.meta.url));
const fakeNvidiaSmi = path.join(fixtures, "nvidia-smi", "fake-nvidia-smi.js");
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe("SystemSampler", () => {
  let dir: string;
  let runLog: string;
  let logger: MemoryLogger;
  let samples: SystemSample[];
  let sampler: SystemSampler | undefined;

  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "system-sampler-"));
    runLog = path.join(dir, "runs");
    process.env.FAKE_NVIDIA_SMI_LOG = runLog;
    process.env.FAKE_NVIDIA_SMI = "one-gpu.csv";
    logger = createMemoryLogger();
    samples = [];
    sampler = undefined;
  });
  afterEach(() => {
    sampler?.stop();
    delete process.env.FAKE_NVIDIA_SMI;
    delete process.env.FAKE_NVIDIA_SMI_LOG;
    rmSync(dir, { recursive: true, force: true });
  });

  function create(overrides: Partial<SystemSamplerOptions> = {}): SystemSampler {
    // A sampling still under way when a test ends must not land in the next test's array.
    const sink = samples;
    sampler = new SystemSampler({
      intervalSeconds: 0.2,
      host: true,
      gpu: { command: fakeNvidiaSmi, timeoutMs: 10_000, maxDevices: undefined },
      logger,
      onSample: (sample) => sink.push(sample),
      cpuPrimeMs: 20,
      ...overrides,
    });
    return sampler;
  }
  const runs = (): number =>
    existsSync(runLog) ? readFileSync(runLog, "utf8").trim().split("\n").length : 0;
  const linesLike = (pattern: RegExp): string[] => logger.lines.filter((l) => pattern.test(l));

  it("delivers a host sample with CPU utilization and the GPUs before start() resolves", async () => {
    await create({ cpuPrimeMs: undefined }).start(); // the default 250 ms
    expect(samples).to.have.length(1);
    const [first] = samples;
    expect(first?.host?.cpuUtilization).to.be.a("number").within(0, 100);
    expect(first?.host?.memoryUsedMiB).to.be.greaterThan(0);
    expect(first?.gpus).to.deep.equal([
      { index: 0, utilization: 37, memoryUsedMiB: 1024, memoryUtilization: (1024 / 81559) * 100 },
    ]);
    expect(logger.lines).to.deep.equal([]);
  });

  it("passes number_of_gpu on to the query", async () => {
    process.env.FAKE_NVIDIA_SMI = "two-gpus.csv";
    await create({ gpu: { command: fakeNvidiaSmi, timeoutMs: 10_000, maxDevices: 1 } }).start();
    expect(samples[0]?.gpus.map((g) => g.index)).to.deep.equal([0]);
  });

  it("samples again every intervalSeconds", async () => {
    await create().start();
    // The first sample at start, then one per 200 ms tick; each spawns nvidia-smi, which a loaded
    // machine may make slow, so wait for the ticks rather than for a time.
    await until(() => samples.length >= 4, "three samples after the first", 10_000);
    expect(samples.every((s) => s.host !== undefined && s.gpus.length === 1)).to.equal(true);
  });

  it("stops sampling after stop()", async () => {
    const s = create();
    await s.start();
    s.stop();
    await sleep(100); // lets a sampling already under way finish
    const count = samples.length;
    await sleep(600);
    expect(samples).to.have.length(count);
  });

  it("still delivers host samples while nvidia-smi hangs, warning once", async () => {
    process.env.FAKE_NVIDIA_SMI = "hang";
    const s = create({ gpu: { command: fakeNvidiaSmi, timeoutMs: 300, maxDevices: undefined } });
    await s.start();
    await s.sampleNow();
    expect(samples.length).to.be.at.least(2);
    expect(samples.every((x) => x.host !== undefined && x.gpus.length === 0)).to.equal(true);
    expect(linesLike(/nvidia-smi/)).to.deep.equal([
      `WARN GPU metrics: ${fakeNvidiaSmi} did not answer within 300 ms and was killed; GPU metrics have no values until it recovers`,
    ]);
  });

  it("says once at INFO that there is no nvidia-smi when GPU metrics were not asked for (a CPU host)", async () => {
    const command = path.join(dir, "nvidia-smi");
    const s = create({ gpu: { command, timeoutMs: 10_000, maxDevices: undefined, requested: false } });
    await s.start();
    await s.sampleNow();
    expect(samples.at(-1)?.host).to.not.equal(undefined);
    expect(logger.lines).to.deep.equal([`INFO no nvidia-smi on this host (${command}): no GPU metrics`]);
  });

  it("counts GPU metrics as asked for when number_of_gpu or nvidia_smi_path is set, not with the defaults", async () => {
    const PATH = process.env.PATH;
    process.env.PATH = dir; // no nvidia-smi on it
    try {
      for (const [gpu, level] of [
        [{ command: "nvidia-smi", maxDevices: undefined }, "INFO"],
        [{ command: "nvidia-smi", maxDevices: 2 }, "WARN"],
        [{ command: path.join(dir, "nvidia-smi"), maxDevices: undefined }, "WARN"],
      ] as const) {
        logger.lines.length = 0;
        const s = create({ gpu: { ...gpu, timeoutMs: 10_000 } });
        await s.start();
        s.stop();
        expect(
          logger.lines.map((line) => line.split(" ")[0]),
          JSON.stringify(gpu),
        ).to.deep.equal([level]);
      }
    } finally {
      process.env.PATH = PATH;
    }
  });

  it("warns once that nvidia-smi is missing when GPU metrics were asked for, delivers host samples, and stops trying", async () => {
    const command = path.join(dir, "nvidia-smi");
    const s = create({ gpu: { command, timeoutMs: 10_000, maxDevices: undefined, requested: true } });
    await s.start();
    expect(samples[0]?.host).to.not.equal(undefined);
    expect(logger.lines).to.deep.equal([`WARN nvidia-smi not found at ${command}: GPU metrics disabled`]);

    // Even once the executable appears, the sampler does not look again.
    copyFileSync(fakeNvidiaSmi, command);
    await s.sampleNow();
    expect(samples.at(-1)?.gpus).to.deep.equal([]);
    expect(runs()).to.equal(0);
    expect(logger.lines).to.have.length(1);
  });

  it("with host: false (disable_system_metrics) delivers no host sample and runs no nvidia-smi", async () => {
    await create({ host: false }).start();
    await sleep(500);
    expect(samples).to.deep.equal([{ host: undefined, gpus: [] }]);
    expect(runs()).to.equal(0);
  });

  it("logs a GPU failure when it starts and when it ends, not on every sample", async () => {
    process.env.FAKE_NVIDIA_SMI = "fail";
    const s = create();
    await s.sampleNow();
    await s.sampleNow();
    await s.sampleNow();
    const failure = `WARN GPU metrics: ${fakeNvidiaSmi} exited with code 18: Failed to initialize NVML: Driver/library version mismatch; GPU metrics have no values until it recovers`;
    expect(logger.lines).to.deep.equal([failure]);

    process.env.FAKE_NVIDIA_SMI = "one-gpu.csv";
    await s.sampleNow();
    await s.sampleNow();
    expect(samples.at(-1)?.gpus).to.have.length(1);
    expect(logger.lines).to.deep.equal([failure, `INFO GPU metrics: ${fakeNvidiaSmi} answers again`]);

    process.env.FAKE_NVIDIA_SMI = "garbage.txt";
    await s.sampleNow();
    expect(logger.lines).to.have.length(3);
    expect(logger.lines[2]).to.match(/^WARN GPU metrics: .*no "index" column/);
  });

  it("logs a host read failure once, keeps delivering GPUs, and logs the recovery", async () => {
    const meminfo = path.join(dir, "meminfo");
    const hostSampler = new HostSampler({ source: "procfs", procMeminfoPath: meminfo });
    const s = create({ hostSampler });
    await s.sampleNow();
    await s.sampleNow();
    expect(samples.map((x) => x.host)).to.deep.equal([undefined, undefined]);
    expect(samples.map((x) => x.gpus.length)).to.deep.equal([1, 1]);
    expect(logger.lines).to.have.length(1);
    expect(logger.lines[0]).to.match(/^WARN host metrics: cannot read .*meminfo: ENOENT/);

    copyFileSync(path.join(fixtures, "proc", "meminfo-recorded"), meminfo);
    await s.sampleNow();
    expect(samples.at(-1)?.host?.memoryUsedMiB).to.equal(155.70703125);
    expect(logger.lines.at(-1)).to.equal("INFO host metrics: reading the host works again");
  });

  it("never runs two samplings at once", async () => {
    process.env.FAKE_NVIDIA_SMI = "hang";
    // Each sampling waits 400 ms on nvidia-smi while the timer ticks every 100 ms.
    const s = create({
      intervalSeconds: 0.1,
      gpu: { command: fakeNvidiaSmi, timeoutMs: 400, maxDevices: undefined },
    });
    await s.start();
    const during = s.sampleNow();
    expect(s.sampleNow()).to.equal(during);
    await sleep(1000);
    s.stop();
    // Overlapping ticks would have started about ten; one at a time allows three or four.
    expect(samples.length).to.be.within(2, 5);
    expect(runs()).to.be.within(2, 5);
  });

  it("logs an onSample failure and keeps sampling", async () => {
    let calls = 0;
    await create({
      gpu: { command: fakeNvidiaSmi, timeoutMs: 10_000, maxDevices: 0 },
      onSample: () => {
        calls += 1;
        throw new Error("recorder broke");
      },
    }).start();
    await sleep(300);
    expect(calls).to.be.at.least(2);
    expect(logger.lines[0]).to.equal("ERROR system metrics: onSample failed: recorder broke");
  });

  it("refuses an interval that is not a positive number of seconds", () => {
    expect(() => create({ intervalSeconds: 0 })).to.throw(RangeError, /intervalSeconds/);
    expect(() => create({ intervalSeconds: Number.NaN })).to.throw(RangeError, /intervalSeconds/);
  });
});
