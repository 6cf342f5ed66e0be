/**
 * A proxy in front of the benchmark worker, run as its own process so that it has an event loop of
 * its own, like in production: `proxy.ts serve-metrics|http-proxy <worker url> <connections>`.
 * Prints `{"url": ...}` (where to send `POST /predictions/bench`) once it listens.
 */
import { Agent } from "node:http";
import httpProxy from "http-proxy";
import { serveMetricsApi } from "../lib/built.js";
import { close, serve, urlOf } from "../lib/peers.js";

const { createMemoryLogger, startMetricsService } = await serveMetricsApi();

const [kind, workerUrl, connectionsArg] = process.argv.slice(2);
const connections = Number(connectionsArg);
if (workerUrl === undefined || !Number.isInteger(connections) || connections < 1) {
  throw new Error("usage: proxy.ts serve-metrics|http-proxy <worker url> <connections>");
}

let stop: () => Promise<void>;
let url: string;
if (kind === "serve-metrics") {
  const service = await startMetricsService({
    env: {},
    settings: {
      metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      numberOfGpu: 0,
      disableSystemMetrics: true,
      // As many worker slots as the load has connections, so nothing queues that http-proxy would pass.
      models: [
        {
          model: "bench",
          version: "1.0",
          isDefault: true,
          workers: connections,
          url: workerUrl,
          command: undefined,
        },
      ],
    },
    logger: createMemoryLogger(),
  });
  if (service.inferenceUrl === undefined) throw new Error("serve-metrics did not open its inference API");
  url = service.inferenceUrl;
  stop = () => service.stop();
} else if (kind === "http-proxy") {
  // Keep-alive to the worker with the same connection cap, as serve-metrics' agent has.
  const proxy = httpProxy.createProxyServer({
    target: workerUrl,
    agent: new Agent({ keepAlive: true, maxSockets: connections }),
  });
  proxy.on("error", (_err, _req, res) => {
    if ("writeHead" in res && !res.headersSent) res.writeHead(502).end();
  });
  const server = await serve((req, res) => proxy.web(req, res));
  url = urlOf(server);
  stop = () => close(server);
} else {
  throw new Error(`unknown proxy ${String(kind)}`);
}
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.on("SIGTERM", () => {
  void stop().then(() => process.exit(0));
});
