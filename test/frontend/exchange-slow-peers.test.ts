import { expect } from "chai";
import { request as httpRequest } from "node:http";
import { connect, type Socket } from "node:net";
import type { ModelWorkerConfig } from "../../src/config/types.js";
import type { MetricsService } from "../../src/service.js";
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
    // Short on purpose: every client below makes the service wait longer than this.
    responseTimeoutSeconds: 1,
    ...extra,
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A sum over the series of `name` in a scrape (0 when it has none). */
function total(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `))
      sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** A raw HTTP/1.1 exchange: the status and body that came back before the connection closed. */
interface RawAnswer {
  status: number;
  headers: string;
  body: string;
}

function parseRaw(text: string): RawAnswer {
  const end = text.indexOf("\r\n\r\n");
  const head = end < 0 ? text : text.slice(0, end);
  return {
    status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0),
    headers: head,
    body: end < 0 ? "" : text.slice(end + 4),
  };
}

/** Opens a connection and hands it to `drive`; resolves with all it received once it closes. */
function rawClient(port: number, drive: (socket: Socket) => Promise<void> | void): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1", () => {
      Promise.resolve(drive(socket)).catch(reject);
    });
    let text = "";
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (text += d));
    socket.on("error", () => undefined);
    socket.on("close", () => resolve(parseRaw(text)));
  });
}

describe("the inference frontend with slow and stalled clients", function () {
  this.timeout(90_000);
  let service: MetricsService;
  let base: string;
  let port: number;

  before(async () => {
    ({ service } = await startTestService(
      {
        models: [model("s", 1), model("x", 2)],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        clientBodyTimeoutSeconds: 5,
        clientReadTimeoutSeconds: 3,
      },
      { workerTimings: { backoff: { initialMs: 200, maxMs: 400 }, stopGraceMs: 500 } },
    ));
    base = service.inferenceUrl ?? "";
    port = Number(new URL(base).port);
    await until(async () => (await ok("s").catch(() => undefined)) !== undefined, "model s to answer");
    await until(async () => (await ok("x").catch(() => undefined)) !== undefined, "model x to answer");
  });
  after(() => service.stop());

  /** A healthy request's answer: the worker's pid (a restart changes it). */
  function ok(name: string): Promise<number | undefined> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        `${base}/predictions/${name}?do=ok`,
        { method: "POST", agent: false },
        (res) => {
          let body = "";
          res.setEncoding("utf8");
          res.on("data", (d: string) => (body += d));
          res.on("end", () =>
            resolve(res.statusCode === 200 ? (JSON.parse(body) as { pid: number }).pid : undefined),
          );
        },
      );
      req.on("error", reject);
      req.end("hello");
    });
  }

  async function restarts(): Promise<number> {
    return total(await service.scrape(["serve_worker_restarts_total"]), "serve_worker_restarts_total");
  }

  async function counts(): Promise<{ r2: number; r4: number; r5: number }> {
    const text = await service.scrape(["Requests2XX", "Requests4XX", "Requests5XX"]);
    return { r2: total(text, "Requests2XX"), r4: total(text, "Requests4XX"), r5: total(text, "Requests5XX") };
  }

  /** Runs `client`, then checks the worker was neither restarted nor blamed and answers at once. */
  async function workerUntouched(client: () => Promise<void>): Promise<void> {
    const pid = await ok("s");
    const before = await restarts();
    await client();
    expect(await ok("s"), "the same worker process answers a healthy request").to.equal(pid);
    expect(await restarts(), "serve_worker_restarts_total").to.equal(before);
  }

  it("waits for a client that pauses mid-body longer than responseTimeout, and answers it", async () => {
    await workerUntouched(async () => {
      const answer = await rawClient(port, async (socket) => {
        socket.write(
          "POST /predictions/s?do=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 10\r\n\r\nhello",
        );
        await sleep(2500);
        socket.write("world");
      });
      expect(answer.status).to.equal(200);
      expect(JSON.parse(answer.body)).to.include({ bodyBytes: 10 });
    });
  });

  it("waits for a client that uploads slowly, a byte at a time, for longer than responseTimeout", async () => {
    await workerUntouched(async () => {
      const answer = await rawClient(port, async (socket) => {
        socket.write(
          "POST /predictions/s?do=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 8\r\n\r\n",
        );
        for (let i = 0; i < 8; i++) {
          await sleep(300);
          socket.write("u");
        }
      });
      expect(answer.status).to.equal(200);
    });
  });

  it("waits for a streamed upload (over 64 KiB) that pauses mid-body, and answers it", async () => {
    await workerUntouched(async () => {
      const size = 100 * 1024;
      const answer = await rawClient(port, async (socket) => {
        socket.write(
          `POST /predictions/s?do=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${size}\r\n\r\n`,
        );
        socket.write("a".repeat(size / 2));
        await sleep(2500);
        socket.write("a".repeat(size / 2));
      });
      expect(answer.status).to.equal(200);
      expect(JSON.parse(answer.body)).to.include({ bodyBytes: size });
    });
  });

  it("answers 408 to a client whose body stops past client_body_timeout, counted once, worker untouched", async () => {
    for (const size of [10, 100 * 1024]) {
      await workerUntouched(async () => {
        const before = await counts();
        const answer = await rawClient(port, (socket) => {
          socket.write(
            `POST /predictions/s?do=ok HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\nhalf`,
          );
        });
        expect(answer.status, `a body of ${size} bytes`).to.equal(408);
        expect(answer.headers).to.match(/\r\nconnection: close/i);
        const error = JSON.parse(answer.body) as { code: number; type: string; message: string };
        expect(error).to.include({ code: 408, type: "RequestTimeoutException" });
        expect(error.message).to.match(/client_body_timeout/);
        const after = await counts();
        expect(after).to.deep.equal({ r2: before.r2, r4: before.r4 + 1, r5: before.r5 });
      });
    }
  });

  it("cuts a client that leaves a large answer unread past client_read_timeout, worker untouched", async () => {
    await workerUntouched(async () => {
      const before = await counts();
      let received = 0;
      const socket = connect(port, "127.0.0.1");
      socket.on("error", () => undefined);
      const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
      socket.write("POST /predictions/s?do=big HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      socket.pause();
      // The answer began (a 200 went out), so the cut is counted when the exchange ends.
      await until(async () => (await counts()).r2 > before.r2, "the exchange to end", 20_000);
      socket.on("data", (d: Buffer) => (received += d.length));
      socket.resume();
      await closed;
      expect(received)
        .to.be.above(0)
        .and.below(64 * 1024 * 1024);
    });
  });

  it("lets a client that reads slowly, but reads, have the whole large answer", async () => {
    await workerUntouched(async () => {
      let received = 0;
      const answer = await new Promise<number>((resolve, reject) => {
        const req = httpRequest(`${base}/predictions/s?do=big`, { method: "POST", agent: false }, (res) => {
          // About 2 s of pauses in all, each shorter than client_read_timeout.
          res.on("data", (d: Buffer) => {
            received += d.length;
            if (received % (8 * 1024 * 1024) < d.length) {
              res.pause();
              setTimeout(() => res.resume(), 250);
            }
          });
          res.on("end", () => resolve(received));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end();
      });
      expect(answer).to.equal(64 * 1024 * 1024);
    });
  });
});

describe("the inference frontend with a worker that exits after each answer", function () {
  this.timeout(90_000);

  it("sends a request that never reached the exited worker to the other one: no 502, once each", async () => {
    const { service } = await startTestService(
      {
        models: [model("e", 2, { responseTimeoutSeconds: 10 })],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      },
      { workerTimings: { backoff: { initialMs: 200, maxMs: 400 }, stopGraceMs: 500 } },
    );
    try {
      const base = service.inferenceUrl ?? "";
      const post = (what: string): Promise<{ status: number; body: string }> =>
        new Promise((resolve, reject) => {
          const req = httpRequest(`${base}/predictions/e?do=${what}`, { method: "POST" }, (res) => {
            let body = "";
            res.setEncoding("utf8");
            res.on("data", (d: string) => (body += d));
            res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
          });
          req.on("error", reject);
          req.end("hello");
        });
      const ready = async (): Promise<boolean> =>
        /"status": "Healthy"/.test(
          await new Promise<string>((resolve) => {
            httpRequest(`${base}/ping`, (res) => {
              let body = "";
              res.on("data", (d: Buffer) => (body += d.toString()));
              res.on("end", () => resolve(body));
            })
              .on("error", () => resolve(""))
              .end();
          }),
        );
      const statuses: number[] = [];
      const failures: string[] = [];
      for (let round = 0; round < 8; round++) {
        // Both workers ready, so the second request has a worker to go to.
        await until(ready, "both workers ready");
        const [first, second] = await Promise.all([post("ok-then-exit"), post("ok")]);
        const third = await post("ok");
        statuses.push(first.status, second.status, third.status);
        for (const answer of [first, second, third]) {
          // A clean close (FIN) is not sent again: a worker that read the request and then exited
          // closes the same way. It happens when the exit lands after the one-turn look (seen once
          // on Node 24); a reset, or a connection never made, must always go to the other worker.
          if (answer.status === 502 && answer.body.includes("the connection closed (other side closed)"))
            continue;
          if (answer.status !== 200) failures.push(answer.body);
        }
      }
      expect(failures).to.deep.equal([]);
      expect(statuses.filter((s) => s === 200).length, "most requests answered").to.be.at.least(20);

      // A worker that read the request and died may have acted on it: that is never sent again.
      await until(ready, "a worker ready");
      const restarts = async (): Promise<number> =>
        total(await service.scrape(["serve_worker_restarts_total"]), "serve_worker_restarts_total");
      const before = await restarts();
      const died = await post("die");
      expect(died.status).to.equal(502);
      await until(async () => (await restarts()) > before, "the dead worker's restart");
      await sleep(1500);
      expect(await restarts(), "only the worker that saw the request died").to.equal(before + 1);
    } finally {
      await service.stop();
    }
  });
});
