import { forceGc } from "./lib/gc.js";
import { KeepAliveClient } from "./lib/http-client.js";
import { startPeer, type PeerKind, type ScrapePeer } from "./lib/peers.js";
import { bytes, count, fmt, times, type Check, type Scenario, type Table } from "./lib/report.js";
import { median, quantile, ratio, rotated } from "./lib/stats.js";

/** One series count and how many scrapes it gets. */
interface Plan {
  series: number;
  warmup: number;
  rounds: number;
}

const FULL: readonly Plan[] = [
  { series: 1_000, warmup: 10, rounds: 100 },
  { series: 10_000, warmup: 5, rounds: 40 },
  { series: 100_000, warmup: 2, rounds: 10 },
];
const QUICK: readonly Plan[] = [
  { series: 1_000, warmup: 3, rounds: 15 },
  { series: 10_000, warmup: 2, rounds: 6 },
];

const KINDS: readonly PeerKind[] = ["serve-metrics", "prom-client", "otel-exporter"];

/** `unchanged`: the same values every scrape; `changed`: every series got a new value since the last one. */
type Variant = "unchanged" | "changed";
const VARIANTS: readonly Variant[] = ["unchanged", "changed"];

interface Measured {
  medianMs: number;
  p90Ms: number;
  bytes: number;
}

/**
 * `GET /metrics` end to end over loopback, serve-metrics against prom-client and the stock
 * OpenTelemetry Prometheus exporter, all three in this process with the same series, scraped in
 * turn (rotating who goes first) so that the machine's noise lands on all of them alike.
 */
export const scrape: Scenario = async ({ quick, log }) => {
  const plans = quick ? QUICK : FULL;
  const results = new Map<string, Measured>();
  const key = (series: number, variant: Variant, kind: PeerKind): string => `${series}/${variant}/${kind}`;
  for (const plan of plans) {
    log(`scrape: ${count(plan.series)} series`);
    const peers: ScrapePeer[] = [];
    const client = new KeepAliveClient();
    try {
      for (const kind of KINDS) peers.push(await startPeer(kind, plan.series));
      for (const peer of peers) await checkSeries(client, peer, plan.series);
      for (const variant of VARIANTS) {
        const samples = new Map<ScrapePeer, { ms: number[]; bytes: number }>(
          peers.map((p) => [p, { ms: [], bytes: 0 }]),
        );
        for (let round = 0; round < plan.warmup + plan.rounds; round++) {
          for (const peer of rotated(peers, round)) {
            // Values that differ from the previous scrape's, set outside the timed request.
            if (variant === "changed") peer.setSeries(plan.series, round + 1);
            const timed = await client.get(peer.url);
            if (timed.status !== 200) throw new Error(`${peer.name}: GET /metrics answered ${timed.status}`);
            const into = samples.get(peer);
            if (into !== undefined && round >= plan.warmup) {
              into.ms.push(timed.ms);
              into.bytes = timed.bytes;
            }
          }
        }
        for (const [peer, s] of samples) {
          results.set(key(plan.series, variant, peer.name as PeerKind), {
            medianMs: median(s.ms),
            p90Ms: quantile(s.ms, 0.9),
            bytes: s.bytes,
          });
        }
      }
    } finally {
      client.close();
      for (const peer of peers) await peer.stop();
    }
    // The next size starts from a clean heap, not in the middle of collecting this one's garbage.
    forceGc();
  }

  const get = (series: number, variant: Variant, kind: PeerKind): Measured =>
    results.get(key(series, variant, kind)) ?? { medianMs: NaN, p90Ms: NaN, bytes: NaN };
  const table: Table = {
    header: [
      "series",
      "values",
      "serve-metrics ms (p90)",
      "prom-client ms (p90)",
      "otel exporter ms (p90)",
      "serve-metrics / prom-client",
      "serve-metrics / otel exporter",
      "bytes: serve-metrics / prom-client / otel exporter",
    ],
    rows: [],
  };
  for (const plan of plans) {
    for (const variant of VARIANTS) {
      const [sm, pc, ot] = KINDS.map((k) => get(plan.series, variant, k)) as [Measured, Measured, Measured];
      table.rows.push([
        count(plan.series),
        variant,
        `${fmt(sm.medianMs)} (${fmt(sm.p90Ms)})`,
        `${fmt(pc.medianMs)} (${fmt(pc.p90Ms)})`,
        `${fmt(ot.medianMs)} (${fmt(ot.p90Ms)})`,
        times(ratio(sm.medianMs, pc.medianMs)),
        times(ratio(sm.medianMs, ot.medianMs)),
        `${bytes(sm.bytes)} / ${bytes(pc.bytes)} / ${bytes(ot.bytes)}`,
      ]);
    }
  }

  const checks: Check[] = [];
  for (const variant of VARIANTS) {
    const sm = get(10_000, variant, "serve-metrics").medianMs;
    for (const peer of ["prom-client", "otel-exporter"] as const) {
      const r = ratio(sm, get(10_000, variant, peer).medianMs);
      checks.push({
        target: `scrape 10k series (${variant}) ≤ 0.3× ${peer === "prom-client" ? "prom-client" : "stock otel exporter"}`,
        measured: times(r),
        pass: r <= 0.3,
      });
    }
  }
  const largest = plans[plans.length - 1]?.series ?? 0;
  for (const variant of VARIANTS) {
    if (largest >= 100_000) {
      const ms = get(largest, variant, "serve-metrics").medianMs;
      checks.push({
        target: `scrape 100k series (${variant}) < 1 s`,
        measured: `${fmt(ms)} ms`,
        pass: ms < 1000,
      });
    }
    // Linear growth: ten times the series should cost about ten times as much, not more.
    const r = ratio(
      get(largest, variant, "serve-metrics").medianMs,
      get(largest / 10, variant, "serve-metrics").medianMs,
    );
    checks.push({
      target: `scrape linear (${variant}): t(${count(largest)}) / t(${count(largest / 10)}) ≈ 10 (≤ 12)`,
      measured: times(r),
      pass: r <= 12,
    });
  }

  return {
    title: "Scrape: GET /metrics end to end",
    notes: [
      'One gauge family, `PredictionTime{ModelName="m<i>",Level="Model",Hostname}`, recorded through ' +
        "`service.recordMetric` (serve-metrics), `Gauge.set` on a private `Registry` served with " +
        "`register.metrics()` over node:http (prom-client), and `Gauge.record` on a separate MeterProvider " +
        "served by the stock `PrometheusExporter`'s `getMetricsRequestHandler` (its own server cannot take " +
        "port 0). serve-metrics' body also holds its ~30 other, empty catalog families.",
      "Sequential GETs on one keep-alive connection per server, all three servers in this process, taken in " +
        "turn with a rotating first; medians and p90 over the measured rounds after a warm-up. `changed`: " +
        "every series gets a new value (outside the timed request) before each scrape.",
    ],
    tables: [table],
    checks,
  };
};

/** Fails early when a peer does not expose every series (a cardinality limit would make it look fast). */
async function checkSeries(client: KeepAliveClient, peer: ScrapePeer, series: number): Promise<void> {
  const { body = "" } = await client.get(peer.url, true);
  const found = body.split("\n").filter((line) => line.includes('ModelName="m')).length;
  if (found !== series) throw new Error(`${peer.name} exposes ${found} series, expected ${series}`);
}
