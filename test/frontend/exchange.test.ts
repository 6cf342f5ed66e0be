import { expect } from "chai";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import type { ModelWorkerConfig } from "../../src/config/types.js";
import type { MemoryLogger } from "../../src/log.js";
import type { MetricsService } from "../../src/service.js";
import { request } from "../support/http.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";

const FAULTY = "node test/fixtures/workers/faulty-worker.js --port {port}";

function model(name: string, workers: number, extra: Partial<ModelWorkerConfig> = {}): ModelWorkerConfig {
  return {
    model: name,
    version: "1",
    isDefault: true,
    workers,
    url: undefined,
    command: FAULTY,
    responseTimeoutSeconds: 3,
    ...extra,
  };
}

/** Requests2XX, Requests4XX, Requests5XX as the service counts them now. */
async function responses(service: MetricsService): Promise<[number, number, number]> {
  const text = await service.scrape(["Requests2XX", "Requests4XX", "Requests5XX"]);
  const read = (name: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
  };
  return [read("Requests2XX"), read("Requests4XX"), read("Requests5XX")];
}

interface Outcome {
  status: number;
  body: string;
  /** The connection was cut after the status arrived. */
  cut: boolean;
}

/** A POST that reports a cut body instead of failing, with an optional give-up time. */
function post(
  url: string,
  options: { body?: string; headers?: Record<string, string>; giveUpMs?: number } = {},
) {
  return new Promise<Outcome | "gave up" | "refused">((resolve) => {
    const req = httpRequest(url, { method: "POST", agent: false, headers: options.headers }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body, cut: false }));
      res.on("error", () => resolve({ status: res.statusCode ?? 0, body, cut: true }));
    });
    req.on("error", () => resolve(req.destroyed && options.giveUpMs !== undefined ? "gave up" : "refused"));
    if (options.giveUpMs !== undefined) setTimeout(() => req.destroy(), options.giveUpMs);
    req.end(options.body ?? "hello");
  });
}

function json(outcome: Outcome | string): Record<string, unknown> {
  if (typeof outcome === "string") throw new Error(`no response: ${outcome}`);
  return JSON.parse(outcome.body) as Record<string, unknown>;
}

describe("the inference frontend against faulty workers and impatient clients", function () {
  this.timeout(60_000);
  let service: MetricsService;
  let logger: MemoryLogger;
  let base: string;

  before(async () => {
    ({ service, logger } = await startTestService(
      {
        models: [
          model("f", 2),
          model("queue", 1),
          // 128 MiB of output before its answer takes seconds on a loaded machine: no timing test here.
          model("flood", 1, { responseTimeoutSeconds: 60 }),
          model("slow", 1, { responseTimeoutSeconds: 0.5 }),
          model("never", 1, {
            command: `FW_NEVER_READY=1 ${FAULTY}`,
            startupTimeoutSeconds: 1,
            responseTimeoutSeconds: 0.5,
          }),
          model("dies", 1, { command: `FW_DIE_AT_START=1 ${FAULTY}`, responseTimeoutSeconds: 0.5 }),
        ],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        jobQueueSize: 5,
      },
      { workerTimings: { backoff: { initialMs: 200, maxMs: 400 }, stopGraceMs: 500 } },
    ));
    base = service.inferenceUrl ?? "";
    await until(
      async () => (await post(`${base}/predictions/f?do=ok`)) !== "refused",
      "model f to be served",
    );
    for (const name of ["f", "queue", "slow", "flood"]) await answered(name);
  });
  after(() => service.stop());

  /** Waits until `name` answers a healthy request (its worker may be restarting). */
  async function answered(name: string): Promise<void> {
    await until(async () => {
      const outcome = await post(`${base}/predictions/${name}?do=ok`);
      return typeof outcome === "object" && outcome.status === 200;
    }, `model ${name} to answer`);
  }

  /** A healthy request to `name` answers 200 within its response timeout: nothing leaked. */
  async function healthy(name = "f"): Promise<void> {
    const outcome = await post(`${base}/predictions/${name}?do=ok`);
    expect(outcome, `a healthy request to ${name}: ${JSON.stringify(outcome)}`).to.include({ status: 200 });
  }

  describe("answers a worker that breaks HTTP, and stays up", () => {
    const cases: [string, number[]][] = [
      // Bytes after a whole answer (Content-Length counting characters of UTF-8, a body on a 204)
      // break that connection only: the answer goes through as framed, and the next request works.
      ["utf8-length", [200]],
      ["extra-bytes", [200]],
      ["no-content", [204]],
      ["status-099", [502]],
      ["status-000", [502]],
      ["status-999", [502]],
      ["switch", [502]],
      ["early-hints", [200]],
      // A bad chunk size before any of the body: nothing was sent, so the client gets a 502.
      ["bad-chunks", [502]],
    ];
    for (const [behaviour, statuses] of cases) {
      it(`${behaviour}: answers ${statuses.join(" or ")}, counts it once, and serves the next request`, async () => {
        const before = await responses(service);
        const outcome = await post(`${base}/predictions/f?do=${behaviour}`);
        expect(outcome).to.not.be.a("string");
        if (typeof outcome === "string") return;
        expect(statuses).to.include(outcome.status);
        if (outcome.status === 502) {
          const error = json(outcome);
          expect(error).to.include({ code: 502, type: "BadGatewayException" });
          // The worker's internal address is nobody's business.
          expect(String(error.message)).to.not.match(/127\.0\.0\.1|:\d{4,5}\b/);
        }
        const after = await responses(service);
        const klass = outcome.status < 300 ? 0 : 2;
        expect(after[klass] - before[klass], "the response's class").to.equal(1);
        expect(after.reduce((a, b) => a + b) - before.reduce((a, b) => a + b), "responses").to.equal(1);
        await healthy();
        await healthy();
      });
    }
  });

  it("gives a request whose worker hangs a 504 after responseTimeout and restarts the worker", async () => {
    const outcome = await post(`${base}/predictions/slow?do=hang`);
    expect(json(outcome)).to.include({ code: 504 });
    await until(
      () => logger.lines.some((l) => /no answer within 0\.5 s to a request, so it was stopped/.test(l)),
      "the stuck worker to be stopped",
    );
    await answered("slow");
  });

  it("gives a 504 to an answer of known small size that stalls (nothing was sent yet)", async () => {
    expect(json(await post(`${base}/predictions/slow?do=stall-small`))).to.include({ code: 504 });
    await answered("slow");
  });

  it("cuts the connection of a streamed answer that stalls mid-body, counting a 5XX", async () => {
    const before = await responses(service);
    const outcome = await post(`${base}/predictions/slow?do=stall`);
    expect(outcome).to.deep.include({ status: 200, cut: true });
    expect((await responses(service))[2] - before[2]).to.equal(1);
    await answered("slow");
  });

  it("lets an answer that drips for longer than responseTimeout finish: only silence times out", async () => {
    const outcome = await post(`${base}/predictions/slow?do=drip`);
    expect(outcome).to.deep.equal({ status: 200, body: "x".repeat(50), cut: false });
  });

  it("frees the queue place of a client that gives up while queued", async () => {
    // The only worker is busy for about a second; three clients queue behind it and give up.
    const busy = post(`${base}/predictions/queue?do=drip`);
    await new Promise((r) => setTimeout(r, 50));
    const quitters = await Promise.all(
      [1, 2, 3].map(() => post(`${base}/predictions/queue`, { giveUpMs: 100 })),
    );
    expect(quitters).to.deep.equal(["gave up", "gave up", "gave up"]);
    const depth = await service.scrape(["serve_queue_depth"]);
    expect(depth).to.match(/serve_queue_depth\{[^}]*model_name="queue"[^}]*\} 0\.0/);
    expect(await busy).to.include({ status: 200 });
    await healthy("queue");
    await healthy("queue");
  });

  it("lets requests queued behind a worker that dies wait for another worker", async () => {
    // Both workers busy: one drips, the other is about to die; three requests queue behind them.
    const drip = post(`${base}/predictions/f?do=drip`);
    await new Promise((r) => setTimeout(r, 30));
    const dying = post(`${base}/predictions/f?do=die`);
    await new Promise((r) => setTimeout(r, 30));
    const queued = await Promise.all([1, 2, 3].map(() => post(`${base}/predictions/f?do=ok`)));
    expect(queued.map((q) => (typeof q === "string" ? q : q.status))).to.deep.equal([200, 200, 200]);
    const died = await dying;
    expect(json(died)).to.include({ code: 502 });
    expect(String(json(died).message)).to.not.include("127.0.0.1");
    expect(await drip).to.include({ status: 200 });
  });

  it("lends a worker whose connection failed nothing until it answers /ping again, then serves on with it", async () => {
    const before = json(await post(`${base}/predictions/queue?do=ok`)).pid;
    const reset = json(await post(`${base}/predictions/queue?do=reset`));
    expect(reset).to.include({ code: 502 });
    expect(String(reset.message)).to.match(/ECONNRESET|socket hang up/);
    await until(() => logger.lines.some((l) => l.includes("answers /ping again")), "the worker to recover");
    // The same process, not a restart: the fault only took it out of the pool for a ping.
    expect(json(await post(`${base}/predictions/queue?do=ok`)).pid).to.equal(before);
  });

  it("answers 503 after responseTimeout for a model whose worker never gets ready, and /ping says Unhealthy", async () => {
    const outcome = await post(`${base}/predictions/never`);
    expect(json(outcome)).to.include({ code: 503 });
    expect(String(json(outcome).message)).to.match(/no worker is ready/);
    const ping = await request(`${base}/ping`);
    expect(ping.status).to.equal(500);
    expect(JSON.parse(ping.body)).to.deep.equal({ status: "Unhealthy", notReady: ["never 1", "dies 1"] });
    await until(
      () => logger.lines.some((l) => /not ready within 1000 ms, so it was stopped/.test(l)),
      "the worker that never gets ready to be restarted",
    );
  });

  it("answers 503 after responseTimeout for a model whose worker dies at start", async () => {
    const outcome = await post(`${base}/predictions/dies`);
    expect(json(outcome)).to.include({ code: 503 });
  });

  it("forwards the path it routed: dot segments, %2e, backslashes and absolute form", async () => {
    for (const path of [
      "/predictions/zzz/../f?do=ok",
      "/predictions/zzz/%2e%2e/f?do=ok",
      "/predictions\\zzz\\..\\f?do=ok",
    ]) {
      const echo = json(await post(`${base}${path}`));
      expect(echo, path).to.include({ path: "/predictions/f", search: "?do=ok" });
    }
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(Number(new URL(base).port), "127.0.0.1", () =>
        socket.write(
          "POST http://internal.example:9000/predictions/f?do=ok HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        ),
      );
      let text = "";
      socket.on("data", (d: Buffer) => (text += d.toString()));
      socket.on("close", () => resolve(text));
    });
    expect(JSON.parse(raw.slice(raw.indexOf("\r\n\r\n") + 4))).to.include({ path: "/predictions/f" });
  });

  it("forwards no header that Connection names, either way", async () => {
    const outcome = await post(`${base}/predictions/f?do=hop-headers`, {
      headers: { Connection: "x-client-secret", "X-Client-Secret": "s", "X-Kept": "k" },
    });
    const echo = json(outcome);
    const seen = echo.headers as Record<string, string>;
    expect(seen).to.include({ "x-kept": "k" });
    expect(seen).to.not.have.property("x-client-secret");
    const res = await new Promise<Record<string, unknown>>((resolve) => {
      httpRequest(`${base}/predictions/f?do=hop-headers`, { method: "POST", agent: false }, (r) => {
        r.resume();
        resolve(r.headers);
      }).end();
    });
    expect(res).to.not.have.property("x-internal");
  });

  it("answers a client that waits for 100 Continue, and does not pass the expectation on", async () => {
    const outcome = await new Promise<{ status: number; body: string; continued: boolean }>(
      (resolve, reject) => {
        let continued = false;
        const req = httpRequest(
          `${base}/predictions/f?do=ok`,
          { method: "POST", agent: false, headers: { Expect: "100-continue", "Content-Length": "5" } },
          (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => (body += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body, continued }));
          },
        );
        // The body goes only once this service said to go on.
        req.on("continue", () => {
          continued = true;
          req.end("hello");
        });
        req.on("error", reject);
      },
    );
    expect(outcome).to.include({ status: 200, continued: true });
    const seen = (JSON.parse(outcome.body) as { headers: Record<string, string> }).headers;
    expect(seen).to.include({ "content-length": "5" });
    expect(seen).to.not.have.property("expect");
  });

  it("answers 502 to a client still sending its body when the worker's connection fails", async () => {
    const recovered = (): number => logger.lines.filter((l) => l.includes("answers /ping again")).length;
    const before = recovered();
    const outcome = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(
        `${base}/predictions/f?do=reset`,
        { method: "POST", agent: false, headers: { "Transfer-Encoding": "chunked" } },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          req.end();
        },
      );
      req.on("error", reject);
      // The first chunk goes out, the rest is held until the answer: the upload is under way.
      req.write("x".repeat(1024));
    });
    expect(outcome.status).to.equal(502);
    expect(JSON.parse(outcome.body)).to.include({ code: 502, type: "BadGatewayException" });
    await until(() => recovered() > before, "the worker to recover");
  });

  /** Writes `text` on a fresh connection, ends its side when `halfClose`, and returns all that came back. */
  function raw(text: string, halfClose = false): Promise<string> {
    return new Promise((resolve) => {
      const socket = connect(Number(new URL(base).port), "127.0.0.1", () => {
        if (halfClose) socket.end(text);
        else socket.write(text);
      });
      let received = "";
      socket.on("data", (d: Buffer) => (received += d.toString("latin1")));
      socket.on("error", () => undefined);
      socket.on("close", () => resolve(received));
    });
  }

  it("refuses a transfer coding other than chunked with a counted 501, before any worker sees it", async () => {
    const before = await responses(service);
    const answer = await raw(
      "POST /predictions/f?do=ok HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    expect(answer).to.match(/^HTTP\/1\.1 501 /);
    const body = JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4)) as Record<string, unknown>;
    expect(body).to.include({ code: 501 });
    expect(String(body.message)).to.include("gzip, chunked");
    expect((await responses(service))[2] - before[2], "a 5XX").to.equal(1);
    // Plain chunked still goes through.
    const chunked = await raw(
      "POST /predictions/f?do=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    );
    expect(chunked).to.match(/^HTTP\/1\.1 200 /);
  });

  it("answers a client that half-closes after a whole request", async () => {
    const answer = await raw(
      "POST /predictions/f?do=ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
      true,
    );
    expect(answer).to.match(/^HTTP\/1\.1 200 /);
    expect(answer).to.include('"path":"/predictions/f"');
  });

  it("answers CONNECT with a counted 405 JSON error", async () => {
    const before = await responses(service);
    const answer = await raw("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    expect(answer).to.match(/^HTTP\/1\.1 405 /);
    expect(JSON.parse(answer.slice(answer.indexOf("\r\n\r\n") + 4))).to.include({ code: 405 });
    expect((await responses(service))[1] - before[1]).to.equal(1);
  });

  it("cuts a worker's output line that never ends at 64 KiB, without holding it", async () => {
    const rssBefore = process.memoryUsage().rss;
    const outcome = await post(`${base}/predictions/flood?do=flood`);
    expect(outcome).to.include({ status: 200 });
    await until(() => logger.lines.some((l) => l.includes("flood over")), "the line after the flood");
    const cut = logger.lines.find((l) => l.includes("line longer than 65536 bytes cut"));
    expect(cut).to.match(/"y{200}"…$/);
    // 128 MiB went through; readline would have held all of it (twice, as a string).
    expect(process.memoryUsage().rss - rssBefore).to.be.below(96 * 1024 * 1024);
  });
});

describe("stopping while a worker crash-loops", function () {
  this.timeout(30_000);

  it("logs no ERROR: a stop before every worker was ready once is no failure", async () => {
    const { service, logger } = await startTestService(
      {
        models: [model("dies", 1, { command: `FW_DIE_AT_START=1 ${FAULTY}` })],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 200 }, stopGraceMs: 500 } },
    );
    await until(() => logger.lines.some((l) => /exited with code 1; restarting/.test(l)), "a crash");
    await service.stop();
    expect(logger.lines.filter((l) => l.startsWith("ERROR"))).to.deep.equal([]);
  });
});
