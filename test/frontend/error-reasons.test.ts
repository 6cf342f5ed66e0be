import { expect } from "chai";
import { request as httpRequest } from "node:http";
import type { ModelWorkerConfig } from "../../src/config/types.js";
import type { MetricsService } from "../../src/service.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";

const FAULTY = "node test/fixtures/workers/faulty-worker.js --port {port}";

function model(name: string, extra: Partial<ModelWorkerConfig> = {}): ModelWorkerConfig {
  return {
    model: name,
    version: "1",
    isDefault: true,
    workers: 1,
    url: undefined,
    command: FAULTY,
    responseTimeoutSeconds: 3,
    ...extra,
  };
}

/** A POST's status, `cut` when the answer broke off, `gave up` when the client left first. */
function post(url: string, giveUpMs?: number): Promise<number | "cut" | "gave up" | "refused"> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { method: "POST", agent: false }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", () => resolve("cut"));
    });
    req.on("error", () => resolve(req.destroyed && giveUpMs !== undefined ? "gave up" : "refused"));
    if (giveUpMs !== undefined) setTimeout(() => req.destroy(), giveUpMs);
    req.end("hello");
  });
}

/** serve_inference_errors_total of one model by reason, as the service counts them now. */
async function errors(service: MetricsService, name: string): Promise<Record<string, number>> {
  const text = await service.scrape(["serve_inference_errors_total"]);
  const out: Record<string, number> = {};
  for (const m of text.matchAll(
    new RegExp(
      `^serve_inference_errors_total\\{model_name="${name}",model_version="default",reason="(\\w+)",hostname="test-host",\\} (.+)$`,
      "gm",
    ),
  ))
    out[m[1] ?? ""] = Number(m[2]);
  return out;
}

describe("serve_inference_errors_total: each failed request counted once, with why", function () {
  this.timeout(60_000);
  let service: MetricsService;
  let base: string;

  before(async () => {
    ({ service } = await startTestService(
      {
        models: [
          model("f"),
          model("slow", { responseTimeoutSeconds: 0.5 }),
          model("busy", { responseTimeoutSeconds: 0.5 }),
          model("never", { command: `FW_NEVER_READY=1 ${FAULTY}`, responseTimeoutSeconds: 0.5 }),
        ],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        jobQueueSize: 1,
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 500 } },
    ));
    base = service.inferenceUrl ?? "";
    for (const name of ["f", "slow", "busy"])
      await until(async () => (await post(`${base}/predictions/${name}?do=ok`)) === 200, `${name} to answer`);
  });
  after(() => service.stop());

  it("starts no reason at 0: a model that only succeeds has no error series", async () => {
    expect(await errors(service, "f")).to.deep.equal({});
  });

  it("tells the worker's own 5XX from an answer HTTP cannot forward and a worker that breaks off", async () => {
    expect(await post(`${base}/predictions/f?do=error`)).to.equal(500);
    expect(await post(`${base}/predictions/f?do=error`)).to.equal(500);
    expect(await post(`${base}/predictions/f?do=switch`)).to.equal(502);
    expect(await post(`${base}/predictions/f?do=reset`)).to.equal(502);
    // A worker's 4XX is the client's error, not the service's.
    expect(await post(`${base}/predictions/f?do=no-such-behaviour`)).to.equal(400);
    expect(await errors(service, "f")).to.deep.equal({
      worker_error: 2,
      worker_protocol: 1,
      worker_unreachable: 1,
    });
  });

  it("counts a worker that sends nothing in time as worker_timeout, and a client that left while queued as client_closed", async () => {
    expect(await post(`${base}/predictions/slow?do=hang`)).to.equal(504);
    // The stuck worker is restarted; waiting on the metrics, not on requests that would fail meanwhile.
    await until(async () => {
      const text = await service.scrape(["serve_worker_restarts_total", "serve_workers"]);
      return (
        /^serve_worker_restarts_total\{model_name="slow",model_version="1",reason="unresponsive",.* 1\.0$/m.test(
          text,
        ) && /^serve_workers\{model_name="slow",model_version="1",state="ready",.* 1\.0$/m.test(text)
      );
    }, "slow's restarted worker");
    // A client that leaves while its request waits for the busy worker. (Once at a worker, a
    // client's close reads as a half-close, which still gets its answer: the worker is waited for.)
    const hanging = post(`${base}/predictions/slow?do=hang`);
    await until(
      async () => /^serve_requests_in_flight\{model_name="slow",.* 1\.0$/m.test(await service.scrape()),
      "slow's worker to be busy",
    );
    expect(await post(`${base}/predictions/slow?do=ok`, 100)).to.equal("gave up");
    expect(await hanging).to.equal(504);
    let seen: Record<string, number> = {};
    await until(async () => {
      seen = await errors(service, "slow");
      return seen.client_closed === 1;
    }, "client_closed to be counted").catch((err: unknown) => {
      throw new Error(`${String(err)}: ${JSON.stringify(seen)}`);
    });
    expect(await errors(service, "slow")).to.deep.equal({ worker_timeout: 2, client_closed: 1 });
  });

  it("tells a full queue, a queue whose worker stayed busy, and a model with no ready worker apart", async () => {
    // The one worker drips its answer for about 1 s; one request may wait (job_queue_size=1).
    const dripping = post(`${base}/predictions/busy?do=drip`);
    await until(
      async () => /^serve_requests_in_flight\{model_name="busy",.* 1\.0$/m.test(await service.scrape()),
      "busy's worker to be busy",
    );
    const queued = post(`${base}/predictions/busy?do=ok`);
    await until(
      async () => /^serve_queue_depth\{model_name="busy",.* 1\.0$/m.test(await service.scrape()),
      "a queued request",
    );
    expect(await post(`${base}/predictions/busy?do=ok`)).to.equal(503);
    expect(await queued).to.equal(503);
    expect(await dripping).to.equal(200);
    expect(await post(`${base}/predictions/never`)).to.equal(503);
    expect(await errors(service, "busy")).to.deep.equal({ queue_full: 1, queue_timeout: 1 });
    expect(await errors(service, "never")).to.deep.equal({ no_worker: 1 });
  });

  it("counts every 5XX response class once in errors too", async () => {
    const text = await service.scrape(["serve_inference_responses_total", "serve_inference_errors_total"]);
    const sum = (pattern: RegExp): number =>
      [...text.matchAll(pattern)].reduce((total, m) => total + Number(m[1]), 0);
    const fives = sum(/^serve_inference_responses_total\{.*status_class="5XX".*\} (.+)$/gm);
    const answered = sum(/^serve_inference_errors_total\{(?!.*client_closed).*\} (.+)$/gm);
    expect(fives).to.be.greaterThan(0);
    expect(answered).to.equal(fives);
  });
});
