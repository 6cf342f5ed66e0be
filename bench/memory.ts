import { startChild, TSX } from "./lib/child.js";
import type { PeerKind } from "./lib/peers.js";
import { bytes, count, times, type Scenario } from "./lib/report.js";
import { ratio } from "./lib/stats.js";

interface Reading {
  kind: PeerKind;
  series: number;
  before: { heap: number; rss: number };
  after: { heap: number; rss: number };
  /** After one more scrape with nothing changed. */
  steady: { heap: number; rss: number };
}

const KINDS: readonly PeerKind[] = ["serve-metrics", "prom-client", "otel-exporter"];

/**
 * Memory per series: heap and RSS growth from 0 to N PredictionTime series (after a scrape and a
 * forced full GC each time) divided by N, each peer in a fresh process of its own.
 */
export const memory: Scenario = async ({ quick, log }) => {
  const series = quick ? 20_000 : 100_000;
  log(`memory: ${count(series)} series, one process per peer`);
  const readings = await Promise.all(
    KINDS.map(async (kind) => {
      const child = await startChild<Reading>(TSX, "bench/child/memory.ts", [kind, String(series)], {
        timeoutMs: 120_000,
      });
      await child.stop();
      return child.ready;
    }),
  );
  const perSeries = (r: Reading, what: "heap" | "rss"): number => (r.after[what] - r.before[what]) / r.series;
  const sm = readings.find((r) => r.kind === "serve-metrics");
  const smHeap = sm === undefined ? NaN : perSeries(sm, "heap");
  return {
    title: `Memory: per series at ${count(series)} series`,
    notes: [
      "Each peer in a fresh process: started with no series, scraped once, full GC (`v8.setFlagsFromString('--expose-gc')` " +
        `and \`vm.runInNewContext('gc')\`), heap and RSS read; then ${count(series)} PredictionTime series set, ` +
        "scraped once, full GC, read again. Per series = growth / series. RSS includes freed heap pages the " +
        "process has not given back, so heap is the figure to compare.",
      "`heap / series, next scrape`: after one more scrape with nothing changed. serve-metrics' pull reader " +
        "takes deltas, and the SDK keeps its last delta collection until the next one, so the first figure " +
        "holds the SDK's copy of every series set since the previous scrape; the second is what stays.",
    ],
    tables: [
      {
        header: [
          "peer",
          "heap / series",
          "heap / series, next scrape",
          "RSS / series",
          "heap growth",
          "RSS growth",
          "serve-metrics heap / this",
        ],
        rows: readings.map((r) => [
          r.kind,
          bytes(perSeries(r, "heap")),
          bytes((r.steady.heap - r.before.heap) / r.series),
          bytes(perSeries(r, "rss")),
          bytes(r.after.heap - r.before.heap),
          bytes(r.after.rss - r.before.rss),
          times(ratio(smHeap, perSeries(r, "heap"))),
        ]),
      },
    ],
    checks: [
      {
        target: `≤ 1 KB heap per series at ${count(series)} series`,
        measured: bytes(smHeap),
        pass: smHeap <= 1000,
      },
    ],
  };
};
