/**
 * CPU profile of a proxy under load: `node --import tsx bench/profile-frontend.ts [kind] [seconds]`.
 * Starts the bench worker, runs bench/child/proxy.ts <kind> under `node --cpu-prof`, loads it with
 * autocannon (32 connections) and prints the functions with the most self time.
 */
import { readdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import autocannon from "autocannon";
import { startChild, TSX } from "./lib/child.js";

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  timeDeltas: number[];
}

const kind = process.argv[2] ?? "serve-metrics";
const seconds = Number(process.argv[3] ?? "10");
const dir = join("bench/profiles", `frontend-${kind}`);
rmSync(dir, { recursive: true, force: true });
const worker = await startChild<{ url: string }>(TSX, "bench/child/worker.ts", []);
const proxy = await startChild<{ url: string }>(
  ["--cpu-prof", "--cpu-prof-dir", dir, ...TSX],
  "bench/child/proxy.ts",
  [kind, worker.ready.url, "32"],
);
const result = await autocannon({
  url: `${proxy.ready.url}/predictions/bench`,
  method: "POST",
  headers: { "content-type": "application/json" },
  body: JSON.stringify({ text: "what a wonderful, delightful day" }),
  connections: 32,
  duration: seconds,
});
process.stdout.write(
  `${kind}: ${Math.round(result.requests.average)} req/s, ${result.errors} errors, ${result.non2xx} non-2xx\n`,
);
await proxy.stop(20_000);
await worker.stop();
const file = readdirSync(dir).find((f) => f.endsWith(".cpuprofile"));
if (file === undefined) throw new Error("no profile written");
const profile = JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile;
const frame = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
const parent = new Map<number, number>();
for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
const self = new Map<string, number>();
const inclusive = new Map<string, number>();
let total = 0;
profile.samples.forEach((id, i) => {
  const f = frame.get(id);
  const us = profile.timeDeltas[i] ?? 0;
  if (f === undefined || f.functionName === "(idle)" || f.functionName === "(program)") return;
  total += us;
  const key = (x: { functionName: string; url: string; lineNumber: number }): string =>
    `${x.functionName || "(anon)"} ${x.url.replace(/^.*node_modules\//, "").replace(/^.*\/wt-proxy\//, "")}:${x.lineNumber + 1}`;
  self.set(key(f), (self.get(key(f)) ?? 0) + us);
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const g = frame.get(at);
    if (g === undefined) continue;
    const k = key(g);
    if (seen.has(k)) continue;
    seen.add(k);
    inclusive.set(k, (inclusive.get(k) ?? 0) + us);
  }
});
const show = (m: Map<string, number>, n: number): void => {
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, n)) {
    process.stdout.write(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${k}\n`);
  }
};
process.stdout.write(`busy ${Math.round(total / 1000)} ms; self:\n`);
show(self, 40);
process.stdout.write("inclusive:\n");
show(inclusive, 60);
