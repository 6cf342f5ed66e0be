import { readFile, statfs } from "node:fs/promises";
import os from "node:os";

/** One reading of the host, in TorchServe's units. */
export interface HostSample {
  /** % busy since the previous reading; undefined when there is no previous reading. */
  cpuUtilization: number | undefined;
  /** psutil `virtual_memory().used`, in MiB (1024²). */
  memoryUsedMiB: number;
  /** psutil `virtual_memory().available`, in MiB (1024²). */
  memoryAvailableMiB: number;
  /** psutil `virtual_memory().percent`: (total − available) / total, in %, one decimal. */
  memoryUtilization: number;
  /** psutil `disk_usage('/').used`, in GiB (1024³). */
  diskUsedGiB: number;
  /** psutil `disk_usage('/').free` (space an unprivileged user may still fill), in GiB (1024³). */
  diskAvailableGiB: number;
  /** psutil `disk_usage('/').percent`: used / (used + free), in %, one decimal. */
  diskUtilization: number;
}

/**
 * Cumulative CPU times of the whole machine, in any one unit (clock ticks from /proc/stat,
 * ms from `os.cpus()`). Fields a source lacks are 0.
 */
export interface CpuTimes {
  user: number;
  nice: number;
  system: number;
  idle: number;
  iowait: number;
  irq: number;
  softirq: number;
  steal: number;
  guest: number;
  guestNice: number;
}

/** Memory figures in bytes, as psutil's `virtual_memory()` computes them on Linux. */
export interface MemoryFigures {
  totalBytes: number;
  usedBytes: number;
  availableBytes: number;
  /** (total − available) / total in %, rounded like Python's `round(x, 1)`. */
  percent: number;
}

/** Disk figures in bytes, as psutil's `disk_usage()` computes them. */
export interface DiskFigures {
  totalBytes: number;
  usedBytes: number;
  freeBytes: number;
  /** used / (used + free) in %, rounded like Python's `round(x, 1)`; 0 for an empty filesystem. */
  percent: number;
}

/** The `statfs` fields psutil's disk figures need; `bsize` is the unit of the block counts. */
export interface StatfsFigures {
  bsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
}

/** Where a {@link HostSampler} reads; the paths exist so tests can point at recorded files. */
export interface HostSamplerOptions {
  /**
   * `procfs` reads /proc/stat and /proc/meminfo (psutil's Linux semantics); `os` uses
   * `os.cpus()`, `os.totalmem()` and `os.freemem()`. Default: `procfs` on Linux, `os` elsewhere.
   */
  source?: "procfs" | "os";
  /** Default `/proc/stat`. */
  procStatPath?: string;
  /** Default `/proc/meminfo`. */
  procMeminfoPath?: string;
  /** A path on the filesystem to report; default `/`. */
  diskPath?: string;
}

const MIB = 1024 ** 2;
const GIB = 1024 ** 3;

/** Reads CPU, memory and disk in TorchServe's (psutil's) semantics; keeps the last CPU reading. */
export class HostSampler {
  private readonly source: "procfs" | "os";
  private readonly procStatPath: string;
  private readonly procMeminfoPath: string;
  private readonly diskPath: string;
  private previousCpu: CpuTimes | undefined;

  constructor(options: HostSamplerOptions = {}) {
    this.source = options.source ?? (process.platform === "linux" ? "procfs" : "os");
    this.procStatPath = options.procStatPath ?? "/proc/stat";
    this.procMeminfoPath = options.procMeminfoPath ?? "/proc/meminfo";
    this.diskPath = options.diskPath ?? "/";
  }

  /** Takes a CPU reading only, so that the next {@link sample} has a utilization to report. */
  async primeCpu(): Promise<void> {
    this.previousCpu = await this.readCpuTimes();
  }

  /** Reads the host; rejects with a message naming the file or path that could not be read. */
  async sample(): Promise<HostSample> {
    const [cpuUtilization, memory, disk] = await Promise.all([
      this.readCpuUtilization(),
      this.readMemory(),
      this.readDisk(),
    ]);
    return {
      cpuUtilization,
      memoryUsedMiB: memory.usedBytes / MIB,
      memoryAvailableMiB: memory.availableBytes / MIB,
      memoryUtilization: memory.percent,
      diskUsedGiB: disk.usedBytes / GIB,
      diskAvailableGiB: disk.freeBytes / GIB,
      diskUtilization: disk.percent,
    };
  }

  private async readCpuUtilization(): Promise<number | undefined> {
    const current = await this.readCpuTimes();
    const previous = this.previousCpu;
    this.previousCpu = current;
    return previous === undefined ? undefined : cpuBusyPercent(previous, current);
  }

  private async readCpuTimes(): Promise<CpuTimes> {
    if (this.source === "os") return cpuTimesFromOs(os.cpus());
    return parseProcStat(await readText(this.procStatPath), this.procStatPath);
  }

  private async readMemory(): Promise<MemoryFigures> {
    if (this.source === "os") return memoryFromOs(os.totalmem(), os.freemem());
    return memoryFromMeminfo(await readText(this.procMeminfoPath), this.procMeminfoPath);
  }

  private async readDisk(): Promise<DiskFigures> {
    let stats: StatfsFigures;
    try {
      stats = await statfs(this.diskPath);
    } catch (error) {
      throw new Error(`cannot read disk usage of ${this.diskPath}: ${describe(error)}`, { cause: error });
    }
    return diskFromStatfs(stats);
  }
}

/**
 * Parses the aggregate `cpu` line of /proc/stat. Kernels before 2.6.33 print fewer than ten
 * fields; the missing ones are 0. `file` only names the source in errors.
 */
export function parseProcStat(text: string, file = "/proc/stat"): CpuTimes {
  const line = text.split("\n").find((l) => /^cpu\s/.test(l));
  if (line === undefined) throw new Error(`${file} has no aggregate "cpu" line`);
  const fields = line.trim().split(/\s+/).slice(1);
  const values = fields.map(Number);
  if (values.length < 4 || values.some((v) => !Number.isFinite(v) || v < 0)) {
    throw new Error(`${file}: cannot parse the aggregate cpu line "${line.trim()}"`);
  }
  const at = (i: number): number => values[i] ?? 0;
  return {
    user: at(0),
    nice: at(1),
    system: at(2),
    idle: at(3),
    iowait: at(4),
    irq: at(5),
    softirq: at(6),
    steal: at(7),
    guest: at(8),
    guestNice: at(9),
  };
}

/** Sums `os.cpus()` times over all CPUs (ms); the fields Node does not report stay 0. */
export function cpuTimesFromOs(cpus: readonly os.CpuInfo[]): CpuTimes {
  const sum: CpuTimes = {
    user: 0,
    nice: 0,
    system: 0,
    idle: 0,
    iowait: 0,
    irq: 0,
    softirq: 0,
    steal: 0,
    guest: 0,
    guestNice: 0,
  };
  for (const { times } of cpus) {
    sum.user += times.user;
    sum.nice += times.nice;
    sum.system += times.sys;
    sum.idle += times.idle;
    sum.irq += times.irq;
  }
  return sum;
}

/**
 * psutil's `cpu_percent()` between two readings: % of the elapsed CPU time not spent idle or in
 * iowait, one decimal. 0 when no time elapsed (as psutil answers).
 */
export function cpuBusyPercent(previous: CpuTimes, current: CpuTimes): number {
  // psutil clamps each field's delta at 0: some kernels let iowait (and others) step backwards.
  const d = (field: keyof CpuTimes): number => Math.max(0, current[field] - previous[field]);
  // guest and guest_nice are left out: the kernel already counts them inside user and nice.
  const total =
    d("user") + d("nice") + d("system") + d("idle") + d("iowait") + d("irq") + d("softirq") + d("steal");
  if (total <= 0) return 0;
  const busy = total - d("idle") - d("iowait");
  return roundToTenth((busy / total) * 100);
}

/**
 * psutil's `virtual_memory()` from the text of /proc/meminfo: used = total − free − buffers −
 * cached (cached includes SReclaimable), or total − free when that is negative (containers).
 */
export function memoryFromMeminfo(text: string, file = "/proc/meminfo"): MemoryFigures {
  const kib = new Map<string, number>();
  for (const line of text.split("\n")) {
    const match = /^([^:\s]+):\s+(\d+)(?:\s+kB)?\s*$/.exec(line);
    if (match?.[1] !== undefined && match[2] !== undefined) kib.set(match[1], Number(match[2]) * 1024);
  }
  const total = kib.get("MemTotal");
  const free = kib.get("MemFree");
  if (total === undefined || free === undefined) {
    throw new Error(`${file} lacks ${total === undefined ? "MemTotal" : "MemFree"}`);
  }
  const buffers = kib.get("Buffers") ?? 0;
  const cachedOnly = kib.get("Cached") ?? 0;
  const cached = cachedOnly + (kib.get("SReclaimable") ?? 0);
  let used = total - free - cached - buffers;
  if (used < 0) used = total - free;

  let available = kib.get("MemAvailable") ?? 0;
  // Kernels before 3.14 have no MemAvailable, and some report 0. psutil then estimates from
  // /proc/zoneinfo watermarks; we take its own last-resort estimate, free + Cached.
  if (available === 0) available = free + cachedOnly;
  // More available than total is a container's distorted view; psutil (like `free`) uses free.
  if (available > total) available = free;

  return {
    totalBytes: total,
    usedBytes: used,
    availableBytes: available,
    percent: percentOf(total - available, total),
  };
}

/** Memory figures where only total and free memory are known (`os` module, non-Linux). */
export function memoryFromOs(totalBytes: number, freeBytes: number): MemoryFigures {
  const used = Math.max(0, totalBytes - freeBytes);
  return { totalBytes, usedBytes: used, availableBytes: freeBytes, percent: percentOf(used, totalBytes) };
}

/**
 * psutil's `disk_usage()`: used counts blocks taken by anyone (root's reserve too), free only
 * what an unprivileged user may still fill, so used + free can be less than total.
 */
export function diskFromStatfs(stats: StatfsFigures): DiskFigures {
  const total = stats.blocks * stats.bsize;
  const used = (stats.blocks - stats.bfree) * stats.bsize;
  const free = stats.bavail * stats.bsize;
  return { totalBytes: total, usedBytes: used, freeBytes: free, percent: percentOf(used, used + free) };
}

/** psutil's `usage_percent(part, whole, round_=1)`: 0 when whole is 0. */
function percentOf(part: number, whole: number): number {
  return whole === 0 ? 0 : roundToTenth((part / whole) * 100);
}

/** Python's `round(x, 1)`: the nearest tenth of x's exact value, a tie going to the even tenth. */
function roundToTenth(x: number): number {
  // A double lies exactly halfway between two tenths only when it is an odd number of quarters
  // (x.25, x.75); there toFixed would round up where Python rounds to even.
  const quarters = x * 4;
  if (Number.isInteger(quarters) && quarters % 2 !== 0) {
    const below = Math.floor(x * 10);
    return (below % 2 === 0 ? below : below + 1) / 10;
  }
  // toFixed rounds the exact binary value, like Python; Number() brings back the nearest double.
  return Number(x.toFixed(1));
}

async function readText(file: string): Promise<string> {
  try {
    return await readFile(file, "utf8");
  } catch (error) {
    throw new Error(`cannot read ${file}: ${describe(error)}`, { cause: error });
  }
}

function describe(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    return code === undefined ? error.message : `${code} (${error.message})`;
  }
  return String(error);
}
