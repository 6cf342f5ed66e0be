import { expect } from "chai";
import { requestRaw as get } from "../support/http.js";
import { execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { createMemoryLogger } from "../../src/log.js";
import { createMetricsHandler, type MetricsEndpoint } from "../../src/server/metrics-handler.js";
import { ScrapeSends } from "../../src/server/scrape-sends.js";
import type { MetricsService } from "../../src/service.js";
import { countGzipMembers } from "../support/gzip.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";

/** A whole response with its body as bytes, as sent (not decoded). */

const GZIP = { "Accept-Encoding": "gzip" };

/** The metrics handler on loopback over a given render; what it counted and logged. */
async function serveHandler(
  render: MetricsEndpoint["render"],
  more: Pick<MetricsEndpoint, "sendTimeoutMs" | "sends"> = {},
) {
  const logger = createMemoryLogger();
  const statuses: number[] = [];
  const server = createServer(
    createMetricsHandler({
      render,
      contentType: "text/plain",
      onResponse: (s) => statuses.push(s),
      logger,
      ...more,
    }),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (typeof address !== "object" || address === null) throw new Error("no address");
  const stop = (): Promise<void> => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(() => resolve()));
  };
  return { url: `http://127.0.0.1:${address.port}/metrics`, port: address.port, logger, statuses, stop };
}

describe("/metrics with Accept-Encoding: gzip", () => {
  for (const metricsFormat of ["torchserve", "otel"] as const) {
    describe(`metrics_format=${metricsFormat}`, () => {
      let service: MetricsService;
      let h: Awaited<ReturnType<typeof serveHandler>>;

      before(async () => {
        ({ service } = await startTestService({ metricsFormat, disableSystemMetrics: true }));
        service.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5, queueMs: 0.5 });
        for (let i = 0; i < 2000; i++) {
          service.recordMetric("PredictionTime", i / 7, { ModelName: `m${i}`, Level: "Model" });
        }
        // The service's own renderer, with nothing counting the scrapes: two scrapes render the same.
        h = await serveHandler((filter) => service.scrapeChunks(filter));
      });
      after(async () => {
        await h.stop();
        await service.stop();
      });

      for (const query of [
        "",
        "?name[]=PredictionTime&name[]=serve_model_prediction_time&name[]=ts_inference_requests_total&name[]=serve_inference_requests_total",
      ]) {
        it(`sends one gzip member that decodes to exactly the identity body${query === "" ? "" : ", with name[]"}`, async () => {
          const identity = await get(`${h.url}${query}`);
          const gzip = await get(`${h.url}${query}`, GZIP);
          expect(identity.status).to.equal(200);
          expect(identity.headers["content-encoding"]).to.equal(undefined);
          expect(identity.headers.vary).to.equal("Accept-Encoding");
          expect(identity.body.toString()).to.match(/(PredictionTime|serve_model_prediction_time)\{/);

          expect(gzip.status).to.equal(200);
          expect(gzip.headers["content-encoding"]).to.equal("gzip");
          expect(gzip.headers.vary).to.equal("Accept-Encoding");
          expect(gzip.headers["content-type"]).to.equal("text/plain");
          expect(gzip.headers["content-length"]).to.equal(String(gzip.body.length));
          expect(countGzipMembers(gzip.body)).to.equal(1);
          expect(gunzipSync(gzip.body).equals(identity.body)).to.equal(true);
          expect(gzip.body.length).to.be.below(0.15 * identity.body.length);
        });
      }

      it("is read whole by curl --compressed", async function () {
        const curl = requireTool(this, "curl");
        const identity = await get(h.url);
        // Asynchronously: the server answering curl runs in this process.
        const { stdout } = await promisify(execFile)(
          curl,
          ["-s", "--fail", "--max-time", "20", "--compressed", h.url],
          { encoding: "buffer", maxBuffer: 64 << 20 },
        );
        expect(stdout.equals(identity.body)).to.equal(true);
      });

      it("answers HEAD with the headers GET would send, gzip's length included", async () => {
        const gzip = await get(h.url, GZIP);
        const head = await get(h.url, GZIP, "HEAD");
        expect(head.body.length).to.equal(0);
        for (const name of ["content-encoding", "vary", "content-type", "content-length"]) {
          expect(head.headers[name], name).to.equal(gzip.headers[name]);
        }
        const plainHead = await get(h.url, {}, "HEAD");
        expect(plainHead.headers["content-encoding"]).to.equal(undefined);
        expect(Number(plainHead.headers["content-length"])).to.be.above(
          Number(head.headers["content-length"]),
        );
      });
    });
  }

  it("honours q-values and *: gzip;q=0 and a preferred identity get identity", async () => {
    const h = await serveHandler(() => Promise.resolve([Buffer.from("a 1\n"), Buffer.from("b 2\n")]));
    try {
      const encodings: Record<string, string | undefined> = {};
      for (const accept of [
        "gzip;q=0",
        "*",
        "gzip;q=0, *",
        "gzip;q=0.4, identity;q=0.8",
        "br, x-gzip;q=0.1",
        "deflate",
      ]) {
        const res = await get(h.url, { "Accept-Encoding": accept });
        encodings[accept] = res.headers["content-encoding"];
        const text = res.headers["content-encoding"] === "gzip" ? gunzipSync(res.body) : res.body;
        expect(text.toString(), accept).to.equal("a 1\nb 2\n");
      }
      expect(encodings).to.deep.equal({
        "gzip;q=0": undefined,
        "*": "gzip",
        "gzip;q=0, *": undefined,
        "gzip;q=0.4, identity;q=0.8": undefined,
        "br, x-gzip;q=0.1": "gzip",
        deflate: undefined,
      });
    } finally {
      await h.stop();
    }
  });

  it("answers an empty exposition (log mode) with a valid, empty gzip body", async () => {
    const h = await serveHandler(() => Promise.resolve([]));
    try {
      const res = await get(h.url, GZIP);
      expect(res.headers["content-encoding"]).to.equal("gzip");
      expect(countGzipMembers(res.body)).to.equal(1);
      expect(gunzipSync(res.body).length).to.equal(0);
    } finally {
      await h.stop();
    }
  });

  it("keeps errors as plain JSON: 404, 405 and a failed collection", async () => {
    const h = await serveHandler(() => Promise.reject(new Error("collector down")));
    try {
      const answers = [
        await get(h.url.replace("/metrics", "/nope"), GZIP),
        await get(h.url, GZIP, "POST"),
        await get(h.url, GZIP),
      ];
      expect(answers.map((r) => r.status)).to.deep.equal([404, 405, 500]);
      for (const res of answers) {
        expect(res.headers["content-encoding"]).to.equal(undefined);
        expect(res.headers["content-type"]).to.equal("application/json");
        expect(JSON.parse(res.body.toString())).to.include({ code: res.status });
      }
    } finally {
      await h.stop();
    }
  });

  it("takes a client that hangs up mid-gzip in its stride: no error, the next scrape answers", async () => {
    // Incompressible, so the compressed body is far larger than what the socket buffers take.
    const block = randomBytes(1024 * 1024);
    const big = Array.from({ length: 64 }, () => block);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): number => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    let renders = 0;
    const h = await serveHandler(() => Promise.resolve(renders++ === 0 ? big : [Buffer.from("ok\n")]));
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(h.port, "127.0.0.1", () =>
          socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n"),
        );
        socket.once("data", () => {
          socket.destroy();
          resolve();
        });
        socket.on("error", reject);
      });
      const res = await get(h.url, GZIP);
      expect([res.status, gunzipSync(res.body).toString()]).to.deep.equal([200, "ok\n"]);
      expect(h.statuses).to.deep.equal([200, 200]);
      expect(h.logger.lines.filter((l) => l.startsWith("ERROR"))).to.deep.equal([]);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await h.stop();
    }
  });
});

/**
 * The bytes of live ArrayBuffers (Buffers' memory, off the V8 heap) after full garbage
 * collections: closed sockets let go of their buffers a few turns later, and V8 frees backing
 * stores behind the collection, so it collects until two readings 100 ms apart agree.
 */
async function arrayBuffersAfterGc(): Promise<number> {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  let last = Infinity;
  for (let i = 0; i < 20; i++) {
    gc();
    const now = process.memoryUsage().arrayBuffers;
    if (Math.abs(now - last) < 1024 * 1024) return now;
    last = now;
    await sleep(100);
  }
  return last;
}

/** A client that sends a request and never reads the answer; `resume` reads it to its end. */
function stalledScraper(port: number, headers: string) {
  const socket = connect(port, "127.0.0.1", () =>
    socket.write(`GET /metrics HTTP/1.1\r\nHost: x\r\n${headers}\r\n`),
  );
  socket.pause();
  socket.on("error", () => undefined);
  return {
    /** Reads what the server sent until the connection ends; the bytes received, headers included. */
    resume(): Promise<number> {
      return new Promise((resolve) => {
        let received = 0;
        socket.on("data", (data: Buffer) => (received += data.length));
        socket.on("close", () => resolve(received));
        socket.resume();
      });
    },
  };
}

describe("/metrics with scrapers that stop reading", () => {
  const BODY = 8 * 1024 * 1024;
  const STALLED = 16;
  // Long enough for the scrapers to start on a loaded machine before the first is timed out.
  const TIMEOUT_MS = 6000;

  for (const encoding of ["plain", "gzip"] as const) {
    it(`holds about two bodies for ${STALLED} stalled ${encoding} scrapers, not ${STALLED}, answers others meanwhile, and closes them after the send timeout`, async function () {
      this.timeout(60_000);
      let renders = 0;
      // Every scrape a new body, as when series change between scrapes; random, so gzip cannot
      // shrink it below what the socket buffers take.
      const render = (): Promise<Uint8Array[]> => {
        renders++;
        const body = randomBytes(BODY);
        return Promise.resolve(
          Array.from({ length: BODY / 65536 }, (_, i) => body.subarray(i * 65536, (i + 1) * 65536)),
        );
      };
      const sends = new ScrapeSends();
      const h = await serveHandler(render, { sendTimeoutMs: TIMEOUT_MS, sends });
      const headers = encoding === "gzip" ? "Accept-Encoding: gzip\r\n" : "";
      try {
        const baseline = await arrayBuffersAfterGc();
        const started = Date.now();
        const clients = [];
        for (let i = 0; i < STALLED; i++) {
          clients.push(stalledScraper(h.port, headers));
          // One at a time, so that each renders its own body (scrapes at the same moment would share one).
          while (h.statuses.length <= i) await sleep(5);
          expect(sends.heldBytes).to.be.at.most(2 * BODY + 64 * 1024);
        }
        expect(renders).to.equal(STALLED);
        const grown = (await arrayBuffersAfterGc()) - baseline;
        // Unbounded, this would be 16 bodies (128 MiB); the bound is 2, with room for socket buffers.
        expect(grown).to.be.below(5 * BODY);
        expect(sends.size).to.be.at.most(2);

        // A scraper that reads gets its whole answer meanwhile.
        const normal = await get(h.url, encoding === "gzip" ? GZIP : {});
        expect([normal.status, normal.body.length]).to.deep.equal([
          200,
          Number(normal.headers["content-length"]),
        ]);
        expect(normal.body.length).to.be.at.least(BODY);
        normal.body = Buffer.alloc(0);

        // Past the send timeout, nothing is held and every stalled connection was closed short of its body.
        while (sends.size > 0 && Date.now() - started < TIMEOUT_MS + 20_000) await sleep(50);
        expect(sends.size).to.equal(0);
        expect(sends.heldBytes).to.equal(0);
        for (const received of await Promise.all(clients.map((c) => c.resume()))) {
          expect(received).to.be.below(BODY);
        }
        expect((await arrayBuffersAfterGc()) - baseline).to.be.below(BODY);
        expect(h.statuses).to.deep.equal(Array.from({ length: STALLED + 1 }, () => 200));
        expect(sends.closed).to.be.at.least(STALLED - 3);
      } finally {
        await h.stop();
      }
    });
  }
});
