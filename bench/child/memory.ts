/**
 * Memory per series of one peer, in a process of its own so that no other peer's garbage or
 * heap growth is counted: `memory.ts serve-metrics|prom-client|otel-exporter <series>`.
 * Prints one JSON line: heap and RSS before and after the series, each after a scrape and a full GC.
 */
import { forceGc } from "../lib/gc.js";
import { KeepAliveClient } from "../lib/http-client.js";
import { startPeer, type PeerKind } from "../lib/peers.js";

const [kind, seriesArg] = process.argv.slice(2);
const series = Number(seriesArg);
if (kind !== "serve-metrics" && kind !== "prom-client" && kind !== "otel-exporter") {
  throw new Error(`unknown peer ${String(kind)}`);
}

const client = new KeepAliveClient();
const peer = await startPeer(kind satisfies PeerKind, 0);
// A scrape before each reading, so that whatever a scrape keeps (reader state, caches) is counted
// once it exists for the series, and not the one-off cost of the first scrape.
const settle = async (): Promise<{ heap: number; rss: number }> => {
  const { status } = await client.get(peer.url);
  if (status !== 200) throw new Error(`${kind}: scrape answered ${status}`);
  forceGc();
  const { heapUsed, rss } = process.memoryUsage();
  return { heap: heapUsed, rss };
};
const before = await settle();
peer.setSeries(series, 0);
const after = await settle();
const steady = await settle();
process.stdout.write(`${JSON.stringify({ kind, series, before, after, steady })}\n`);
client.close();
await peer.stop();
