/**
 * A proxy in front of the benchmark worker, run as its own process so that it has an event loop of
 * its own, like in production: `proxy.ts <kind> <worker url> <connections>`, kind one of
 * serve-metrics, http-proxy, reply-from (fastify + @fastify/reply-from) or undici (a plain undici
 * Pool behind node:http). Prints `{"url": ...}` (where to send `POST /predictions/bench`) once it listens.
 */
import { Agent } from "node:http";
import replyFrom from "@fastify/reply-from";
import fastify from "fastify";
import httpProxy from "http-proxy";
import { Pool } from "undici";
import { serveMetricsApi } from "../lib/built.js";
import { close, serve, urlOf } from "../lib/peers.js";

const { createMemoryLogger, startMetricsService } = await serveMetricsApi();

const [kind, workerUrl, connectionsArg] = process.argv.slice(2);
const connections = Number(connectionsArg);
if (workerUrl === undefined || !Number.isInteger(connections) || connections < 1) {
  throw new Error("usage: proxy.ts serve-metrics|http-proxy|reply-from|undici <worker url> <connections>");
}

// Hop-by-hop headers, which the plain undici proxy drops as every proxy must.
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
  "host",
]);

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
} else if (kind === "reply-from") {
  // As its README sets it up: undici underneath, the same connection cap to the worker.
  const app = fastify({ logger: false, keepAliveTimeout: 60_000 });
  await app.register(replyFrom, { base: workerUrl, undici: { connections, pipelining: 1 } });
  // The body goes to the worker as it arrives, not parsed.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", (_req, _payload, done) => done(null));
  app.post("/*", (request, reply) => reply.from(request.url));
  url = await app.listen({ port: 0, host: "127.0.0.1" });
  stop = () => app.close();
} else if (kind === "undici") {
  // The least a Node user could write on undici: its Pool, the body streamed both ways.
  const pool = new Pool(workerUrl, { connections, pipelining: 1 });
  const server = await serve((req, res) => {
    const headers: Record<string, string | string[]> = {};
    for (const name in req.headers) {
      const value = req.headers[name];
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    // stream() writes the answer into the response as it comes: undici's fastest API for a proxy.
    pool
      .stream(
        { method: "POST", path: req.url ?? "/", headers, body: req },
        ({ statusCode, headers: answer }) => {
          const out: Record<string, string | string[]> = {};
          for (const name in answer) {
            const value = answer[name];
            if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
          }
          res.writeHead(statusCode, out);
          return res;
        },
      )
      .catch(() => {
        if (!res.headersSent) res.writeHead(502).end();
        else res.destroy();
      });
  });
  url = urlOf(server);
  stop = async () => {
    await close(server);
    await pool.close();
  };
} else {
  throw new Error(`unknown proxy ${String(kind)}`);
}
process.stdout.write(`${JSON.stringify({ url })}\n`);
process.on("SIGTERM", () => {
  void stop().then(() => process.exit(0));
});
