import { createServer, type RequestListener, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { hostname as osHostname } from "node:os";
import { gzip } from "node:zlib";
import { PrometheusExporter } from "@opentelemetry/exporter-prometheus";
import { MeterProvider } from "@opentelemetry/sdk-metrics";
import { Gauge, Registry } from "prom-client";
import { createMemoryLogger, startMetricsService, type MetricsService } from "../../src/index.js";

/** Something serving one gauge family of `n` series on `GET {url}`. */
export interface ScrapePeer {
  /** Short name for tables. */
  name: string;
  /** The full scrape URL. */
  url: string;
  /** Sets series `0..count-1` to their values for `round`, as if every model had just reported. */
  setSeries(count: number, round: number): void;
  stop(): Promise<void>;
}

/** Which implementation serves the series. */
export type PeerKind = "serve-metrics" | "prom-client" | "otel-exporter";

/** The label the series differ by, the way users' models do: `m0`, `m1`, ... */
export const modelName = (i: number): string => `m${i}`;

/** A value with a fractional part that differs by series and by round, so no renderer can cache it. */
export const seriesValue = (i: number, round: number): number => ((i * 7 + round * 13) % 1000) / 10 + 0.25;

const HOSTNAME = osHostname();

/** Starts one peer with `n` PredictionTime series (round 0 values); each listens on its own loopback port. */
export function startPeer(kind: PeerKind, n: number): Promise<ScrapePeer> {
  switch (kind) {
    case "serve-metrics":
      return startServeMetrics(n);
    case "prom-client":
      return startPromClient(n);
    case "otel-exporter":
      return startOtelExporter(n);
  }
}

/** The service as users start it, series recorded through its public `recordMetric`. */
export async function startServeMetricsService(): Promise<MetricsService> {
  return startMetricsService({
    env: {},
    settings: {
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      numberOfGpu: 0,
      disableSystemMetrics: true,
      maxSeriesPerMetric: 200_000,
      // The same series as the peers: PredictionTime's per-model histogram (histogram_gauges, on
      // by default) would add 17 series per model, here one model per series.
      histogramGauges: [],
    },
    logger: createMemoryLogger(),
  });
}

async function startServeMetrics(n: number): Promise<ScrapePeer> {
  const service = await startServeMetricsService();
  const setSeries = (count: number, round: number): void => {
    for (let i = 0; i < count; i++) {
      service.recordMetric("PredictionTime", seriesValue(i, round), {
        ModelName: modelName(i),
        Level: "Model",
      });
    }
  };
  setSeries(n, 0);
  if (service.metricsUrl === undefined) throw new Error("serve-metrics did not open its metrics API");
  return {
    name: "serve-metrics",
    url: `${service.metricsUrl}/metrics`,
    setSeries,
    stop: () => service.stop(),
  };
}

/**
 * prom-client's own registry (not the global one) rendered by `register.metrics()` over node:http.
 * prom-client does not compress; a client asking for gzip gets the text through node's
 * `zlib.gzip` at its default level, as a user adding compression by hand (or with the
 * `compression` middleware) would.
 */
async function startPromClient(n: number): Promise<ScrapePeer> {
  const registry = new Registry();
  const gauge = new Gauge({
    name: "PredictionTime",
    help: "Torchserve prometheus gauge metric with unit: ms",
    labelNames: ["ModelName", "Level", "Hostname"] as const,
    registers: [registry],
  });
  const setSeries = (count: number, round: number): void => {
    for (let i = 0; i < count; i++) {
      gauge.set({ ModelName: modelName(i), Level: "Model", Hostname: HOSTNAME }, seriesValue(i, round));
    }
  };
  setSeries(n, 0);
  const server = await serve((req, res) => {
    void registry.metrics().then((body) => {
      if (!/\bgzip\b/.test(req.headers["accept-encoding"] ?? "")) {
        res.writeHead(200, {
          "Content-Type": registry.contentType,
          "Content-Length": Buffer.byteLength(body),
        });
        res.end(body);
        return;
      }
      gzip(body, (err, zipped) => {
        if (err !== null) {
          res.destroy(err);
          return;
        }
        res.writeHead(200, {
          "Content-Type": registry.contentType,
          "Content-Encoding": "gzip",
          "Content-Length": zipped.length,
        });
        res.end(zipped);
      });
    });
  });
  return { name: "prom-client", url: `${urlOf(server)}/metrics`, setSeries, stop: () => close(server) };
}

/**
 * The stock `PrometheusExporter` on its own MeterProvider. Its constructor turns `port: 0` into
 * 9464, so its server is not started and its request handler is served on a port-0 server instead.
 */
async function startOtelExporter(n: number): Promise<ScrapePeer> {
  const exporter = new PrometheusExporter({ preventServerStart: true });
  const provider = new MeterProvider({
    readers: [exporter],
    // The SDK keeps 2,000 series per instrument unless a view says otherwise.
    views: [{ instrumentName: "PredictionTime", aggregationCardinalityLimit: 200_001 }],
  });
  const gauge = provider.getMeter("bench").createGauge("PredictionTime", { unit: "ms" });
  const setSeries = (count: number, round: number): void => {
    for (let i = 0; i < count; i++) {
      gauge.record(seriesValue(i, round), { ModelName: modelName(i), Level: "Model", Hostname: HOSTNAME });
    }
  };
  setSeries(n, 0);
  const server = await serve((req, res) => exporter.getMetricsRequestHandler(req, res));
  return {
    name: "otel-exporter",
    url: `${urlOf(server)}/metrics`,
    setSeries,
    stop: async () => {
      await close(server);
      await provider.shutdown();
    },
  };
}

/** A loopback server on a free port whose keep-alive connections outlive the gaps between scrapes. */
export async function serve(handler: RequestListener): Promise<Server> {
  const server = createServer(handler);
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  return server;
}

/** `http://127.0.0.1:<port>` of a listening server. */
export function urlOf(server: Server): string {
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

/** Closes a server and its idle keep-alive connections. */
export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}
