/**
 * Scrapes serve-metrics over loopback again and again, for a CPU profile of the scrape path:
 * `node --cpu-prof ... scrape-load.ts <series> <scrapes> [changed|unchanged] [protobuf]`. Prints `{"ms": [...], "windows": ...}`
 * when done: `windows` are the [start, end] of each measured GET on the monotonic clock V8's
 * profiler also uses, in µs, so that module loading, setup, warm-up and the recording of new
 * values between scrapes can be left out of the profile.
 */
import { KeepAliveClient } from "../lib/http-client.js";
import { startPeer } from "../lib/peers.js";

const WARMUP = 10;
const series = Number(process.argv[2] ?? 10_000);
const scrapes = Number(process.argv[3] ?? 200);
const changed = process.argv[4] === "changed";
// What Prometheus asks for with native histograms on.
const headers: Record<string, string> =
  process.argv[5] === "protobuf"
    ? { Accept: "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited" }
    : {};
const peer = await startPeer("serve-metrics", series);
const client = new KeepAliveClient();
const ms: number[] = [];
const windows: [number, number][] = [];
const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
for (let i = 0; i < WARMUP + scrapes; i++) {
  if (changed) peer.setSeries(series, i + 1);
  const fromUs = nowUs();
  const timed = await client.get(peer.url, false, headers);
  if (timed.status !== 200) throw new Error(`scrape answered ${timed.status}`);
  if (i >= WARMUP) {
    ms.push(timed.ms);
    windows.push([fromUs, nowUs()]);
  }
}
client.close();
await peer.stop();
process.stdout.write(`${JSON.stringify({ ms, windows })}\n`);
