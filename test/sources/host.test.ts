import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

import {
  HostSampler,
  cpuBusyPercent,
  diskFromStatfs,
  memoryFromMeminfo,
  parseProcStat,
  type StatfsFigures,
} from "../../src/sources/host.js";
import { requireTool } from "../support/tools.js";

const fixtureDir = fileURLToPath(new URL("../fixtures/proc/", import.meta.url));
const fixture = (name: string): string => path.join(fixtureDir, name);
const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(Error);
    return error as Error;
  }
  throw new Error("expected a rejection, but the promise resolved");
}

function busyFor(ms: number): void {
  const end = Date.now() + ms;
  let x = 0;
  while (Date.now() < end) x = (x + Math.sqrt(x + 1)) % 1e9;
}

describe("HostSampler on this machine", function () {
  before(function () {
    if (process.platform !== "linux") this.skip();
  });

  it("reports memory as psutil derives it from /proc/meminfo", async () => {
    const sample = await new HostSampler().sample();
    // A second, independent reading of the same file, in psutil's terms (kB lines).
    const kib: Record<string, number> = {};
    for (const line of readFileSync("/proc/meminfo", "utf8").trim().split("\n")) {
      const [key, value] = line.split(/:\s+/);
      if (key !== undefined && value !== undefined) kib[key] = parseInt(value, 10);
    }
    const get = (key: string): number => kib[key] ?? 0;
    const cached = get("Cached") + get("SReclaimable");
    let usedKiB = get("MemTotal") - get("MemFree") - get("Buffers") - cached;
    if (usedKiB < 0) usedKiB = get("MemTotal") - get("MemFree");
    const availableKiB = get("MemAvailable");

    // Memory moves between the two reads; 64 MiB is far below any mistake in the formula.
    expect(sample.memoryUsedMiB).to.be.closeTo(usedKiB / 1024, 64);
    expect(sample.memoryAvailableMiB).to.be.closeTo(availableKiB / 1024, 64);
    const percent = ((get("MemTotal") - availableKiB) / get("MemTotal")) * 100;
    expect(sample.memoryUtilization).to.be.closeTo(percent, 0.5);
    expect(Math.round(sample.memoryUtilization * 10)).to.equal(sample.memoryUtilization * 10);
  });

  it("reports the filesystem holding / as df -B1 does", async function () {
    const df = requireTool(this, "df");
    const sample = await new HostSampler().sample();
    // -P: one line per filesystem: name, 1B-blocks, used, available, capacity, mount point.
    const line = execFileSync(df, ["-B1", "-P", "/"], { encoding: "utf8" }).trim().split("\n").at(-1) ?? "";
    const [, , used, available] = line.split(/\s+/).map(Number);
    if (used === undefined || available === undefined) throw new Error(`cannot parse df output: ${line}`);

    expect(sample.diskUsedGiB).to.be.closeTo(used / GIB, 0.05);
    expect(sample.diskAvailableGiB).to.be.closeTo(available / GIB, 0.05);
    expect(sample.diskUtilization).to.be.closeTo((used / (used + available)) * 100, 0.2);
  });

  it("has no CPU utilization on the first sample, then one within [0, 100]", async () => {
    const sampler = new HostSampler();
    expect((await sampler.sample()).cpuUtilization).to.equal(undefined);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const second = (await sampler.sample()).cpuUtilization;
    expect(second).to.be.a("number").within(0, 100);
  });

  it("shows a busy loop between two samples as CPU utilization", async () => {
    const sampler = new HostSampler();
    await sampler.primeCpu();
    busyFor(400);
    const busy = (await sampler.sample()).cpuUtilization;
    // One of N CPUs fully busy is 100/N %; ask for half of that, whatever else the machine does.
    expect(busy)
      .to.be.a("number")
      .at.least(50 / os.cpus().length);
  });

  it("falls back to the os module when told to (non-Linux hosts)", async () => {
    const sampler = new HostSampler({ source: "os" });
    const first = await sampler.sample();
    expect(first.cpuUtilization).to.equal(undefined);
    expect(first.memoryUsedMiB + first.memoryAvailableMiB).to.be.closeTo(os.totalmem() / MIB, 1e-6);
    expect(first.memoryAvailableMiB).to.be.closeTo(os.freemem() / MIB, 256);
    busyFor(300);
    expect((await sampler.sample()).cpuUtilization)
      .to.be.a("number")
      .within(0, 100);
  });
});

describe("HostSampler on recorded /proc files", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "host-sampler-"));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** A sampler whose /proc/stat is a file the test rewrites between samples. */
  function samplerOverStat(first: string): { sampler: HostSampler; next: (name: string) => void } {
    const stat = path.join(dir, "stat");
    copyFileSync(fixture(first), stat);
    const sampler = new HostSampler({
      source: "procfs",
      procStatPath: stat,
      procMeminfoPath: fixture("meminfo-recorded"),
    });
    return { sampler, next: (name) => copyFileSync(fixture(name), stat) };
  }

  it("parses the aggregate cpu line, not the per-CPU ones", () => {
    expect(parseProcStat(readFileSync(fixture("stat-1"), "utf8"))).to.deep.equal({
      user: 1000,
      nice: 50,
      system: 500,
      idle: 8000,
      iowait: 200,
      irq: 10,
      softirq: 40,
      steal: 0,
      guest: 100,
      guestNice: 0,
    });
  });

  it("computes CPU utilization as psutil does: busy share of the elapsed time, guest not counted twice", async () => {
    const { sampler, next } = samplerOverStat("stat-1");
    expect((await sampler.sample()).cpuUtilization).to.equal(undefined);
    next("stat-2");
    // Deltas: user 600 (guest 200 inside it), system 200, idle 800, iowait 200.
    // total = 600 + 200 + 800 + 200 = 1800; busy = 1800 − 800 − 200 = 800; 800/1800 = 44.44 %.
    expect((await sampler.sample()).cpuUtilization).to.equal(44.4);
  });

  it("clamps a counter that steps backwards, as psutil does", async () => {
    const { sampler, next } = samplerOverStat("stat-2");
    await sampler.sample();
    next("stat-3-iowait-backwards");
    // Deltas: user 100, system 100, idle 200, iowait −50 → 0. total 400, busy 200: 50 %.
    // Without the clamp: total 350, busy 200 → 57.1.
    expect((await sampler.sample()).cpuUtilization).to.equal(50);
  });

  it("reads kernels that print only four cpu fields", async () => {
    const { sampler, next } = samplerOverStat("stat-old-kernel-1");
    await sampler.sample();
    next("stat-old-kernel-2");
    // user 200, system 100, idle 200: 300 of 500.
    expect((await sampler.sample()).cpuUtilization).to.equal(60);
  });

  it("answers 0, not NaN, when no CPU time elapsed", async () => {
    const { sampler } = samplerOverStat("stat-1");
    await sampler.sample();
    expect((await sampler.sample()).cpuUtilization).to.equal(0);
    const times = parseProcStat(readFileSync(fixture("stat-1"), "utf8"));
    expect(cpuBusyPercent(times, times)).to.equal(0);
  });

  it("keeps the previous CPU reading per sampler, not per module", async () => {
    const a = samplerOverStat("stat-1");
    await a.sampler.sample();
    const other = new HostSampler({
      procStatPath: fixture("stat-2"),
      procMeminfoPath: fixture("meminfo-recorded"),
    });
    expect((await other.sample()).cpuUtilization).to.equal(undefined);
  });

  it("computes memory from a recorded /proc/meminfo", async () => {
    const sample = await new HostSampler({
      source: "procfs",
      procStatPath: fixture("stat-1"),
      procMeminfoPath: fixture("meminfo-recorded"),
    }).sample();
    // used = 24684096 − 24188760 (free) − 3672 (buffers) − 261352 (cached) − 70868 (SReclaimable)
    //      = 159444 kB = 155.70703125 MiB; available = 24273208 kB = 23704.3046875 MiB;
    // percent = (24684096 − 24273208) / 24684096 = 1.66 % → 1.7.
    expect(sample.memoryUsedMiB).to.equal(155.70703125);
    expect(sample.memoryAvailableMiB).to.equal(23704.3046875);
    expect(sample.memoryUtilization).to.equal(1.7);
  });

  it("uses total − free as used when caches exceed it (containers)", () => {
    const m = memoryFromMeminfo(readFileSync(fixture("meminfo-container"), "utf8"));
    // 1000000 − 400000 − 100000 − (600000 + 50000) < 0 → used = 1000000 − 400000 = 600000 kB.
    expect(m.usedBytes / MIB).to.equal(585.9375);
    expect(m.availableBytes / MIB).to.equal(878.90625);
    expect(m.percent).to.equal(10);
  });

  it("rounds an exact half to the even tenth, like Python's round()", () => {
    // (16777216 − 15728640) / 16777216 = 1/16 = 6.25 %: Python gives 6.2 where toFixed gives 6.3.
    const m = memoryFromMeminfo(readFileSync(fixture("meminfo-half-even"), "utf8"));
    expect(m.percent).to.equal(6.2);
    expect(m.usedBytes / MIB).to.equal(2048);
  });

  it("estimates available memory as free + Cached on kernels without MemAvailable", () => {
    const m = memoryFromMeminfo(readFileSync(fixture("meminfo-no-available"), "utf8"));
    // available = 1048576 + 2097152 = 3145728 kB = 3072 MiB;
    // used = 8388608 − 1048576 − 262144 − (2097152 + 524288) = 4456448 kB = 4352 MiB.
    expect(m.availableBytes / MIB).to.equal(3072);
    expect(m.usedBytes / MIB).to.equal(4352);
    expect(m.percent).to.equal(62.5);
  });

  it("takes free as available when MemAvailable exceeds MemTotal", () => {
    const m = memoryFromMeminfo(readFileSync(fixture("meminfo-available-above-total"), "utf8"));
    expect(m.availableBytes / MIB).to.equal(512);
    expect(m.percent).to.equal(75);
  });

  it("computes disk figures from recorded statfs numbers", () => {
    const stats = JSON.parse(readFileSync(fixture("statfs-root.json"), "utf8")) as StatfsFigures;
    const disk = diskFromStatfs(stats);
    // used = (66053021 − 60233842) × 4096; free = 20778549 × 4096 (root's reserve excluded).
    expect(disk.usedBytes).to.equal(23835357184);
    expect(disk.freeBytes).to.equal(85108936704);
    expect(disk.usedBytes / GIB).to.equal(22.198406219482422);
    // 23835357184 / (23835357184 + 85108936704) = 21.878 %.
    expect(disk.percent).to.equal(21.9);
    expect(diskFromStatfs({ bsize: 4096, blocks: 0, bfree: 0, bavail: 0 }).percent).to.equal(0);
  });

  it("rejects naming /proc/stat when it cannot be read", async () => {
    const missing = path.join(dir, "no-such-stat");
    const error = await rejectionOf(new HostSampler({ source: "procfs", procStatPath: missing }).sample());
    expect(error.message).to.contain(missing).and.contain("ENOENT");
  });

  it("rejects naming /proc/meminfo when it cannot be read", async () => {
    const sampler = new HostSampler({
      source: "procfs",
      procStatPath: fixture("stat-1"),
      procMeminfoPath: dir,
    });
    const error = await rejectionOf(sampler.sample());
    expect(error.message).to.contain(`cannot read ${dir}`);
  });

  it("rejects naming the disk path when it cannot be read", async () => {
    const missing = path.join(dir, "no-such-disk");
    const sampler = new HostSampler({
      source: "procfs",
      procStatPath: fixture("stat-1"),
      procMeminfoPath: fixture("meminfo-recorded"),
      diskPath: missing,
    });
    const error = await rejectionOf(sampler.sample());
    expect(error.message).to.contain(`disk usage of ${missing}`);
  });

  it("rejects naming the file when its content is not what the kernel writes", async () => {
    for (const name of ["stat-malformed", "stat-no-aggregate"]) {
      const error = await rejectionOf(
        new HostSampler({ source: "procfs", procStatPath: fixture(name) }).sample(),
      );
      expect(error.message).to.contain(fixture(name));
    }
    const sampler = new HostSampler({
      source: "procfs",
      procStatPath: fixture("stat-1"),
      procMeminfoPath: fixture("meminfo-no-total"),
    });
    const error = await rejectionOf(sampler.sample());
    expect(error.message).to.contain(fixture("meminfo-no-total")).and.contain("MemTotal");
  });
});
