/**
 * Scrapes serve-metrics over loopback again and again, for a CPU profile of the scrape path:
 * `node --cpu-prof ... scrape-load.ts <series> <scrapes> [changed]`. Prints `{"ms": [...], "fromUs": ...}`
 * when done: `fromUs` (the monotonic clock V8's profiler also uses, in µs) is when the measured
 * scrapes began, so that module loading, setup and warm-up can be left out of the profile.
 */
import { KeepAliveClient } from "../lib/http-client.js";
import { startPeer } from "../lib/peers.js";

const WARMUP = 10;
const series = Number(process.argv[2] ?? 10_000);
const scrapes = Number(process.argv[3] ?? 200);
const changed = process.argv[4] === "changed";
const peer = await startPeer("serve-metrics", series);
const client = new KeepAliveClient();
const ms: number[] = [];
let fromUs = 0;
for (let i = 0; i < WARMUP + scrapes; i++) {
  if (i === WARMUP) fromUs = Number(process.hrtime.bigint() / 1000n);
  if (changed) peer.setSeries(series, i + 1);
  const timed = await client.get(peer.url);
  if (timed.status !== 200) throw new Error(`scrape answered ${timed.status}`);
  if (i >= WARMUP) ms.push(timed.ms);
}
const toUs = Number(process.hrtime.bigint() / 1000n);
client.close();
await peer.stop();
process.stdout.write(`${JSON.stringify({ ms, fromUs, toUs })}\n`);
