import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { builtIsFresh } from "./lib/built.js";
import { startChild, TSX, type Child } from "./lib/child.js";
import { pacedLoad } from "./lib/paced.js";
import { procSample } from "./lib/proc.js";
import { fmt, times, type Check, type Scenario, type Table } from "./lib/report.js";
import { median, quantile, ratio, rotated } from "./lib/stats.js";

/** Which load generator a latency figure came from. */
type Load = "cannon" | "paced";

/** Latency percentiles of one run, in milliseconds, and the rate it achieved. */
interface Percentiles {
  rate: number;
  p50: number;
  p90: number;
  p99: number;
}

function percentiles(latenciesMs: readonly number[], rate: number): Percentiles {
  return {
    rate,
    p50: quantile(latenciesMs, 0.5),
    p90: quantile(latenciesMs, 0.9),
    p99: quantile(latenciesMs, 0.99),
  };
}

/** Concurrency of the throughput runs (and the proxies' connection cap to the worker). */
const CONNECTIONS = 32;
const BODY = JSON.stringify({ text: "what a wonderful, delightful day" });
const PATH = "/predictions/bench";

/** The proxies, each in its own process; serve-metrics first. */
const PROXIES = ["serve-metrics", "http-proxy", "reply-from", "undici"] as const;
type Proxy = (typeof PROXIES)[number];
/** The peers other than serve-metrics, whose best is the bar. */
const PEERS = ["http-proxy", "reply-from", "undici"] as const;

interface Target {
  name: "direct" | Proxy;
  url: string;
  /** The process that serves it (the worker itself for direct), whose CPU time is read. */
  pid: number;
}

/** An installed package's version, from its package.json. */
function version(name: string): string {
  const path = new URL(`../node_modules/${name}/package.json`, import.meta.url);
  return (JSON.parse(readFileSync(path, "utf8")) as { version: string }).version;
}

interface Timings {
  warmupS: number;
  throughputS: number;
  latencyS: number;
  rounds: number;
}

const FULL: Timings = { warmupS: 2, throughputS: 5, latencyS: 4, rounds: 5 };
const QUICK: Timings = { warmupS: 0.5, throughputS: 1, latencyS: 1, rounds: 1 };

/**
 * Throughput and added latency of the inference frontend against http-proxy, @fastify/reply-from
 * and a plain undici proxy, each in its own process in front of one worker process, driven by
 * autocannon from this process: first the top rate at 32 connections (and each proxy's CPU time
 * per request), then latency at half of serve-metrics' top rate, for every proxy and for the
 * worker alone (added latency = proxied − direct, percentile by percentile).
 */
export const frontend: Scenario = async ({ quick, log }) => {
  const t = quick ? QUICK : FULL;
  const children: Child<{ url: string }>[] = [];
  try {
    const worker = await startChild<{ url: string }>(TSX, "bench/child/worker.ts", []);
    children.push(worker);
    const proxies = await Promise.all(
      PROXIES.map((kind) =>
        startChild<{ url: string }>(TSX, "bench/child/proxy.ts", [
          kind,
          worker.ready.url,
          String(CONNECTIONS),
        ]),
      ),
    );
    children.push(...proxies);
    const targets: Target[] = [
      { name: "direct", url: worker.ready.url, pid: worker.pid },
      ...PROXIES.map((name, i) => ({ name, url: proxies[i]?.ready.url ?? "", pid: proxies[i]?.pid ?? 0 })),
    ];

    for (const target of targets) {
      log(`frontend: warm-up ${target.name}`);
      await cannon(target, { duration: t.warmupS });
    }
    const top = new Map<string, number[]>(targets.map((x) => [x.name, []]));
    // CPU time per request of the proxy process (of the worker, for direct): what each proxy costs,
    // which moves less than its rate when other processes take the cores.
    const cpu = new Map<string, number[]>(targets.map((x) => [x.name, []]));
    for (let round = 0; round < t.rounds; round++) {
      for (const target of rotated(targets, round)) {
        log(`frontend: throughput ${target.name}, round ${round + 1}/${t.rounds}`);
        const before = procSample(target.pid);
        const result = await cannon(target, { duration: t.throughputS });
        const after = procSample(target.pid);
        top.get(target.name)?.push(result.rps);
        cpu.get(target.name)?.push(((after.cpuS - before.cpuS) * 1e6) / (result.rps * t.throughputS));
      }
    }
    const topRate = (name: string): number => median(top.get(name) ?? []);
    const cpuPerRequest = (name: string): number => median(cpu.get(name) ?? []);
    const rate = Math.max(1, Math.round(topRate("serve-metrics") / 2));

    // Latency at one rate for all targets, so the worker's own share can be subtracted. Percentiles
    // are taken per run and paired within a round (all three back to back), then the median over
    // rounds is kept: one round disturbed by another process then moves nothing.
    const runs: Record<Load, Map<string, Percentiles[]>> = {
      cannon: new Map(targets.map((x) => [x.name, []])),
      paced: new Map(targets.map((x) => [x.name, []])),
    };
    for (let round = 0; round < t.rounds; round++) {
      for (const target of rotated(targets, round)) {
        log(`frontend: latency ${target.name} at ${rate} req/s, round ${round + 1}/${t.rounds}`);
        const burst = await cannon(target, { duration: t.latencyS, overallRate: rate });
        runs.cannon
          .get(target.name)
          ?.push(percentiles(burst.latenciesMs, burst.latenciesMs.length / t.latencyS));
        const paced = await pacedLoad(`${target.url}${PATH}`, {
          rate,
          durationMs: t.latencyS * 1000,
          connections: CONNECTIONS,
          method: "POST",
          body: BODY,
        });
        if (paced.errors > 0) throw new Error(`${target.name}: ${paced.errors} failed requests`);
        runs.paced.get(target.name)?.push(percentiles(paced.latenciesMs, paced.rate));
      }
    }

    const throughput: Table = {
      caption:
        `Top rate, ${CONNECTIONS} connections, median of ${t.rounds} × ${t.throughputS} s; CPU µs/req: ` +
        "user + system CPU time of the proxy's process (of the worker's, for direct) per request, median over the same runs:",
      header: [
        "target",
        "req/s",
        "vs http-proxy",
        "serve-metrics vs it",
        "CPU µs/req",
        "serve-metrics' CPU vs it",
      ],
      rows: targets.map((x) => [
        x.name,
        fmt(topRate(x.name)),
        times(ratio(topRate(x.name), topRate("http-proxy"))),
        times(ratio(topRate("serve-metrics"), topRate(x.name))),
        fmt(cpuPerRequest(x.name)),
        x.name === "direct" ? "" : times(ratio(cpuPerRequest("serve-metrics"), cpuPerRequest(x.name))),
      ]),
    };
    /** Median over rounds of one percentile, or of its difference from the direct run of the same round. */
    const stat = (load: Load, name: string, key: keyof Percentiles, minusDirect = false): number => {
      const mine = runs[load].get(name) ?? [];
      const direct = runs[load].get("direct") ?? [];
      return median(mine.map((p, i) => p[key] - (minusDirect ? (direct[i]?.[key] ?? NaN) : 0)));
    };
    const latency: Table = {
      caption:
        `Latency at ${rate} req/s (half of serve-metrics' top rate), ${t.rounds} rounds × ${t.latencyS} s; ` +
        "medians over rounds, added = target − direct in the same round:",
      header: [
        "load",
        "target",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "added p50",
        "added p90",
        "added p99",
      ],
      rows: (["cannon", "paced"] as const).flatMap((load) =>
        targets.map((x) => {
          const added = (key: keyof Percentiles): string =>
            x.name === "direct" ? "" : fmt(stat(load, x.name, key, true), 2);
          return [
            load === "cannon" ? "autocannon overallRate" : "paced (even)",
            x.name,
            fmt(stat(load, x.name, "rate")),
            fmt(stat(load, x.name, "p50")),
            fmt(stat(load, x.name, "p90")),
            fmt(stat(load, x.name, "p99")),
            added("p50"),
            added("p90"),
            added("p99"),
          ];
        }),
      ),
    };

    const tpRatio = ratio(topRate("serve-metrics"), topRate("http-proxy"));
    const fastest = PEERS.reduce((a, b) => (topRate(b) > topRate(a) ? b : a));
    const peerRatio = ratio(topRate("serve-metrics"), topRate(fastest));
    const addedP50 = stat("paced", "serve-metrics", "p50", true);
    const addedP99 = stat("paced", "serve-metrics", "p99", true);
    const bestP99 = PEERS.reduce((a, b) =>
      stat("paced", b, "p99", true) < stat("paced", a, "p99", true) ? b : a,
    );
    const peerP99 = stat("paced", bestP99, "p99", true);
    const checks: Check[] = [
      { target: "frontend throughput ≥ 1.5× http-proxy", measured: times(tpRatio), pass: tpRatio >= 1.5 },
      {
        target: `frontend throughput ≥ 1.0× the fastest peer (${fastest})`,
        measured: times(peerRatio),
        pass: peerRatio >= 1,
      },
      {
        target: "frontend added p50 ≤ 0.3 ms at half top rate (paced load)",
        measured: `${fmt(addedP50, 2)} ms`,
        pass: addedP50 <= 0.3,
      },
      {
        target: `frontend added p99 ≤ the best peer's (${bestP99}: ${fmt(peerP99, 2)} ms) at half top rate (paced load)`,
        measured: `${fmt(addedP99, 2)} ms`,
        pass: addedP99 <= peerP99,
      },
    ];
    return {
      title: "Frontend: inference requests through a proxy",
      notes: [
        `\`POST ${PATH}\` with a ${Buffer.byteLength(BODY)}-byte JSON body to a one-process worker ` +
          "(bench/child/worker.ts: reads the body, answers a fixed JSON) directly, through serve-metrics' " +
          `inference frontend (a \`url\` model with ${CONNECTIONS} worker slots), through http-proxy ${version("http-proxy")} ` +
          `(keep-alive agent, ${CONNECTIONS} sockets), through @fastify/reply-from ${version("@fastify/reply-from")} ` +
          `on fastify ${version("fastify")} (undici ${version("undici")} underneath, ${CONNECTIONS} connections, ` +
          "body not parsed) and through a plain undici Pool behind node:http (the same undici, " +
          `${CONNECTIONS} connections, hop-by-hop headers dropped); each proxy in its own process, ` +
          `autocannon ${version("autocannon")} in this one, Node ${process.version}. ` +
          "Targets in turn with a rotating first. serve-metrics ran " +
          (builtIsFresh()
            ? "from `dist/` (built by `npm run bench`), as `npm start` runs it."
            : "from `src/` through tsx."),
        "Latencies are autocannon's per-response times (sub-millisecond; its histogram keeps whole " +
          "milliseconds). autocannon's `overallRate` lets every connection send its quota for the second " +
          "back to back and then wait, so half the rate means full load half of each second: those " +
          "percentiles include queueing. The paced load sends the same rate evenly (open loop), which is " +
          "what added latency at half load means; both are shown. On a 2-core machine shared by the " +
          "load generator, the proxies and the worker, p99 is mostly scheduling noise; p50 and p90 are steadier.",
      ],
      tables: [throughput, latency],
      checks,
    };
  } finally {
    await Promise.all(children.map((c) => c.stop()));
  }
};

/** One autocannon run against a target; latencies collected from its response events. */
function cannon(
  target: Target,
  options: { duration: number; overallRate?: number },
): Promise<{ rps: number; latenciesMs: number[] }> {
  return new Promise((resolve, reject) => {
    const latenciesMs: number[] = [];
    const instance = autocannon(
      {
        url: `${target.url}${PATH}`,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: BODY,
        connections: CONNECTIONS,
        duration: options.duration,
        ...(options.overallRate !== undefined && { overallRate: options.overallRate }),
      },
      (err, result) => {
        if (err !== null && err !== undefined) {
          reject(err instanceof Error ? err : new Error(String(err)));
          return;
        }
        if (result.errors > 0 || result.non2xx > 0) {
          reject(new Error(`${target.name}: ${result.errors} errors, ${result.non2xx} non-2xx responses`));
          return;
        }
        resolve({ rps: result.requests.total / result.duration, latenciesMs });
      },
    );
    instance.on("response", (_client, status, _bytes, responseTime) => {
      if (status >= 200 && status < 300) latenciesMs.push(responseTime);
    });
  });
}
