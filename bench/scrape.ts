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
/** Peers that answer `Accept-Encoding: gzip` (the stock exporter ignores it). */
const GZIP_KINDS: readonly PeerKind[] = ["serve-metrics", "prom-client"];

/** `unchanged`: the same values every scrape; `changed`: every series got a new value since the last one. */
type Variant = "unchanged" | "changed";
const VARIANTS: readonly Variant[] = ["unchanged", "changed"];

/** What the scrape asks for: plain text, or `Accept-Encoding: gzip` as Prometheus sends it. */
type Encoding = "identity" | "gzip";
const HEADERS: Readonly<Record<Encoding, Record<string, string>>> = {
  identity: {},
  gzip: { "Accept-Encoding": "gzip" },
};

/** One peer scraped one way. */
interface Target {
  peer: ScrapePeer;
  encoding: Encoding;
}

interface Measured {
  medianMs: number;
  p90Ms: number;
  bytes: number;
}

/**
 * `GET /metrics` end to end over loopback, serve-metrics against prom-client and the stock
 * OpenTelemetry Prometheus exporter, all three in this process with the same series, scraped in
 * turn (rotating who goes first) so that the machine's noise lands on all of them alike; the
 * peers that can compress are also scraped with `Accept-Encoding: gzip`, in the same turns.
 */
export const scrape: Scenario = async ({ quick, log }) => {
  const plans = quick ? QUICK : FULL;
  const results = new Map<string, Measured>();
  const key = (series: number, variant: Variant, kind: PeerKind, encoding: Encoding): string =>
    `${series}/${variant}/${kind}/${encoding}`;
  for (const plan of plans) {
    log(`scrape: ${count(plan.series)} series`);
    const peers: ScrapePeer[] = [];
    const client = new KeepAliveClient();
    try {
      for (const kind of KINDS) peers.push(await startPeer(kind, plan.series));
      for (const peer of peers) await checkSeries(client, peer, plan.series);
      const targets: Target[] = peers.flatMap((peer) =>
        GZIP_KINDS.includes(peer.name as PeerKind)
          ? [
              { peer, encoding: "identity" as const },
              { peer, encoding: "gzip" as const },
            ]
          : [{ peer, encoding: "identity" as const }],
      );
      for (const variant of VARIANTS) {
        const samples = new Map<Target, { ms: number[]; bytes: number }>(
          targets.map((t) => [t, { ms: [], bytes: 0 }]),
        );
        let values = 0;
        for (let round = 0; round < plan.warmup + plan.rounds; round++) {
          for (const target of rotated(targets, round)) {
            const { peer, encoding } = target;
            // Values that differ from the previous scrape's, set outside the timed request.
            if (variant === "changed") peer.setSeries(plan.series, ++values);
            const timed = await client.get(peer.url, false, HEADERS[encoding]);
            if (timed.status !== 200) throw new Error(`${peer.name}: GET /metrics answered ${timed.status}`);
            if ((timed.encoding ?? "identity") !== encoding) {
              throw new Error(`${peer.name}: asked for ${encoding}, got ${timed.encoding ?? "identity"}`);
            }
            const into = samples.get(target);
            if (into !== undefined && round >= plan.warmup) {
              into.ms.push(timed.ms);
              into.bytes = timed.bytes;
            }
          }
        }
        for (const [target, s] of samples) {
          results.set(key(plan.series, variant, target.peer.name as PeerKind, target.encoding), {
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

  const get = (series: number, variant: Variant, kind: PeerKind, encoding: Encoding = "identity"): Measured =>
    results.get(key(series, variant, kind, encoding)) ?? { medianMs: NaN, p90Ms: NaN, bytes: NaN };
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
  const gzipTable: Table = {
    caption:
      "The same scrapes with `Accept-Encoding: gzip`, taken in the same turns as the plain ones above " +
      "(cost and bytes: gzip / identity of the same peer in the same run):",
    header: [
      "series",
      "values",
      "serve-metrics gzip ms (p90)",
      "serve-metrics gzip / identity: cost",
      "serve-metrics gzip / identity: bytes",
      "prom-client + zlib.gzip ms (p90)",
      "prom-client gzip / identity: cost",
      "serve-metrics gzip / prom-client gzip",
      "serve-metrics gzip / prom-client identity",
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
      const smz = get(plan.series, variant, "serve-metrics", "gzip");
      const pcz = get(plan.series, variant, "prom-client", "gzip");
      gzipTable.rows.push([
        count(plan.series),
        variant,
        `${fmt(smz.medianMs)} (${fmt(smz.p90Ms)})`,
        times(ratio(smz.medianMs, sm.medianMs)),
        `${bytes(smz.bytes)} (${percent(ratio(smz.bytes, sm.bytes))})`,
        `${fmt(pcz.medianMs)} (${fmt(pcz.p90Ms)})`,
        times(ratio(pcz.medianMs, pc.medianMs)),
        times(ratio(smz.medianMs, pcz.medianMs)),
        times(ratio(smz.medianMs, pc.medianMs)),
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
  const changedVsPromClient = ratio(
    get(10_000, "changed", "serve-metrics").medianMs,
    get(10_000, "changed", "prom-client").medianMs,
  );
  checks.push({
    target: "scrape 10k series (changed) ≤ 0.6× prom-client (issue 14)",
    measured: times(changedVsPromClient),
    pass: changedVsPromClient <= 0.6,
  });
  const plain = get(10_000, "unchanged", "serve-metrics");
  const zipped = get(10_000, "unchanged", "serve-metrics", "gzip");
  const cost = ratio(zipped.medianMs, plain.medianMs);
  checks.push({
    target: "scrape 10k series (unchanged) with gzip ≤ 1.3× without",
    measured: times(cost),
    pass: cost <= 1.3,
  });
  const share = ratio(zipped.bytes, plain.bytes);
  checks.push({
    target: "scrape 10k series with gzip sends ≤ 15% of the bytes",
    measured: percent(share),
    pass: share <= 0.15,
  });
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
        "every series gets a new value (outside the timed request) before each scrape. serve-metrics and " +
        "prom-client are also scraped with `Accept-Encoding: gzip` in the same turns (prom-client does not " +
        "compress by itself: its server gzips the text with `zlib.gzip`, default level); bytes are as sent.",
    ],
    tables: [table, gzipTable],
    checks,
  };
};

/** A share as a percentage. */
function percent(share: number): string {
  return `${(share * 100).toFixed(1)}%`;
}

/** Fails early when a peer does not expose every series (a cardinality limit would make it look fast). */
async function checkSeries(client: KeepAliveClient, peer: ScrapePeer, series: number): Promise<void> {
  const { body = "" } = await client.get(peer.url, true);
  const found = body.split("\n").filter((line) => line.includes('ModelName="m')).length;
  if (found !== series) throw new Error(`${peer.name} exposes ${found} series, expected ${series}`);
}
