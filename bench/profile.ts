/**
 * CPU profile of the scrape path: `node --import tsx bench/profile.ts [--series 10000] [--scrapes 200] [--changed] [--protobuf]`.
 * With `--changed` every series gets a new value before each scrape; that recording is left out
 * of the figures, which count only the samples taken while a measured GET was under way. With
 * `--protobuf` the scrapes ask for the delimited protobuf exposition, as Prometheus does with native
 * histograms on.
 * Runs bench/child/scrape-load.ts under `node --cpu-prof`, writes the profile under bench/profiles/
 * (open it in Chrome DevTools or VS Code) and prints the functions with the most self time, and
 * the self time by whose code it is (the OpenTelemetry SDK's, serve-metrics', Node's, GC).
 */
import { mkdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startChild, TSX } from "./lib/child.js";
import { fmt, markdownTable } from "./lib/report.js";
import { median } from "./lib/stats.js";

/** The parts of V8's `.cpuprofile` format read here. */
interface CpuProfile {
  /** Monotonic clock, µs, when profiling began; sample times are this plus the running sum of timeDeltas. */
  startTime: number;
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  samples: number[];
  /** Microseconds since the previous sample, one per sample. */
  timeDeltas: number[];
}

/** A span of the profiler's clock, in µs: [from, to]. */
type Window = readonly [number, number];

/** Self time by function (name, file, line) of the samples taken in any of `windows`, most first. */
export function selfTimes(
  profile: CpuProfile,
  windows: readonly Window[] = [[-Infinity, Infinity]],
): { name: string; where: string; ms: number; share: number }[] {
  const frameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  let totalUs = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    const frame = frameOf.get(id);
    const us = profile.timeDeltas[i] ?? 0;
    at += us;
    if (!windows.some(([from, to]) => at >= from && at <= to)) return;
    // Idle time is the event loop waiting, not work of the scrape path.
    if (frame === undefined || frame.functionName === "(idle)") return;
    totalUs += us;
    const caller = frame.url === "" ? callerName(id) : undefined;
    const where =
      frame.url !== "" ? location(frame.url, frame.lineNumber) : caller === undefined ? "" : `in ${caller}`;
    const key = `${frame.functionName}@${where}`;
    const entry = byFunction.get(key) ?? { name: frame.functionName || "(anonymous)", where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
  });
  // Built-ins (a RegExp, a string method) have no file: the JavaScript function that called them says more.
  function callerName(id: number): string | undefined {
    for (let at = parentOf.get(id); at !== undefined; at = parentOf.get(at)) {
      const frame = frameOf.get(at);
      if (frame !== undefined && frame.url !== "") return frame.functionName || "(anonymous)";
    }
    return undefined;
  }
  return [...byFunction.values()]
    .sort((a, b) => b.us - a.us)
    .map((e) => ({ name: e.name, where: e.where, ms: e.us / 1000, share: totalUs > 0 ? e.us / totalUs : 0 }));
}

/** File and line; TypeScript run through tsx is profiled as its transpiled output, so its lines are left out. */
function location(url: string, line: number): string {
  const path = url.startsWith("file://") ? fileURLToPath(url) : url;
  const rel = relative(process.cwd(), path);
  const shown = rel.startsWith("..") ? path : rel;
  return shown.endsWith(".ts") ? shown : `${shown}:${line + 1}`;
}

/** Whose code a function is, by where it is: for the share of the SDK's collection in a scrape. */
function owner(where: string): string {
  if (where.includes("@opentelemetry/")) return "OpenTelemetry SDK";
  if (where.startsWith("src/")) return "serve-metrics (src/)";
  if (where === "") return "GC, idle and VM";
  return "Node (http, streams, buffers) and the rest";
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      series: { type: "string", default: "10000" },
      scrapes: { type: "string", default: "200" },
      changed: { type: "boolean", default: false },
      protobuf: { type: "boolean", default: false },
    },
  });
  const variant = values.changed ? "changed" : "unchanged";
  const dir = "bench/profiles";
  const format = values.protobuf ? "protobuf" : "text";
  const name = `scrape-${values.series}-${variant}${values.protobuf ? "-protobuf" : ""}.cpuprofile`;
  mkdirSync(dir, { recursive: true });
  const child = await startChild<{ ms: number[]; windows: Window[] }>(
    ["--cpu-prof", "--cpu-prof-dir", dir, "--cpu-prof-name", name, ...TSX],
    "bench/child/scrape-load.ts",
    [values.series, values.scrapes, variant, format],
    { timeoutMs: 600_000 },
  );
  // The profile is written when the child exits by itself, so wait for that rather than stop it.
  await new Promise((resolve) => {
    if (child.process.exitCode !== null) resolve(undefined);
    else child.process.once("exit", resolve);
  });
  const path = join(dir, name);
  const { windows } = child.ready;
  const all = selfTimes(JSON.parse(readFileSync(path, "utf8")) as CpuProfile, windows);
  const scrapes = windows.length;
  const spent = windows.reduce((sum, [from, to]) => sum + (to - from), 0) / 1000;
  process.stdout.write(
    `${values.scrapes} scrapes of ${values.series} ${variant} series, median ${fmt(median(child.ready.ms))} ms; ` +
      `profile: ${path}; self time during the GETs only, ${fmt(spent)} ms in all ` +
      "(module loading, setup, warm-up scrapes and the recording between scrapes left out):\n\n",
  );
  process.stdout.write(
    `${markdownTable({
      header: ["self ms", "per scrape ms", "% of busy", "function", "where"],
      rows: all
        .slice(0, 20)
        .map((t) => [fmt(t.ms), fmt(t.ms / scrapes), `${(t.share * 100).toFixed(1)}%`, t.name, t.where]),
    })}\n\n`,
  );
  const byOwner = new Map<string, { ms: number; share: number }>();
  for (const t of all) {
    const entry = byOwner.get(owner(t.where)) ?? { ms: 0, share: 0 };
    entry.ms += t.ms;
    entry.share += t.share;
    byOwner.set(owner(t.where), entry);
  }
  process.stdout.write(
    `${markdownTable({
      header: ["whose code", "per scrape ms", "% of busy"],
      rows: [...byOwner]
        .sort((a, b) => b[1].ms - a[1].ms)
        .map(([who, t]) => [who, fmt(t.ms / scrapes), `${(t.share * 100).toFixed(1)}%`]),
    })}\n`,
  );
}

await main();
