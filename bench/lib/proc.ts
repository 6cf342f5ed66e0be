import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** CPU time and memory of a process, from /proc (Linux). */
export interface ProcSample {
  /** User + system CPU time of all its threads, in seconds. */
  cpuS: number;
  /** Resident set size, in bytes. */
  rssBytes: number;
  /** When it was read, `performance.now()`-like milliseconds. */
  atMs: number;
}

const clockTicks = ((): number => {
  try {
    return Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim()) || 100;
  } catch {
    return 100; // USER_HZ on every Linux architecture Node runs on
  }
})();

/** Reads `/proc/<pid>/stat` (utime, stime) and `/proc/<pid>/status` (VmRSS). */
export function procSample(pid: number): ProcSample {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces and parentheses; the fields after its last ")" do not.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 of what follows the name.
  const ticks = Number(fields[11]) + Number(fields[12]);
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const rssKb = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? NaN);
  return { cpuS: ticks / clockTicks, rssBytes: rssKb * 1024, atMs: performance.now() };
}

/** CPU used between two samples, in % of one core. */
export function cpuPercent(before: ProcSample, after: ProcSample): number {
  const wallS = (after.atMs - before.atMs) / 1000;
  return wallS > 0 ? ((after.cpuS - before.cpuS) / wallS) * 100 : NaN;
}
