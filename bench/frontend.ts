import autocannon from "autocannon";
import { builtIsFresh } from "./lib/built.js";
import { startChild, TSX, type Child } from "./lib/child.js";
import { pacedLoad } from "./lib/paced.js";
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

interface Target {
  name: "direct" | "serve-metrics" | "http-proxy";
  url: string;
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
 * Throughput and added latency of the inference frontend against http-proxy, both in their own
 * process in front of one worker process, driven by autocannon from this process: first the top
 * rate at 32 connections, then latency at half of serve-metrics' top rate, for both proxies and
 * for the worker alone (added latency = proxied − direct, percentile by percentile).
 */
export const frontend: Scenario = async ({ quick, log }) => {
  const t = quick ? QUICK : FULL;
  const children: Child<{ url: string }>[] = [];
  try {
    const worker = await startChild<{ url: string }>(TSX, "bench/child/worker.ts", []);
    children.push(worker);
    const proxies = await Promise.all(
      (["serve-metrics", "http-proxy"] as const).map((kind) =>
        startChild<{ url: string }>(TSX, "bench/child/proxy.ts", [
          kind,
          worker.ready.url,
          String(CONNECTIONS),
        ]),
      ),
    );
    children.push(...proxies);
    const targets: Target[] = [
      { name: "direct", url: worker.ready.url },
      { name: "serve-metrics", url: proxies[0]?.ready.url ?? "" },
      { name: "http-proxy", url: proxies[1]?.ready.url ?? "" },
    ];

    for (const target of targets) {
      log(`frontend: warm-up ${target.name}`);
      await cannon(target, { duration: t.warmupS });
    }
    const top = new Map<string, number[]>(targets.map((x) => [x.name, []]));
    for (let round = 0; round < t.rounds; round++) {
      for (const target of rotated(targets, round)) {
        log(`frontend: throughput ${target.name}, round ${round + 1}/${t.rounds}`);
        const result = await cannon(target, { duration: t.throughputS });
        top.get(target.name)?.push(result.rps);
      }
    }
    const topRate = (name: string): number => median(top.get(name) ?? []);
    const rate = Math.max(1, Math.round(topRate("serve-metrics") / 2));

    // Latency at one rate for all three, so the worker's own share can be subtracted. Percentiles
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
      caption: `Top rate, ${CONNECTIONS} connections, median of ${t.rounds} × ${t.throughputS} s:`,
      header: ["target", "req/s", "vs http-proxy"],
      rows: targets.map((x) => [
        x.name,
        fmt(topRate(x.name)),
        times(ratio(topRate(x.name), topRate("http-proxy"))),
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
    const checks: Check[] = [
      { target: "frontend throughput ≥ 1.0× http-proxy", measured: times(tpRatio), pass: tpRatio >= 1 },
      ...(["paced", "cannon"] as const).map((load) => {
        const added = stat(load, "serve-metrics", "p99", true);
        return {
          target: `frontend p99 added latency ≤ 1 ms at half top rate (${load === "paced" ? "paced load" : "autocannon overallRate"})`,
          measured: `${fmt(added, 2)} ms`,
          pass: added <= 1,
        };
      }),
    ];
    return {
      title: "Frontend: inference requests through a proxy",
      notes: [
        `\`POST ${PATH}\` with a ${Buffer.byteLength(BODY)}-byte JSON body to a one-process worker ` +
          "(bench/child/worker.ts: reads the body, answers a fixed JSON) directly, through serve-metrics' " +
          `inference frontend (a \`url\` model with ${CONNECTIONS} worker slots) and through http-proxy ` +
          `(keep-alive agent, ${CONNECTIONS} sockets); each proxy in its own process, autocannon in this one. ` +
          "Targets in turn with a rotating first. serve-metrics ran " +
          (builtIsFresh()
            ? "from `dist/` (built by `npm run bench`), as `npm start` runs it."
            : "from `src/` through tsx."),
        "Latencies are autocannon's per-response times (sub-millisecond; its histogram keeps whole " +
          "milliseconds). autocannon's `overallRate` lets every connection send its quota for the second " +
          "back to back and then wait, so half the rate means full load half of each second: those " +
          "percentiles include queueing. The paced load sends the same rate evenly (open loop), which is " +
          "what added latency at half load means; both are shown. On a 2-core machine shared by the " +
          "load generator, both proxies and the worker, p99 is mostly scheduling noise; p50 and p90 are steadier.",
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
