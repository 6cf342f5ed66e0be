// The service's CPU and memory in the two shapes docs/deploy.md sizes Kubernetes requests and
// limits for: the sidecar following TorchServe's log files (idle, then 1,000 and 5,000 requests/s of
// lines), and the inference frontend in front of the two demo workers (idle, then autocannon).
//   npm run build && node --import tsx bench/footprint.ts
// Prints one Markdown table. CPU from /proc/<pid>/stat, RSS and its peak (VmHWM) from
// /proc/<pid>/status; for the frontend, its workers and guardian are added (they share the pod's limit).
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import autocannon from "autocannon";

import { log4jTime, requestLines } from "../test/support/torchserve-log-writer.js";
import { procSample } from "./lib/proc.js";

const CLI = join(import.meta.dirname, "../dist/cli.js");
const rows: string[] = [];

/** The pid and every descendant's (workers, the guardian), from /proc/<pid>/task/<tid>/children. */
function family(pid: number): number[] {
  const kids = readdirSync(`/proc/${pid}/task`).flatMap((tid) => {
    try {
      return readFileSync(`/proc/${pid}/task/${tid}/children`, "utf8").split(" ").filter(Boolean).map(Number);
    } catch {
      return [];
    }
  });
  return [pid, ...kids.flatMap(family)];
}

function peakRssMiB(pids: number[]): number {
  return pids.reduce((sum, pid) => {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    return sum + Number(/^VmHWM:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024;
  }, 0);
}

/** CPU % of one core and RSS (MiB, summed) of `pids` over `seconds` while `during` runs. */
async function measure(
  what: string,
  pids: () => number[],
  seconds: number,
  during: Promise<unknown> = sleep(seconds * 1000),
): Promise<void> {
  const before = pids().map(procSample);
  const t0 = performance.now();
  await during;
  const wallS = (performance.now() - t0) / 1000;
  const after = pids().map(procSample);
  const cpuS = after.reduce((s, p) => s + p.cpuS, 0) - before.reduce((s, p) => s + p.cpuS, 0);
  const rss = after.reduce((s, p) => s + p.rssBytes, 0) / 2 ** 20;
  const row = `| ${what} | ${((cpuS / wallS) * 100).toFixed(1)} | ${rss.toFixed(0)} | ${peakRssMiB(pids()).toFixed(0)} | ${loadavg()[0]?.toFixed(2)} |`;
  rows.push(row);
  console.error(row);
}

function start(config: string): Promise<{ child: ChildProcess; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), "footprint-"));
  const file = join(dir, "config.properties");
  writeFileSync(file, config);
  const child = spawn(process.execPath, [CLI, "--ts-config", file], { stdio: ["ignore", "ignore", "pipe"] });
  return new Promise((resolve, reject) => {
    let seen = "";
    child.stderr.on("data", (d: Buffer) => {
      seen = (seen + d.toString()).slice(-4096);
      const m = /inference API listening on (\S+)/.exec(seen) ?? /metrics API listening on (\S+)/.exec(seen);
      if (m && (!config.includes("models=") || /ready in/.test(seen))) resolve({ child, url: m[1] ?? "" });
    });
    child.once("exit", () => reject(new Error(seen)));
  });
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((r) => child.once("exit", r));
  child.kill("SIGTERM");
  await exited;
}

/** Appends TorchServe's nine lines per request at `rate` requests/s for `seconds`, in 100 ms batches. */
async function writeRequests(logs: string, rate: number, seconds: number, from: number): Promise<void> {
  const perBatch = rate / 10;
  for (let batch = 0; batch < seconds * 10; batch++) {
    const next = performance.now() + 100;
    const files = { ts_metrics: "", model_metrics: "", access_log: "" };
    for (let i = 0; i < perBatch; i++) {
      const lines = requestLines(from + batch * perBatch + i);
      const time = log4jTime(new Date());
      for (const key of ["ts_metrics", "model_metrics", "access_log"] as const)
        for (const line of lines[key]) files[key] += `${time} - ${line}\n`;
    }
    await Promise.all(
      Object.entries(files).map(([name, text]) => appendFile(join(logs, `${name}.log`), text)),
    );
    await sleep(Math.max(0, next - performance.now()));
  }
}

async function sidecar(): Promise<void> {
  const logs = mkdtempSync(join(tmpdir(), "footprint-logs-"));
  for (const name of ["ts_metrics", "model_metrics", "access_log"])
    writeFileSync(join(logs, `${name}.log`), "");
  const { child } = await start(`metrics_address=http://127.0.0.1:0\ntorchserve_log_dir=${logs}\n`);
  const pid = (): number[] => [child.pid ?? 0];
  await sleep(5000);
  await measure("sidecar, idle (30 s)", pid, 30);
  await measure(
    "sidecar, 1,000 requests/s of TorchServe lines (30 s)",
    pid,
    30,
    writeRequests(logs, 1000, 30, 0),
  );
  await measure(
    "sidecar, 5,000 requests/s of TorchServe lines (20 s)",
    pid,
    20,
    writeRequests(logs, 5000, 20, 1e6),
  );
  await stop(child);
}

async function frontend(): Promise<void> {
  const demo = readFileSync(join(import.meta.dirname, "../examples/demo.properties"), "utf8");
  const { child, url } = await start(
    `${demo}\ninference_address=http://127.0.0.1:0\nmetrics_address=http://127.0.0.1:0\nnumber_of_gpu=0\n`,
  );
  const pids = (): number[] => family(child.pid ?? 0);
  await sleep(5000);
  await measure("frontend + 2 demo workers, idle (30 s)", pids, 30);
  const load = autocannon({
    url: `${url}/predictions/demo`,
    method: "POST",
    body: "what a wonderful, delightful day",
    connections: 16,
    duration: 30,
  });
  await measure("frontend + 2 demo workers, autocannon 16 connections (30 s)", pids, 30, load);
  const result = await load;
  rows.push(`|   (${Math.round(result.requests.average)} requests/s, ${result.non2xx} not 2xx) | | | | |`);
  await stop(child);
}

await sidecar();
await frontend();
console.log(
  `Node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? "?"}, ${new Date().toISOString().slice(0, 10)}\n\n` +
    "| what | CPU % of one core | RSS at end (MiB) | peak RSS (MiB) | load (1 min) |\n|---|---|---|---|---|\n" +
    rows.join("\n"),
);
