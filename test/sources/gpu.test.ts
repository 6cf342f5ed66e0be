import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import { parseNvidiaSmiCsv, queryGpus } from "../../src/sources/gpu.js";

const fixtureDir = fileURLToPath(new URL("../fixtures/nvidia-smi/", import.meta.url));
const fakeNvidiaSmi = path.join(fixtureDir, "fake-nvidia-smi.js");
const recorded = (name: string): string => readFileSync(path.join(fixtureDir, name), "utf8");
// Generous: these runs must not time out on a slow machine; the timeout test sets its own.
const timeoutMs = 10_000;

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("parseNvidiaSmiCsv", () => {
  it("reads one GPU, stripping units", () => {
    expect(parseNvidiaSmiCsv(recorded("one-gpu.csv"))).to.deep.equal([
      { index: 0, utilization: 37, memoryUsedMiB: 1024, memoryUtilization: (1024 / 81559) * 100 },
    ]);
  });

  it("reads every device, in nvidia-smi's order", () => {
    const gpus = parseNvidiaSmiCsv(recorded("two-gpus.csv"));
    expect(gpus.map((g) => g.index)).to.deep.equal([0, 1]);
    expect(gpus[0]).to.deep.equal({
      index: 0,
      utilization: 100,
      memoryUsedMiB: 40779,
      memoryUtilization: (40779 / 81559) * 100,
    });
    expect(gpus[1]).to.deep.equal({ index: 1, utilization: 0, memoryUsedMiB: 0, memoryUtilization: 0 });
  });

  it("gives undefined, never 0, for [N/A] and [Not Supported]", () => {
    expect(parseNvidiaSmiCsv(recorded("not-available.csv"))).to.deep.equal([
      { index: 0, utilization: undefined, memoryUsedMiB: 512, memoryUtilization: 3.125 },
      { index: 1, utilization: undefined, memoryUsedMiB: undefined, memoryUtilization: undefined },
      { index: 2, utilization: 12, memoryUsedMiB: 2048, memoryUtilization: undefined },
    ]);
  });

  it("keeps the numeric fields of MIG-enabled GPUs, whose utilization is [N/A]", () => {
    expect(parseNvidiaSmiCsv(recorded("mig.csv"))).to.deep.equal([
      { index: 0, utilization: undefined, memoryUsedMiB: 13, memoryUtilization: (13 / 40960) * 100 },
      { index: 1, utilization: undefined, memoryUsedMiB: 10240, memoryUtilization: 25 },
      { index: 2, utilization: 64, memoryUsedMiB: 20480, memoryUtilization: 50 },
    ]);
  });

  it("finds columns by header name, whatever their order, with or without units", () => {
    const text = "memory.total [MiB], index, memory.used [MiB], utilization.gpu [%]\r\n8192, 3, 2048, 5\r\n";
    expect(parseNvidiaSmiCsv(text)).to.deep.equal([
      { index: 3, utilization: 5, memoryUsedMiB: 2048, memoryUtilization: 25 },
    ]);
  });

  it("reads a header with no rows as no GPUs", () => {
    expect(parseNvidiaSmiCsv(recorded("header-only.csv"))).to.deep.equal([]);
  });

  it("refuses text that is not nvidia-smi's table, saying why", () => {
    expect(() => parseNvidiaSmiCsv(recorded("garbage.txt"))).to.throw(/no "index" column/);
    expect(() => parseNvidiaSmiCsv("")).to.throw(/printed nothing/);
    const header = "index, utilization.gpu [%], memory.used [MiB], memory.total [MiB]";
    expect(() => parseNvidiaSmiCsv(`${header}\n0, 37 %, 1024 MiB\n`)).to.throw(/3 fields, the header 4/);
    expect(() => parseNvidiaSmiCsv(`${header}\n[N/A], 37 %, 1024 MiB, 2048 MiB\n`)).to.throw(
      /no device index/,
    );
  });
});

describe("queryGpus", () => {
  let dir: string;
  let runLog: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "gpu-query-"));
    runLog = path.join(dir, "runs");
    process.env.FAKE_NVIDIA_SMI_LOG = runLog;
  });
  afterEach(() => {
    delete process.env.FAKE_NVIDIA_SMI;
    delete process.env.FAKE_NVIDIA_SMI_LOG;
    rmSync(dir, { recursive: true, force: true });
  });
  const runs = (): number[] =>
    existsSync(runLog) ? readFileSync(runLog, "utf8").trim().split("\n").map(Number) : [];

  it("the fake nvidia-smi refuses any other arguments (so these tests notice a changed query)", () => {
    const run = spawnSync(fakeNvidiaSmi, ["--query-gpu=index", "--format=csv"], {
      encoding: "utf8",
      env: { ...process.env, FAKE_NVIDIA_SMI: "one-gpu.csv" },
    });
    expect(run.status).to.equal(2);
    expect(run.stderr).to.contain("unexpected arguments");
  });

  it("reports one GPU", async () => {
    process.env.FAKE_NVIDIA_SMI = "one-gpu.csv";
    expect(await queryGpus({ command: fakeNvidiaSmi, timeoutMs })).to.deep.equal({
      ok: true,
      gpus: [{ index: 0, utilization: 37, memoryUsedMiB: 1024, memoryUtilization: (1024 / 81559) * 100 }],
    });
    expect(runs()).to.have.length(1);
  });

  it("reports two GPUs", async () => {
    process.env.FAKE_NVIDIA_SMI = "two-gpus.csv";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs });
    expect(result.ok && result.gpus.map((g) => [g.index, g.utilization])).to.deep.equal([
      [0, 100],
      [1, 0],
    ]);
  });

  it("passes [N/A] and [Not Supported] on as undefined", async () => {
    process.env.FAKE_NVIDIA_SMI = "not-available.csv";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs });
    if (!result.ok) throw new Error(result.message);
    expect(result.gpus.map((g) => g.utilization)).to.deep.equal([undefined, undefined, 12]);
    expect(result.gpus.map((g) => g.memoryUsedMiB)).to.deep.equal([512, undefined, 2048]);
  });

  it("reports MIG-enabled GPUs with the fields they have", async () => {
    process.env.FAKE_NVIDIA_SMI = "mig.csv";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs });
    if (!result.ok) throw new Error(result.message);
    expect(result.gpus.map((g) => g.memoryUsedMiB)).to.deep.equal([13, 10240, 20480]);
  });

  it("keeps only the first maxDevices devices", async () => {
    process.env.FAKE_NVIDIA_SMI = "two-gpus.csv";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs, maxDevices: 1 });
    expect(result.ok && result.gpus.map((g) => g.index)).to.deep.equal([0]);
  });

  it("runs no nvidia-smi at all with maxDevices 0", async () => {
    process.env.FAKE_NVIDIA_SMI = "two-gpus.csv";
    expect(await queryGpus({ command: fakeNvidiaSmi, timeoutMs, maxDevices: 0 })).to.deep.equal({
      ok: true,
      gpus: [],
    });
    expect(runs()).to.deep.equal([]);
  });

  it("kills a hanging nvidia-smi after timeoutMs and answers timeout", async () => {
    process.env.FAKE_NVIDIA_SMI = "hang";
    const started = Date.now();
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs: 300 });
    const elapsed = Date.now() - started;
    expect(result).to.include({ ok: false, reason: "timeout" });
    expect(elapsed).to.be.within(295, 1000);

    // A child killed before its first line never logs its pid; one left running would have by now.
    const deadline = Date.now() + 2000;
    let pid: number | undefined;
    while (Date.now() < deadline) {
      pid = runs()[0];
      if (pid !== undefined && !isRunning(pid)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    if (pid !== undefined && isRunning(pid)) {
      process.kill(pid, "SIGKILL");
      expect.fail(`the hanging nvidia-smi (pid ${pid}) was left running`);
    }
  });

  it("answers failed with the exit code and the first line nvidia-smi printed", async () => {
    process.env.FAKE_NVIDIA_SMI = "fail";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs });
    expect(result).to.deep.equal({
      ok: false,
      reason: "failed",
      message: `${fakeNvidiaSmi} exited with code 18: Failed to initialize NVML: Driver/library version mismatch`,
    });
  });

  it("answers missing when there is no such executable", async () => {
    const command = path.join(dir, "nvidia-smi");
    expect(await queryGpus({ command, timeoutMs })).to.deep.equal({
      ok: false,
      reason: "missing",
      message: `${command} not found`,
    });
  });

  it("answers failed when the path cannot be executed", async () => {
    const result = await queryGpus({ command: dir, timeoutMs });
    expect(result).to.include({ ok: false, reason: "failed" });
    expect(!result.ok && result.message).to.contain("EACCES");
  });

  it("answers unparsable when nvidia-smi prints something else", async () => {
    process.env.FAKE_NVIDIA_SMI = "garbage.txt";
    const result = await queryGpus({ command: fakeNvidiaSmi, timeoutMs });
    expect(result).to.include({ ok: false, reason: "unparsable" });
    expect(!result.ok && result.message).to.contain('no "index" column');
  });
});
