/**
 * A peer of the metric-lines scrape benchmark, in its own process like a real service:
 * `lines-peer.ts serve-metrics|prom-client`. Prints `{"metrics": url, "set": url}` once it listens:
 * GET `metrics` scrapes it; POST to `set` changes its series. serve-metrics takes `[METRICS]` lines
 * there (its own `POST /metric-lines`, auto-detect on); prom-client takes the same lines and sets
 * its gauge from them, so both hold the same series.
 */
import type { IncomingMessage } from "node:http";
import { Gauge, Registry } from "prom-client";
import { serveMetricsApi } from "../lib/built.js";
import { close, serve, urlOf } from "../lib/peers.js";

const { createMemoryLogger, startMetricsService } = await serveMetricsApi();

const [kind] = process.argv.slice(2);
let stop: () => Promise<void>;
let ready: { metrics: string; set: string };
if (kind === "serve-metrics") {
  const service = await startMetricsService({
    env: {},
    settings: {
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      enableInferenceApi: true,
      modelMetricsAutoDetect: true,
      numberOfGpu: 0,
      disableSystemMetrics: true,
      maxSeriesPerMetric: 200_000,
      // The same series as the peers: PredictionTime's per-model histogram (histogram_gauges, on
      // by default) would add 17 series per model, here one model per series.
      histogramGauges: [],
    },
    logger: createMemoryLogger(),
  });
  if (service.metricsUrl === undefined || service.inferenceUrl === undefined) {
    throw new Error("serve-metrics did not open its APIs");
  }
  ready = { metrics: `${service.metricsUrl}/metrics`, set: `${service.inferenceUrl}/metric-lines` };
  stop = () => service.stop();
} else if (kind === "prom-client") {
  const registry = new Registry();
  const gauge = new Gauge({
    name: "BenchLatency",
    help: "Torchserve prometheus gauge metric with unit: Milliseconds",
    labelNames: ["ModelName", "Level", "Hostname"] as const,
    registers: [registry],
  });
  // Only the benchmark's own lines: `[METRICS]BenchLatency.Milliseconds:<v>|#ModelName:<m>,Level:<l>|#type:GAUGE|#hostname:<h>,...`
  const LINE =
    /^\[METRICS\]BenchLatency\.Milliseconds:([^|]+)\|#ModelName:([^,]+),Level:([^|]+)\|#type:GAUGE\|#hostname:([^,]+),/;
  const server = await serve((req: IncomingMessage, res) => {
    if (req.method === "POST") {
      const chunks: Buffer[] = [];
      req.on("data", (c: Buffer) => chunks.push(c));
      req.on("end", () => {
        for (const line of Buffer.concat(chunks).toString("utf8").split("\n")) {
          const m = LINE.exec(line);
          if (m !== null) gauge.set({ ModelName: m[2], Level: m[3], Hostname: m[4] }, Number(m[1]));
        }
        res.writeHead(200).end();
      });
      return;
    }
    void registry.metrics().then((body) => {
      res.writeHead(200, { "Content-Type": registry.contentType, "Content-Length": Buffer.byteLength(body) });
      res.end(body);
    });
  });
  ready = { metrics: `${urlOf(server)}/metrics`, set: `${urlOf(server)}/set` };
  stop = () => close(server);
} else {
  throw new Error(`usage: lines-peer.ts serve-metrics|prom-client (got ${String(kind)})`);
}
process.stdout.write(`${JSON.stringify(ready)}\n`);
process.on("SIGTERM", () => {
  void stop().then(() => process.exit(0));
});
