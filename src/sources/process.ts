import { readdir, readFile } from "node:fs/promises";

/** One reading of this process, in base units. Fields the OS does not offer are undefined. */
export interface ProcessSample {
  /** User plus system CPU time since the process started, in seconds. */
  cpuSeconds: number;
  /** Resident set size, in bytes. */
  residentBytes: number;
  /** When the process started, in seconds since the epoch. */
  startTimeSeconds: number;
  /** Open file descriptors (entries of /proc/self/fd); undefined without /proc. */
  openFds: number | undefined;
  /** The soft limit on open file descriptors (/proc/self/limits); undefined without /proc. */
  maxFds: number | undefined;
}

/** Where {@link readProcess} reads the descriptor figures; tests point it at fixtures. */
export interface ProcPaths {
  /** Default `/proc/self/fd`. */
  fdDirectory: string;
  /** Default `/proc/self/limits`. */
  limitsFile: string;
}

const SELF: ProcPaths = { fdDirectory: "/proc/self/fd", limitsFile: "/proc/self/limits" };

/** Reads this process' CPU time, memory and descriptors: two syscalls and two small /proc reads. */
export async function readProcess(paths: ProcPaths = SELF): Promise<ProcessSample> {
  const cpu = process.cpuUsage();
  const [openFds, maxFds] = await Promise.all([
    countOpenFds(paths.fdDirectory),
    readFile(paths.limitsFile, "utf8").then(parseMaxOpenFiles, () => undefined),
  ]);
  return {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    residentBytes: process.memoryUsage.rss(),
    startTimeSeconds: performance.timeOrigin / 1000,
    openFds,
    maxFds,
  };
}

/** Entries of the fd directory, less the one readdir itself holds open while it lists. */
async function countOpenFds(directory: string): Promise<number | undefined> {
  try {
    const entries = await readdir(directory);
    return directory === SELF.fdDirectory ? entries.length - 1 : entries.length;
  } catch {
    return undefined;
  }
}

/**
 * The soft limit of the `Max open files` row of a /proc/<pid>/limits text; undefined when the row
 * is missing or says `unlimited`.
 */
export function parseMaxOpenFiles(limits: string): number | undefined {
  const row = /^Max open files\s+(\S+)/m.exec(limits);
  const value = Number(row?.[1]);
  return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}
