import { expect } from "chai";
import { connect } from "node:net";
import type { ModelWorkerConfig } from "../../src/config/types.js";
import type { MetricsService } from "../../src/service.js";
import type { MemoryLogger } from "../../src/log.js";
import { request } from "../support/http.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";

const ECHO = "node test/fixtures/workers/echo-worker.js --port {port}";

function echoModel(overrides: Partial<ModelWorkerConfig> = {}): ModelWorkerConfig {
  return {
    model: "echo",
    version: "1.0",
    isDefault: true,
    workers: 2,
    url: undefined,
    command: ECHO,
    ...overrides,
  };
}

/** The value of the first sample whose line starts with `prefix` (name and leading labels). */
function value(text: string, prefix: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(prefix));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

function count(text: string, prefix: string): number {
  return text.split("\n").filter((l) => l.startsWith(prefix)).length;
}

async function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.on("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.on("error", () => resolve(true));
  });
}

describe("the inference frontend in front of real worker processes", function () {
  this.timeout(30_000);
  let service: MetricsService;
  let logger: MemoryLogger;
  let base: string;
  const workerPorts = new Set<number>();

  before(async () => {
    ({ service, logger } = await startTestService(
      {
        models: [echoModel()],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        jobQueueSize: 4,
        metricLinesMaxBytes: 2048,
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
    ));
    await service.workersReady();
    base = service.inferenceUrl ?? "";
  });
  after(() => service.stop());

  const post = async (
    path: string,
    body = "hello",
  ): Promise<{ status: number; json: Record<string, unknown> }> => {
    const res = await request(`${base}${path}`, { method: "POST", body });
    const json = JSON.parse(res.body) as Record<string, unknown>;
    if (typeof json.port === "number") workerPorts.add(json.port);
    return { status: res.status, json };
  };

  it("answers GET /ping", async () => {
    const res = await request(`${base}/ping`);
    expect([res.status, JSON.parse(res.body)]).to.deep.equal([200, { status: "Healthy" }]);
  });

  it("forwards method, path, query, headers and body unchanged, and streams the answer back", async () => {
    const res = await new Promise<{ status: number; worker: string | undefined; body: string }>(
      (resolve, reject) => {
        import("node:http")
          .then(({ request: send }) => {
            const req = send(
              `${base}/predictions/echo?x=1&y=2`,
              { method: "POST", headers: { "x-test": "kept" } },
              (r) => {
                let body = "";
                r.on("data", (d: Buffer) => (body += d.toString()));
                r.on("end", () =>
                  resolve({
                    status: r.statusCode ?? 0,
                    worker: r.headers["x-worker"] as string | undefined,
                    body,
                  }),
                );
              },
            );
            req.on("error", reject);
            req.end("streamed body");
          })
          .catch(reject);
      },
    );
    expect(res.status).to.equal(200);
    expect(res.worker).to.equal("echo");
    expect(JSON.parse(res.body)).to.deep.include({
      method: "POST",
      path: "/predictions/echo",
      query: "?x=1&y=2",
      header: "kept",
      body: "streamed body",
    });
  });

  for (const path of [
    "/predictions/echo/1.0",
    "/explanations/echo",
    "/v1/models/echo:predict",
    "/v1/models/echo:explain",
    "/v2/models/echo/infer",
    "/v2/models/echo/versions/1.0/infer",
  ]) {
    it(`serves POST ${path}`, async () => {
      const { status, json } = await post(path);
      expect(status).to.equal(200);
      expect(json.path).to.equal(path);
    });
  }

  it("counts N requests exactly, with model_version default when the path names none", async () => {
    const before = await service.scrape();
    const series = 'ts_inference_requests_total{model_name="echo",model_version="default",';
    const ok = 'Requests2XX{Level="Host",';
    // Batches of 5 fit in 2 workers + a queue of 4, so none is refused.
    for (let batch = 0; batch < 5; batch++) {
      const statuses = await Promise.all(Array.from({ length: 5 }, () => post("/predictions/echo")));
      expect(statuses.map((r) => r.status)).to.deep.equal([200, 200, 200, 200, 200]);
    }
    const after = await service.scrape();
    expect((value(after, series) ?? 0) - (value(before, series) ?? 0)).to.equal(25);
    expect((value(after, ok) ?? 0) - (value(before, ok) ?? 0)).to.equal(25);
    expect(value(after, 'ts_inference_requests_total{model_name="echo",model_version="1.0",')).to.equal(2);
    expect(
      value(after, 'serve_request_duration_seconds_count{model_name="echo",model_version="default",'),
    ).to.equal(value(after, series) ?? 0);
    expect(
      value(after, 'ts_inference_latency_microseconds{model_name="echo",model_version="default",'),
    ).to.be.greaterThan(0);
  });

  it("records the workers' [METRICS] lines and their load times, and logs their other lines", async () => {
    const text = await service.scrape();
    expect(text).to.match(/^HandlerTime\{ModelName="echo",Level="Model",Hostname=".+",\} 0\.5$/m);
    expect(count(text, 'WorkerLoadTime{WorkerName="W-')).to.equal(2);
    expect(text).to.match(
      /^WorkerLoadTime\{WorkerName="W-\d+-echo_1\.0",Level="Host",Hostname="test-host",\} \d+\.\d+$/m,
    );
    expect(logger.lines.some((l) => /^INFO \[W-\d+-echo_1\.0\] handled POST \/predictions\/echo$/.test(l))).to
      .be.true;
  });

  it("answers 404 for an unknown model or version, as TorchServe's JSON errors", async () => {
    const model = await post("/predictions/nope");
    expect(model).to.deep.equal({
      status: 404,
      json: { code: 404, type: "ModelNotFoundException", message: "Model not found: nope" },
    });
    const version = await post("/predictions/echo/9.9");
    expect(version.status).to.equal(404);
    expect(version.json.type).to.equal("ModelVersionNotFoundException");
    const get = await request(`${base}/predictions/echo`);
    expect(get.status).to.equal(405);
  });

  it("queues beyond the free workers, shows queue time and depth, and answers 503 past job_queue_size", async () => {
    const before = await service.scrape();
    const queueUs = 'ts_queue_latency_microseconds{model_name="echo",model_version="default",';
    // 2 workers + 4 queued are served; the 7th and 8th find the queue full.
    const pending = Array.from({ length: 8 }, () => post("/predictions/echo?sleep=400"));
    await until(
      async () => value(await service.scrape(), 'serve_queue_depth{model_name="echo",') === 4,
      "a queue of 4",
    );
    const inFlight = 'serve_requests_in_flight{model_name="echo",model_version="1.0",';
    // Both workers hold a request while 4 wait (the queue is not counted in flight).
    expect(value(await service.scrape(), inFlight)).to.equal(2);
    const results = await Promise.all(pending);
    expect(results.map((r) => r.status).sort()).to.deep.equal([200, 200, 200, 200, 200, 200, 503, 503]);
    const refusal = results.find((r) => r.status === 503);
    expect(refusal?.json).to.include({ code: 503, type: "ServiceUnavailableException" });
    const after = await service.scrape();
    expect(value(after, 'QueueTime{Level="Host",')).to.be.greaterThan(0);
    expect((value(after, queueUs) ?? 0) - (value(before, queueUs) ?? 0)).to.be.greaterThan(4 * 300_000);
    expect(value(after, 'serve_queue_depth{model_name="echo",')).to.equal(0);
    expect(value(after, inFlight)).to.equal(0);
  });

  it("answers a worker that dies mid-request with a cut connection, counts 5XX, and restarts the worker", async () => {
    const before = await service.scrape();
    const failed = await request(`${base}/predictions/echo?crash=1`, { method: "POST", body: "x" }).then(
      (r) => r.status,
      () => "cut",
    );
    expect(failed).to.be.oneOf(["cut", 502]);
    await until(
      async () => count(await service.scrape(), 'WorkerLoadTime{WorkerName="W-') === 3,
      "a restarted worker",
    );
    const after = await service.scrape();
    expect(
      (value(after, 'Requests5XX{Level="Host",') ?? 0) - (value(before, 'Requests5XX{Level="Host",') ?? 0),
    ).to.equal(1);
    const next = await Promise.all([post("/predictions/echo"), post("/predictions/echo")]);
    expect(next.map((r) => r.status)).to.deep.equal([200, 200]);
  });

  it("forwards bodies of any size and framing intact, with and without Content-Length", async () => {
    const { request: send } = await import("node:http");
    const roundTrip = (body: string, chunked: boolean) =>
      new Promise<{ status: number; length: string | undefined; body: string }>((resolve, reject) => {
        const req = send(`${base}/predictions/echo`, { method: "POST" }, (r) => {
          const chunks: Buffer[] = [];
          r.on("data", (d: Buffer) => chunks.push(d));
          r.on("end", () =>
            resolve({
              status: r.statusCode ?? 0,
              length: r.headers["content-length"],
              body: Buffer.concat(chunks).toString("utf8"),
            }),
          );
        });
        req.on("error", reject);
        // Writing before end() sends the body chunked, with no Content-Length.
        if (chunked) req.write(body.slice(0, 7));
        req.end(chunked ? body.slice(7) : body);
      });
    // Small bodies go through in one write each way; bodies over 64 KiB (or of unknown size) stream.
    for (const size of [0, 11, 70_000, 300_000]) {
      const body = Array.from({ length: size }, (_, i) => "abcdefghijklmnopqrstuvwxyzé"[i % 27]).join("");
      for (const chunked of [false, true]) {
        const res = await roundTrip(body, chunked);
        expect(res.status, `${size} ${chunked}`).to.equal(200);
        expect((JSON.parse(res.body) as { body: string }).body, `${size} ${chunked}`).to.equal(body);
        expect(Number(res.length)).to.equal(Buffer.byteLength(res.body));
      }
    }
  });

  it("answers a worker that dies before the body it announced is complete with a 502 JSON error", async () => {
    const workers = count(await service.scrape(), 'WorkerLoadTime{WorkerName="W-');
    const res = await request(`${base}/predictions/echo?crash=sized`, { method: "POST", body: "x" });
    expect(res.status).to.equal(502);
    expect(JSON.parse(res.body)).to.include({ code: 502 });
    await until(
      async () => count(await service.scrape(), 'WorkerLoadTime{WorkerName="W-') === workers + 1,
      "a restarted worker",
    );
  });

  describe("POST /metric-lines", () => {
    it("applies the good lines, reports the bad ones by line number, and counts them", async () => {
      const body = [
        "[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:worker-host,1699061430,req",
        "garbage",
        "HandlerTime.Milliseconds:5|#ModelName:mnist,Level:Model|#hostname:worker-host,1699061430",
        "[METRICS]Undeclared.Count:1|#ModelName:mnist|#type:COUNTER|#hostname:h,1699061430",
        "",
      ].join("\n");
      const res = await request(`${base}/metric-lines`, { method: "POST", body });
      expect(res.status).to.equal(200);
      const report = JSON.parse(res.body) as {
        accepted: number;
        rejected: { line: number; reason: string }[];
      };
      expect(report.accepted).to.equal(2);
      expect(report.rejected.map((r) => r.line)).to.deep.equal([2, 4]);
      expect(report.rejected[1]?.reason).to.include("Undeclared");
      const text = await service.scrape();
      expect(text).to.include(
        'PredictionTime{ModelName="mnist",Level="Model",Hostname="worker-host",} 71.95\n',
      );
      expect(text).to.include('HandlerTime{ModelName="mnist",Level="Model",Hostname="worker-host",} 5.0\n');
      expect(value(text, 'serve_metric_lines_rejected_total{source="http",reason="malformed",')).to.equal(1);
      expect(value(text, 'serve_metric_lines_rejected_total{source="http",reason="undeclared",')).to.equal(1);
    });

    it("answers 413 with a JSON error above metric_lines_max_bytes", async () => {
      const res = await request(`${base}/metric-lines`, { method: "POST", body: "x".repeat(4096) });
      expect(res.status).to.equal(413);
      expect(JSON.parse(res.body)).to.include({ code: 413 });
    });

    it("answers 405 for GET", async () => {
      expect((await request(`${base}/metric-lines`)).status).to.equal(405);
    });
  });

  describe("shutdown", () => {
    it("lets a request in flight finish, then leaves no worker running after stop()", async () => {
      expect(workerPorts.size).to.be.greaterThan(0);
      const inFlight = post("/predictions/echo?sleep=600");
      await new Promise((r) => setTimeout(r, 150));
      const started = Date.now();
      await service.stop();
      expect((await inFlight).status).to.equal(200);
      expect(Date.now() - started).to.be.below(5000);
      for (const port of workerPorts) expect(await refused(port), `worker on ${port}`).to.be.true;
      expect(await refused(Number(new URL(base).port))).to.be.true;
    });
  });
});

describe("the inference frontend in front of a worker given by url", function () {
  this.timeout(20_000);

  it("answers 502 when the worker cannot be reached, and counts it as 5XX", async () => {
    const { service } = await startTestService({
      models: [echoModel({ url: "http://127.0.0.1:1", command: undefined, workers: 1 })],
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
    });
    try {
      const res = await request(`${service.inferenceUrl ?? ""}/predictions/echo`, {
        method: "POST",
        body: "x",
      });
      expect(res.status).to.equal(502);
      expect(JSON.parse(res.body)).to.include({ code: 502, type: "BadGatewayException" });
      expect(value(await service.scrape(), 'Requests5XX{Level="Host",')).to.equal(1);
    } finally {
      await service.stop();
    }
  });
});

describe("series of configured models before their first request", function () {
  this.timeout(20_000);

  it("shows every configured version's (and its default's) response classes and durations at 0, and no ts_* series", async () => {
    const { service } = await startTestService({
      models: [
        echoModel({ url: "http://127.0.0.1:1", command: undefined, workers: 1 }),
        echoModel({
          model: "idle",
          version: "2.0",
          url: "http://127.0.0.1:1",
          command: undefined,
          workers: 1,
        }),
        echoModel({
          model: "idle",
          version: "3.0",
          isDefault: false,
          url: "http://127.0.0.1:1",
          command: undefined,
        }),
      ],
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
    });
    try {
      const text = await service.scrape();
      for (const [model, version] of [
        ["echo", "1.0"],
        ["echo", "default"],
        ["idle", "2.0"],
        ["idle", "3.0"],
        ["idle", "default"],
      ]) {
        const labels = `model_name="${model}",model_version="${version}",`;
        for (const cls of ["2XX", "4XX", "5XX"])
          expect(
            value(text, `serve_inference_responses_total{${labels}status_class="${cls}",`),
            labels,
          ).to.equal(0);
        expect(value(text, `serve_request_duration_seconds_count{${labels}`), labels).to.equal(0);
        expect(
          value(text, `serve_request_duration_seconds_bucket{${labels}hostname="test-host",le="+Inf",`),
        ).to.equal(0);
      }
      expect(count(text, "serve_inference_responses_total{")).to.equal(15);
      // In flight per served version, at 0 until a request reaches a worker.
      for (const [model, version] of [
        ["echo", "1.0"],
        ["idle", "2.0"],
        ["idle", "3.0"],
      ])
        expect(
          value(text, `serve_requests_in_flight{model_name="${model}",model_version="${version}",`),
        ).to.equal(0);
      // TorchServe's own families keep TorchServe's behaviour (torchserve_zero_series=false).
      expect(count(text, "ts_inference_requests_total{")).to.equal(0);
    } finally {
      await service.stop();
    }
  });

  it("starts the ts_* counters at 0 too with torchserve_zero_series=true", async () => {
    const { service } = await startTestService({
      models: [echoModel({ url: "http://127.0.0.1:1", command: undefined, workers: 1 })],
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      torchserveZeroSeries: true,
    });
    try {
      const text = await service.scrape();
      for (const name of [
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "ts_queue_latency_microseconds",
      ])
        for (const version of ["1.0", "default"])
          expect(value(text, `${name}{model_name="echo",model_version="${version}",`), name).to.equal(0);
    } finally {
      await service.stop();
    }
  });
});

describe("series expiry (series_expiry_seconds)", function () {
  this.timeout(30_000);

  it("leaves out a dead worker's and an idle model's series, keeping live workers' and host metrics", async () => {
    const { service } = await startTestService(
      {
        models: [echoModel()],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        seriesExpirySeconds: 1,
        metricTimeInterval: 0.2,
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
    );
    try {
      await service.workersReady();
      const base = service.inferenceUrl ?? "";
      await request(`${base}/predictions/echo`, { method: "POST", body: "x" });
      await request(`${base}/predictions/echo?crash=1`, { method: "POST", body: "x" }).catch(() => undefined);
      await until(
        async () => count(await service.scrape(), 'WorkerLoadTime{WorkerName="W-') === 3,
        "a restarted worker",
      );
      await new Promise((r) => setTimeout(r, 1300));
      const text = await service.scrape();
      expect(count(text, 'WorkerLoadTime{WorkerName="W-')).to.equal(2); // the dead worker's series is gone
      expect(text).not.to.include('ts_inference_requests_total{model_name="echo"');
      expect(text).to.match(/^MemoryUsed\{/m);
      await request(`${base}/predictions/echo`, { method: "POST", body: "x" });
      // Back as a new series: expiry evicted it, so the counter starts over.
      expect(
        value(
          await service.scrape(),
          'ts_inference_requests_total{model_name="echo",model_version="default",',
        ),
      ).to.equal(1);
    } finally {
      await service.stop();
    }
  });
});
