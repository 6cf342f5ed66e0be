import { expect } from "chai";
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type RequestListener,
  type Server,
  type ServerResponse,
} from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { createMemoryLogger } from "../src/log.js";
import { requestMetrics, withRequestMetrics, type RequestMetricsMiddleware } from "../src/middleware.js";
import { startMetricsService, type MetricsService } from "../src/service.js";
import type { InferenceRecord } from "../src/telemetry/recorder.js";
import { request } from "./support/http.js";

/** The value of the one sample of `name` whose labels include every pair in `labels`, or undefined. */
function sample(
  text: string,
  name: string,
  labels: Readonly<Record<string, string>> = {},
): number | undefined {
  const matches = text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .filter((line) => Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}",`)));
  if (matches.length > 1)
    throw new Error(`${matches.length} samples of ${name} match ${JSON.stringify(labels)}`);
  const line = matches[0];
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

/** A GET with extra headers (the shared helper sends none); resolves when the body has been read. */
function getWithHeaders(url: string, headers: Record<string, string>): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { headers, agent: false }, (res) => res.resume().on("end", resolve));
    req.on("error", reject);
    req.end();
  });
}

async function listen(handler: RequestListener): Promise<{ server: Server; base: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

function close(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A model server: 200 for model "echo" (after `delay` ms when the query says so), 404 for others. */
const modelServer: RequestListener = (req, res) => {
  const url = new URL(req.url ?? "/", "http://x");
  if (url.pathname === "/ping") {
    res.end('{"status":"Healthy"}');
    return;
  }
  if (url.pathname === "/crash") {
    req.socket.destroy(); // an app that dies before answering
    return;
  }
  const known = url.pathname.includes("/echo");
  const delay = Number(url.searchParams.get("delay") ?? 0);
  setTimeout(() => {
    res.statusCode = known ? 200 : 404;
    res.end(known ? "{}" : '{"code":404}');
  }, delay);
};

describe("requestMetrics / withRequestMetrics", () => {
  let service: MetricsService;
  let server: Server;
  let base: string;

  beforeEach(async () => {
    service = await startMetricsService({
      env: {},
      settings: { metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 }, numberOfGpu: 0 },
      logger: createMemoryLogger(),
      hostname: "test-host",
    });
    ({ server, base } = await listen(withRequestMetrics(service, modelServer)));
  });
  afterEach(async () => {
    await close(server);
    await service.stop();
  });

  it("counts N inference requests as exactly N in ts_inference_requests_total", async () => {
    const n = 7;
    for (let i = 0; i < n; i++) {
      expect((await request(`${base}/predictions/echo`, { method: "POST", body: "x" })).status).to.equal(200);
    }
    const text = await service.scrape();
    expect(sample(text, "ts_inference_requests_total", { model_name: "echo" })).to.equal(n);
    expect(sample(text, "Requests2XX")).to.equal(n);
  });

  it("labels a request without a version model_version=default, and keeps named versions apart", async () => {
    await request(`${base}/predictions/echo`, { method: "POST" });
    await request(`${base}/predictions/echo/2.0`, { method: "POST" });
    await request(`${base}/predictions/echo/2.0`, { method: "POST" });
    const text = await service.scrape();
    expect(sample(text, "ts_inference_requests_total", { model_version: "default" })).to.equal(1);
    expect(sample(text, "ts_inference_requests_total", { model_version: "2.0" })).to.equal(2);
  });

  it("recognises every inference path family", async () => {
    for (const path of [
      "/predictions/echo",
      "/explanations/echo",
      "/v1/models/echo:predict",
      "/v1/models/echo:explain",
      "/v2/models/echo/infer",
    ]) {
      await request(`${base}${path}`, { method: "POST" });
    }
    const text = await service.scrape();
    expect(sample(text, "ts_inference_requests_total", { model_name: "echo" })).to.equal(5);
  });

  it("counts a 404 (unknown model) in Requests4XX only, creating no ts_* series", async () => {
    const res = await request(`${base}/predictions/nosuchmodel`, { method: "POST" });
    expect(res.status).to.equal(404);
    const text = await service.scrape();
    expect(sample(text, "Requests4XX")).to.equal(1);
    expect(sample(text, "Requests2XX")).to.be.undefined;
    expect(text).not.to.include("nosuchmodel");
  });

  it("counts a non-inference request only in Requests2XX", async () => {
    expect((await request(`${base}/ping`)).status).to.equal(200);
    expect((await request(`${base}/predictions/echo`)).status).to.equal(200); // GET: not an inference
    const text = await service.scrape();
    expect(sample(text, "Requests2XX")).to.equal(2);
    expect(text).not.to.match(/^ts_inference_requests_total\{/m);
  });

  it("adds arrival-to-finish time to the latency counter and leaves WorkerThreadTime at ~0", async () => {
    await request(`${base}/predictions/echo?delay=60`, { method: "POST" });
    const text = await service.scrape();
    const latencyUs = sample(text, "ts_inference_latency_microseconds", { model_name: "echo" }) ?? 0;
    expect(latencyUs).to.be.within(55_000, 5_000_000);
    expect(sample(text, "ts_queue_latency_microseconds", { model_name: "echo" })).to.equal(0);
    expect(sample(text, "QueueTime")).to.equal(0);
    expect(sample(text, "WorkerThreadTime")).to.equal(0);
  });

  it("counts a response whose connection closed before it finished as a 5XX", async () => {
    const err = await request(`${base}/crash`, { method: "GET" }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(Error);
    // The server sees the close asynchronously; poll briefly rather than guess a delay.
    for (let i = 0; i < 50 && sample(await service.scrape(), "Requests5XX") === undefined; i++)
      await sleep(10);
    const text = await service.scrape();
    expect(sample(text, "Requests5XX")).to.equal(1);
    expect(sample(text, "Requests2XX")).to.be.undefined;
  });
});

describe("requestMetrics as (req, res, next) middleware", () => {
  let service: MetricsService;
  let server: Server;
  let base: string;

  /** An express-like app: runs middleware in order, each continuing through next(). */
  function tinyApp(
    ...stack: ((req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void)[]
  ): RequestListener {
    return (req, res) => {
      const run = (i: number, err?: unknown): void => {
        const layer = stack[i];
        if (err !== undefined || layer === undefined) {
          res.statusCode = err === undefined ? 404 : 500;
          res.end();
          return;
        }
        layer(req, res, (e) => run(i + 1, e));
      };
      run(0);
    };
  }

  before(async () => {
    service = await startMetricsService({
      env: {},
      settings: { metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 }, numberOfGpu: 0 },
      logger: createMemoryLogger(),
      hostname: "test-host",
    });
  });
  after(() => service.stop());
  afterEach(() => close(server));

  it("calls next() and records the response the later handler sends", async () => {
    const mw: RequestMetricsMiddleware = requestMetrics(service);
    let reached = false;
    ({ server, base } = await listen(
      tinyApp(mw, (_req, res) => {
        reached = true;
        res.end("ok");
      }),
    ));
    expect(
      (await request(`${base}/v2/models/sentiment/versions/3/infer`, { method: "POST" })).status,
    ).to.equal(200);
    expect(reached).to.be.true;
    const text = await service.scrape();
    expect(
      sample(text, "ts_inference_requests_total", { model_name: "sentiment", model_version: "3" }),
    ).to.equal(1);
  });

  it("records a request no route answers (the app's own 404) in Requests4XX", async () => {
    ({ server, base } = await listen(tinyApp(requestMetrics(service))));
    const before = sample(await service.scrape(), "Requests4XX") ?? 0;
    expect((await request(`${base}/nowhere`)).status).to.equal(404);
    expect(sample(await service.scrape(), "Requests4XX")).to.equal(before + 1);
  });

  it("takes the model from options.model, e.g. a header, instead of the path", async () => {
    const records: InferenceRecord[] = [];
    const recorder = {
      recordInference: (r: InferenceRecord) => records.push(r),
      recordResponse: () => undefined,
    };
    const mw = requestMetrics(recorder, {
      model: (req) => {
        const model = req.headers["x-model"];
        return typeof model === "string" ? { model, version: "7" } : undefined;
      },
    });
    ({ server, base } = await listen(tinyApp(mw, (_req, res) => res.end())));
    await getWithHeaders(`${base}/anything`, { "x-model": "from-header" });
    expect(records).to.have.length(1);
    expect(records[0]).to.include({ model: "from-header", version: "7", status: 200, queueMs: 0 });
    expect(records[0]?.backendMs).to.equal(records[0]?.latencyMs);
  });

  it("hands a valid traceparent's ids over for the exemplar, and none for a bad one", async () => {
    const records: InferenceRecord[] = [];
    const recorder = {
      recordInference: (r: InferenceRecord) => records.push(r),
      recordResponse: () => undefined,
    };
    const mw = requestMetrics(recorder, { model: () => ({ model: "m" }) });
    ({ server, base } = await listen(tinyApp(mw, (_req, res) => res.end())));
    const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };
    await getWithHeaders(`${base}/predictions/m`, { traceparent: `00-${trace.traceId}-${trace.spanId}-01` });
    await getWithHeaders(`${base}/predictions/m`, { traceparent: `00-${trace.traceId}-${trace.spanId}` });
    await getWithHeaders(`${base}/predictions/m`, {});
    expect(records.map((r) => r.trace)).to.deep.equal([trace, undefined, undefined]);
  });
});
