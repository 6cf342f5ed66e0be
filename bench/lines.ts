import { hostname as osHostname } from "node:os";
import { startChild, TSX, type Child } from "./lib/child.js";
import { KeepAliveClient } from "./lib/http-client.js";
import { count, fmt, times, type Check, type Scenario, type Table } from "./lib/report.js";
import { median, quantile, ratio, rotated } from "./lib/stats.js";

/** What a lines-peer child announces. */
interface LinesPeer {
  metrics: string;
  set: string;
}

const HOSTNAME = osHostname();
/** Lines per POST: 5,000 lines of ~110 bytes, well under metric_lines_max_bytes (8 MiB). */
const LINES_PER_POST = 5_000;

/** The `[METRICS]` line of series `i` in `round`, as a TorchServe worker writes it. */
function line(i: number, round: number): string {
  const value = ((i * 7 + round * 13) % 1000) / 10 + 0.25;
  return `[METRICS]BenchLatency.Milliseconds:${value}|#ModelName:m${i},Level:Model|#type:GAUGE|#hostname:${HOSTNAME},1700000000,r${i}`;
}

async function setSeries(peer: LinesPeer, series: number, round: number): Promise<void> {
  for (let from = 0; from < series; from += LINES_PER_POST) {
    const lines: string[] = [];
    for (let i = from; i < Math.min(series, from + LINES_PER_POST); i++) lines.push(line(i, round));
    const res = await fetch(peer.set, { method: "POST", body: lines.join("\n") });
    if (res.status !== 200) throw new Error(`POST ${peer.set} answered ${res.status}: ${await res.text()}`);
    await res.arrayBuffer();
  }
}

/**
 * The scrape as issue 5 checks it: series created through serve-metrics' own `POST /metric-lines`
 * with model_metrics_auto_detect on, against a prom-client process holding the same series, each
 * in its own process, scraped in turn.
 */
export const lines: Scenario = async ({ quick, log }) => {
  const series = 10_000;
  const warmup = quick ? 2 : 5;
  const rounds = quick ? 6 : 40;
  const kinds = ["serve-metrics", "prom-client"] as const;
  const children: Child<LinesPeer>[] = [];
  const client = new KeepAliveClient();
  const table: Table = {
    header: [
      "series",
      "values",
      "serve-metrics ms (p90)",
      "prom-client ms (p90)",
      "serve-metrics / prom-client",
    ],
    rows: [],
  };
  const checks: Check[] = [];
  try {
    for (const kind of kinds)
      children.push(await startChild<LinesPeer>(TSX, "bench/child/lines-peer.ts", [kind]));
    const peers = children.map((c) => c.ready);
    log(`lines: posting ${count(series)} series to each peer`);
    for (const peer of peers) await setSeries(peer, series, 0);
    for (const peer of peers) {
      const { body = "" } = await client.get(peer.metrics, true);
      const found = body.split("\n").filter((l) => l.startsWith("BenchLatency{")).length;
      if (found !== series) throw new Error(`${peer.metrics} exposes ${found} series, expected ${series}`);
    }
    for (const variant of ["unchanged", "changed"] as const) {
      const ms = peers.map((): number[] => []);
      for (let round = 0; round < warmup + rounds; round++) {
        for (const index of rotated([0, 1], round)) {
          const peer = peers[index] as LinesPeer;
          if (variant === "changed") await setSeries(peer, series, round + 1);
          const timed = await client.get(peer.metrics);
          if (timed.status !== 200) throw new Error(`GET ${peer.metrics} answered ${timed.status}`);
          if (round >= warmup) ms[index]?.push(timed.ms);
        }
      }
      const [sm = [], pc = []] = ms;
      const r = ratio(median(sm), median(pc));
      table.rows.push([
        count(series),
        variant,
        `${fmt(median(sm))} (${fmt(quantile(sm, 0.9))})`,
        `${fmt(median(pc))} (${fmt(quantile(pc, 0.9))})`,
        times(r),
      ]);
      if (variant === "unchanged") {
        checks.push({
          target: "scrape 10k series from POST /metric-lines (auto-detect) ≤ 0.3× a prom-client process",
          measured: times(r),
          pass: r <= 0.3,
        });
      }
    }
  } finally {
    client.close();
    for (const child of children) await child.stop();
  }
  return {
    title: "Scrape: series from POST /metric-lines, each peer in its own process",
    notes: [
      "serve-metrics started with `model_metrics_auto_detect=true`; " +
        `${count(series)} \`[METRICS]BenchLatency.Milliseconds:<v>|#ModelName:m<i>,Level:Model|#type:GAUGE|#hostname:<host>,<time>,<id>\` ` +
        "lines POSTed to its `/metric-lines` (5,000 per request), which auto-detects BenchLatency as a gauge. " +
        "A prom-client process sets the same series in a `Gauge` from the same lines. Both run in their own " +
        "processes (bench/child/lines-peer.ts); GETs on one keep-alive connection each, in turn with a rotating " +
        "first. `changed`: the lines are POSTed again with new values (outside the timed request) before each scrape.",
    ],
    tables: [table],
    checks,
  };
};
