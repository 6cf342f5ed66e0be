import { expect } from "chai";
import { Agent, request as httpRequest } from "node:http";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { MetricsService } from "../../src/service.js";
import { startTestService } from "../support/service.js";

/** One keep-alive request; resolves with the status. */
function send(agent: Agent, url: string, method: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method, agent }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
    req.end(method === "POST" ? "some input" : undefined);
  });
}

function sample(text: string, prefix: string): number {
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function heapAfterGc(): number {
  setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as () => void)();
  return process.memoryUsage().heapUsed;
}

describe("exact counts under load", function () {
  this.timeout(120_000);
  let service: MetricsService;

  before(async () => {
    ({ service } = await startTestService({
      models: [
        {
          model: "echo",
          version: "1.0",
          isDefault: true,
          workers: 4,
          url: undefined,
          command: "node test/fixtures/workers/echo-worker.js --port {port}",
        },
      ],
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      jobQueueSize: 100,
    }));
    await service.workersReady();
  });
  after(() => service.stop());

  async function drive(requests: number, concurrency: number): Promise<{ ok: number; scrapes: number }> {
    const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
    const target = `${service.inferenceUrl ?? ""}/predictions/echo`;
    let next = 0;
    let ok = 0;
    let scrapes = 0;
    const state = { running: true };
    const scraper = (async () => {
      while (state.running) {
        if ((await send(agent, `${service.metricsUrl ?? ""}/metrics`, "GET")) === 200) scrapes++;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < requests) {
          next++;
          if ((await send(agent, target, "POST")) === 200) ok++;
        }
      }),
    );
    state.running = false;
    await scraper;
    agent.destroy();
    return { ok, scrapes };
  }

  it("counts 3,200 requests at concurrency 32, with scrapes every 100 ms, exactly; memory stays flat", async () => {
    await drive(320, 32); // warm-up: JIT, sockets, series
    const heapBefore = heapAfterGc();
    const before = await service.scrape();
    const { ok, scrapes } = await drive(3200, 32);
    const after = await service.scrape();
    const heapAfter = heapAfterGc();

    expect(ok).to.equal(3200);
    const series = 'ts_inference_requests_total{model_name="echo",model_version="default",';
    expect(sample(after, series) - sample(before, series)).to.equal(3200);
    // Every response of both ports counts: the inferences and the scrapes made meanwhile.
    const twoXX = 'Requests2XX{Level="Host",';
    expect(sample(after, twoXX) - sample(before, twoXX)).to.equal(3200 + scrapes);
    const count = 'serve_request_duration_seconds_count{model_name="echo",model_version="default",';
    expect(sample(after, count) - sample(before, count)).to.equal(3200);
    expect(scrapes).to.be.greaterThan(3);
    // The heap of this process (service and test client together) may wobble, not grow with traffic.
    expect(heapAfter - heapBefore, `heap grew from ${heapBefore} to ${heapAfter}`).to.be.below(
      8 * 1024 * 1024,
    );
  });
});
