import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { connect } from "node:net";
import { join } from "node:path";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { ConfigError } from "../../src/config/errors.js";
import { createMemoryLogger } from "../../src/log.js";
import { createMetricsHandler, type MetricsEndpoint } from "../../src/server/metrics-handler.js";
import type { MetricsService } from "../../src/service.js";
import { request } from "../support/http.js";
import { freePort } from "../support/net.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";
import { tempDir } from "../support/temp.js";

/** TorchServe's own prometheus-mode test patterns for the frontend and host metrics; each must match once. */
const TORCHSERVE_PATTERNS = [
  /TYPE Requests2XX counter/g,
  /Requests2XX\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE CPUUtilization gauge/g,
  /CPUUtilization\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE MemoryUsed gauge/g,
  /MemoryUsed\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE MemoryAvailable gauge/g,
  /MemoryAvailable\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE MemoryUtilization gauge/g,
  /MemoryUtilization\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE DiskUsage gauge/g,
  /DiskUsage\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE DiskUtilization gauge/g,
  /DiskUtilization\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
  /TYPE DiskAvailable gauge/g,
  /DiskAvailable\{Level="Host",Hostname=".+",\} \d+\.\d+/g,
];

function sampleValue(text: string, sample: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${sample} `) || l.startsWith(`${sample}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

describe("the metrics API on loopback", () => {
  let service: MetricsService;
  let url: string;

  before(async () => {
    ({ service, url } = await startTestService());
  });
  after(() => service.stop());

  it("answers GET /metrics with TorchServe's content type and every catalog family", async () => {
    const res = await request(url);
    expect(res.status).to.equal(200);
    expect(res.headers["content-type"]).to.equal("text/plain; version=0.0.4; charset=utf-8");
    expect(Number(res.headers["content-length"])).to.equal(Buffer.byteLength(res.body));
    for (const m of loadDefaultCatalog().metrics) {
      expect(res.body).to.include(
        `# HELP ${m.name} Torchserve prometheus ${m.type} metric with unit: ${m.unit}\n# TYPE ${m.name} ${m.type}\n`,
      );
    }
  });

  it("matches each of TorchServe's own host-metric test patterns exactly once", async () => {
    await request(url);
    const { body } = await request(url);
    for (const pattern of TORCHSERVE_PATTERNS) {
      expect(body.match(pattern) ?? [], String(pattern)).to.have.length(1);
    }
  });

  it("shows the GPU families with no samples when there is no GPU", async () => {
    const { body } = await request(url);
    expect(body).to.include("# TYPE GPUUtilization gauge\n# HELP");
    expect(body).not.to.match(/^GPU/m);
  });

  it("counts every response, the scrape itself included, in Requests2XX/4XX", async () => {
    const before = (await request(url)).body;
    await request(url.replace("/metrics", "/nope"));
    await request(url, { method: "POST" });
    const after = (await request(url)).body;
    expect(sampleValue(after, "Requests2XX")).to.equal((sampleValue(before, "Requests2XX") ?? 0) + 1);
    expect(sampleValue(after, "Requests4XX")).to.equal((sampleValue(before, "Requests4XX") ?? 0) + 2);
  });

  it("answers HEAD with the headers and no body", async () => {
    const res = await request(url, { method: "HEAD" });
    expect(res.status).to.equal(200);
    expect(res.headers["content-type"]).to.equal("text/plain; version=0.0.4; charset=utf-8");
    expect(Number(res.headers["content-length"])).to.be.greaterThan(1000);
    expect(res.body).to.equal("");
  });

  for (const method of ["POST", "PUT", "DELETE", "OPTIONS"]) {
    it(`answers ${method} /metrics with 405 and a JSON error`, async () => {
      const res = await request(url, { method });
      expect(res.status).to.equal(405);
      expect(res.headers.allow).to.equal("GET, HEAD");
      expect(res.headers["content-type"]).to.equal("application/json");
      expect(JSON.parse(res.body)).to.deep.include({ code: 405, type: "MethodNotAllowedException" });
    });
  }

  for (const path of ["/", "/metric", "/metrics/extra", "/predictions/x"]) {
    it(`answers GET ${path} with 404 and a JSON error`, async () => {
      const res = await request(url.replace("/metrics", path));
      expect(res.status).to.equal(404);
      const body = JSON.parse(res.body) as { code: number; type: string; message: string };
      expect(body).to.include({ code: 404, type: "ResourceNotFoundException" });
      expect(body.message).to.be.a("string").and.not.be.empty;
    });
  }

  it("answers a malformed request with 400 and counts it", async () => {
    const before = sampleValue((await request(url)).body, "Requests4XX") ?? 0;
    const port = Number(new URL(url).port);
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, "127.0.0.1", () => socket.write("NOT HTTP AT ALL\r\n\r\n"));
      let data = "";
      socket.on("data", (d) => (data += d.toString()));
      socket.on("end", () => resolve(data));
      socket.on("error", reject);
    });
    expect(reply).to.match(/^HTTP\/1\.1 400 /);
    expect(sampleValue((await request(url)).body, "Requests4XX")).to.equal(before + 1);
  });

  describe("name[] over HTTP", () => {
    before(() => {
      service.recordInference({ model: "resnet18", status: 200, latencyMs: 290.371129, queueMs: 0.36521 });
    });

    it("returns only the asked families, brackets raw or URL-encoded", async () => {
      const raw = await request(
        `${url}?name[]=ts_inference_latency_microseconds&name[]=ts_queue_latency_microseconds`,
      );
      const encoded = await request(
        `${url}?name%5B%5D=ts_inference_latency_microseconds&name%5B%5D=ts_queue_latency_microseconds`,
      );
      const expected = [
        "# HELP ts_inference_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds",
        "# TYPE ts_inference_latency_microseconds counter",
        'ts_inference_latency_microseconds{model_name="resnet18",model_version="default",hostname="test-host",} 290371.129',
        "# HELP ts_queue_latency_microseconds Torchserve prometheus counter metric with unit: Microseconds",
        "# TYPE ts_queue_latency_microseconds counter",
        'ts_queue_latency_microseconds{model_name="resnet18",model_version="default",hostname="test-host",} 365.21',
        "",
      ].join("\n");
      expect(raw.body).to.equal(expected);
      expect(encoded.body).to.equal(expected);
    });

    it("answers 200 with an empty body when nothing matches", async () => {
      const res = await request(`${url}?name[]=NoSuchMetric`);
      expect(res.status).to.equal(200);
      expect(res.body).to.equal("");
    });

    it("ignores name= without brackets", async () => {
      const res = await request(`${url}?name=Requests2XX`);
      expect(res.body).to.include("# TYPE GPUUtilization gauge");
    });
  });
});

describe("metrics API settings", () => {
  it("opens no port with enable_metrics_api=false, and still collects", async () => {
    const port = await freePort();
    const { service } = await startTestService({
      enableMetricsApi: false,
      metricsAddress: { protocol: "http", host: "127.0.0.1", port },
    });
    try {
      expect(service.metricsUrl).to.equal(undefined);
      const error = await request(`http://127.0.0.1:${port}/metrics`).then(
        () => undefined,
        (err: unknown) => (err as NodeJS.ErrnoException).code,
      );
      expect(error).to.equal("ECONNREFUSED");
      expect(await service.scrape(["MemoryUsed"])).to.match(
        /^MemoryUsed\{Level="Host",Hostname="test-host",\} \d+\.\d+$/m,
      );
    } finally {
      await service.stop();
    }
  });

  it("serves an empty body in metrics_mode=log and writes TorchServe's log lines instead", async () => {
    const logs = tempDir("metrics-location-");
    const { service, url } = await startTestService(
      { metricsMode: "log" },
      { env: { METRICS_LOCATION: logs } },
    );
    try {
      const res = await request(url);
      expect(res.status).to.equal(200);
      expect(res.body).to.equal("");
      const logged = readFileSync(join(logs, "ts_metrics.log"), "utf8");
      expect(logged).to.match(
        / - MemoryUsed\.Megabytes:\d+\.\d+\|#Level:Host\|#hostname:test-host,timestamp:\d+\n/,
      );
      expect(logged).to.match(/ - Requests2XX\.Count:1\.0\|#Level:Host\|#hostname:test-host,timestamp:\d+\n/);
    } finally {
      await service.stop();
    }
  });

  it("serves only the three ts_* counters in metrics_mode=legacy", async () => {
    const logs = tempDir("metrics-location-");
    const { service, url } = await startTestService(
      { metricsMode: "legacy" },
      { env: { METRICS_LOCATION: logs } },
    );
    try {
      service.recordInference({ model: "m", status: 200, latencyMs: 1 });
      const families = (await request(url)).body.match(/^# TYPE \S+/gm);
      expect(families).to.deep.equal([
        "# TYPE ts_inference_requests_total",
        "# TYPE ts_inference_latency_microseconds",
        "# TYPE ts_queue_latency_microseconds",
      ]);
    } finally {
      await service.stop();
    }
  });

  it("serves OpenTelemetry names through exporter-prometheus with metrics_format=otel, filter included", async () => {
    const { service, url } = await startTestService({ metricsFormat: "otel" });
    try {
      service.recordInference({ model: "m", status: 200, latencyMs: 2 });
      const all = (await request(url)).body;
      expect(all).to.match(/^serve_inference_requests_total\{[^}]*model_name="m"[^}]*\} 1$/m);
      expect(all).to.match(/^serve_host_memory_used\{/m);
      expect(all).not.to.include("Torchserve prometheus");
      const filtered = (await request(`${url}?name[]=serve_inference_requests_total`)).body;
      expect(filtered.split("\n").filter((l) => l !== "" && !l.startsWith("#"))).to.have.length(1);
      expect(filtered).to.match(/^# TYPE serve_inference_requests_total counter$/m);
    } finally {
      await service.stop();
    }
  });

  describe("https", () => {
    let dir: string;
    before(function () {
      requireTool(this, "openssl");
      dir = tempDir("tls-");
      for (const name of ["a", "b"]) {
        execFileSync(
          "openssl",
          [
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            join(dir, `${name}.key`),
            "-out",
            join(dir, `${name}.crt`),
          ],
          { stdio: "ignore" },
        );
      }
    });

    it("serves /metrics over TLS with certificate_file and private_key_file", async () => {
      const { service, url } = await startTestService({
        metricsAddress: { protocol: "https", host: "127.0.0.1", port: 0 },
        certificateFile: join(dir, "a.crt"),
        privateKeyFile: join(dir, "a.key"),
      });
      try {
        expect(url).to.match(/^https:\/\/127\.0\.0\.1:\d+\/metrics$/);
        const res = await request(url, { ca: readFileSync(join(dir, "a.crt")) });
        expect(res.status).to.equal(200);
        expect(res.body).to.include("# TYPE MemoryUsed gauge");
      } finally {
        await service.stop();
      }
    });

    it("serves the inference address over TLS with the same files", async () => {
      const { service } = await startTestService({
        enableInferenceApi: true,
        inferenceAddress: { protocol: "https", host: "127.0.0.1", port: 0 },
        certificateFile: join(dir, "a.crt"),
        privateKeyFile: join(dir, "a.key"),
      });
      try {
        expect(service.inferenceUrl).to.match(/^https:\/\//);
        const res = await request(`${service.inferenceUrl ?? ""}/ping`, {
          ca: readFileSync(join(dir, "a.crt")),
        });
        expect([res.status, JSON.parse(res.body)]).to.deep.equal([200, { status: "Healthy" }]);
      } finally {
        await service.stop();
      }
    });

    it("refuses a key that does not match the certificate, naming both files", async () => {
      const err = await startTestService({
        metricsAddress: { protocol: "https", host: "127.0.0.1", port: 0 },
        certificateFile: join(dir, "a.crt"),
        privateKeyFile: join(dir, "b.key"),
      }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).to.be.instanceOf(ConfigError);
      expect((err as ConfigError).message)
        .to.include("private_key_file")
        .and.to.include("b.key")
        .and.to.include("a.crt");
    });
  });
});

describe("/metrics in chunks", () => {
  /** A metrics handler on loopback with a given render; what it counted and logged. */
  async function serveHandler(render: MetricsEndpoint["render"]) {
    const logger = createMemoryLogger();
    const statuses: number[] = [];
    const server = createServer(
      createMetricsHandler({
        render,
        contentType: "text/plain",
        onResponse: (s) => statuses.push(s),
        logger,
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const address = server.address();
    if (typeof address !== "object" || address === null) throw new Error("no address");
    const stop = () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    };
    return { url: `http://127.0.0.1:${address.port}/metrics`, port: address.port, logger, statuses, stop };
  }

  for (const metricsFormat of ["torchserve", "otel"] as const) {
    it(`sends what scrape() renders, in several chunks, with its length (metrics_format=${metricsFormat})`, async () => {
      const { service, url } = await startTestService({
        metricsFormat,
        modelMetricsAutoDetect: true,
        maxLabelValueLength: 4096,
      });
      try {
        // Long label values: a text of several chunks, each family's and each batch's seams included.
        const pad = "v".repeat(2000);
        for (let i = 0; i < 600; i++) {
          const outcome = service.recordMetricLine(
            `[METRICS]Wide.Milliseconds:${i}|#ModelName:${pad}${i},Level:Model|#type:GAUGE|#hostname:h,1,r`,
          );
          expect(outcome).to.deep.equal({ ok: true });
        }
        const chunks = await service.scrapeChunks();
        // TorchServe text comes in 64K-character chunks, otel text a few hundred points at a time.
        expect(chunks.length).to.be.greaterThan(3);
        const res = await request(url);
        expect(res.status).to.equal(200);
        const body = res.body;
        expect(res.headers["content-length"]).to.equal(String(Buffer.byteLength(body)));
        const wide = (text: string) => text.split("\n").filter((l) => /^(Wide|serve_model_wide)\{/.test(l));
        expect(wide(body))
          .to.have.length(600)
          .and.to.deep.equal(wide(Buffer.concat(chunks).toString()));
        expect(body).to.include(`${pad}599`);
        const head = await request(url, { method: "HEAD" });
        expect([head.status, head.body]).to.deep.equal([200, ""]);
        expect(Number(head.headers["content-length"])).to.be.greaterThan(600 * 2000);
      } finally {
        await service.stop();
      }
    });
  }

  it("answers a collection that fails with a JSON 500, counted and logged", async () => {
    const failures: (() => Promise<Buffer[]>)[] = [
      () => Promise.reject(new Error("collector down")),
      () => {
        // What one string past V8's limit used to throw, thrown before any promise.
        throw new RangeError("Invalid string length");
      },
    ];
    let next = 0;
    const h = await serveHandler(() => {
      const fail = failures[next++ % failures.length];
      if (fail === undefined) throw new Error("no failure");
      return fail();
    });
    try {
      for (let i = 0; i < failures.length; i++) {
        const res = await request(h.url);
        expect(res.status).to.equal(500);
        expect(res.headers["content-type"]).to.equal("application/json");
        expect(JSON.parse(res.body)).to.deep.equal({
          code: 500,
          type: "InternalServerException",
          message: "Metrics collection failed; see the service log.",
        });
      }
      expect(h.statuses).to.deep.equal([500, 500]);
      expect(h.logger.lines.filter((l) => l.startsWith("ERROR /metrics: collection failed"))).to.have.length(
        2,
      );
    } finally {
      await h.stop();
    }
  });

  it("takes a client that hangs up mid-scrape in its stride: no error, no leak, the next scrape answers", async () => {
    const block = Buffer.alloc(1024 * 1024, "z");
    const big = Array.from({ length: 256 }, () => block);
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    let renders = 0;
    const h = await serveHandler(() => Promise.resolve(renders++ === 0 ? big : [Buffer.from("ok\n")]));
    try {
      await new Promise<void>((resolve, reject) => {
        const socket = connect(h.port, "127.0.0.1", () =>
          socket.write("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
        );
        socket.once("data", () => {
          socket.destroy();
          resolve();
        });
        socket.on("error", reject);
      });
      const res = await request(h.url);
      expect([res.status, res.body]).to.deep.equal([200, "ok\n"]);
      expect(h.statuses).to.deep.equal([200, 200]);
      expect(h.logger.lines.filter((l) => l.startsWith("ERROR"))).to.deep.equal([]);
      expect(unhandled).to.deep.equal([]);
    } finally {
      process.off("unhandledRejection", onUnhandled);
      await h.stop();
    }
  });
});
