import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { gunzipSync } from "node:zlib";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import type { MetricsService } from "../../src/service.js";
import { countGzipMembers } from "../support/gzip.js";
import { request } from "../support/http.js";
import {
  instantQuery,
  startPrometheus,
  waitForScrapes,
  type InstantSample,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";

function promtoolCheck(promtool: string, text: string): { status: number | null; complaints: string[] } {
  const run = spawnSync(promtool, ["check", "metrics"], { input: text, encoding: "utf8" });
  const complaints = `${run.stdout}${run.stderr}`.split("\n").filter((l) => l.trim() !== "");
  return { status: run.status, complaints };
}

/** The plainest exposition of TorchServe's own names and labels, written without our renderer. */
function plainExpositionOfCatalog(): string {
  return loadDefaultCatalog()
    .metrics.map((m) => {
      const labels = m.dimensions.map((d) => `${d}="x"`).join(",");
      return `# HELP ${m.name} help\n# TYPE ${m.name} ${m.type}\n${m.name}{${labels}} 1\n`;
    })
    .join("");
}

describe("end to end with Debian's Prometheus", function () {
  this.timeout(60_000);
  let service: MetricsService;
  let metricsUrl: string;

  before(async () => {
    ({ service, url: metricsUrl } = await startTestService());
    service.recordInference({
      model: "resnet18",
      status: 200,
      latencyMs: 290.371129,
      queueMs: 0.36521,
      backendMs: 289,
    });
    service.recordWorkerLoad({ workerName: "W-9000-resnet18_1.0", loadTimeMs: 4593 });
    service.recordMetric("PredictionTime", 83.13, { ModelName: "resnet18", Level: "Model" });
  });
  after(() => service.stop());

  it("promtool parses the scrape, complaining only as it does about TorchServe's own names", async function () {
    const promtool = requireTool(this, "promtool");
    const reference = promtoolCheck(promtool, plainExpositionOfCatalog());
    expect(reference.status, reference.complaints.join("\n")).to.be.oneOf([0, 3]);
    const ours = promtoolCheck(promtool, (await request(metricsUrl)).body);
    expect(ours.status, ours.complaints.join("\n")).to.be.oneOf([0, 3]); // 1 would be a parse error
    expect(ours.complaints).not.to.be.empty;
    for (const complaint of ours.complaints) expect(reference.complaints).to.include(complaint);
  });

  describe("a real scrape", () => {
    let prometheus: RunningPrometheus | undefined;
    let api: string;
    let dir: string;
    let proxy: Server | undefined;
    let target: string;
    /** What each scrape asked for and got, seen by a pass-through proxy between Prometheus and us. */
    const scrapes: Scrape[] = [];
    const query = (promql: string): Promise<InstantSample[]> => instantQuery(api, promql);

    before(async function () {
      const binary = requireTool(this, "prometheus");
      // A body of several deflate segments (each holds about 32 KiB of text).
      for (let i = 0; i < 1000; i++) {
        service.recordMetric("PredictionTime", i + 0.25, { ModelName: `m${i}`, Level: "Model" });
      }
      proxy = await startRecordingProxy(metricsUrl, (scrape) => scrapes.push(scrape));
      dir = mkdtempSync(join(tmpdir(), "prom-"));
      target = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      writeFileSync(
        join(dir, "prometheus.yml"),
        `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: serve-metrics\n    static_configs:\n      - targets: ["${target}"]\n`,
      );
      prometheus = await startPrometheus(binary, join(dir, "prometheus.yml"), dir);
      api = prometheus.api;
      // Two scrapes, so every series asked for exists whichever scrape a query sees.
      await waitForScrapes(prometheus, "serve-metrics", 2);
    });

    after(async () => {
      await prometheus?.stop();
      proxy?.closeAllConnections();
      await new Promise((resolve) => proxy?.close(resolve));
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it("reports the target up with TorchServe names, labels and values", async () => {
      const requests = await query("ts_inference_requests_total");
      expect(requests.map((r) => r.metric)).to.deep.equal([
        {
          __name__: "ts_inference_requests_total",
          instance: target,
          job: "serve-metrics",
          model_name: "resnet18",
          model_version: "default",
          hostname: "test-host",
        },
      ]);
      expect(requests[0]?.value[1]).to.equal("1");
      expect((await query("ts_inference_latency_microseconds"))[0]?.value[1]).to.equal("290371.129");
      expect((await query('PredictionTime{ModelName="resnet18",Level="Model"}'))[0]?.value[1]).to.equal(
        "83.13",
      );
      expect((await query("WorkerLoadTime"))[0]?.metric.WorkerName).to.equal("W-9000-resnet18_1.0");
    });

    it("asks for gzip, gets it, and reads every series of the body's segments", async () => {
      expect(scrapes.length).to.be.at.least(2);
      for (const scrape of scrapes) {
        expect(scrape.acceptEncoding).to.include("gzip");
        expect(scrape.contentEncoding).to.equal("gzip");
        expect(scrape.members).to.equal(1);
        expect(scrape.bytes).to.be.below(0.15 * scrape.textBytes);
      }
      const counted = await query('count(PredictionTime{Level="Model"})');
      expect(counted[0]?.value[1]).to.equal("1001");
      for (const i of [0, 500, 999]) {
        const [sample] = await query(`PredictionTime{ModelName="m${i}"}`);
        expect(sample?.value[1]).to.equal(String(i + 0.25));
      }
      const [samples] = await query('scrape_samples_scraped{job="serve-metrics"}');
      const identity = (await request(metricsUrl)).body;
      const lines = identity.split("\n").filter((l) => l !== "" && !l.startsWith("#"));
      expect(samples?.value[1]).to.equal(String(lines.length));
    });

    it("sees live host gauges and its own scrapes counted in Requests2XX", async () => {
      const memory = await query("MemoryUsed");
      expect(Number(memory[0]?.value[1])).to.be.greaterThan(0);
      const cpu = await query("CPUUtilization");
      expect(Number(cpu[0]?.value[1])).to.be.within(0, 100);
      const scrapes = await query("Requests2XX");
      expect(Number(scrapes[0]?.value[1])).to.be.at.least(1);
    });
  });
});

/** What one scrape asked for and got, as a proxy between Prometheus and the service saw it. */
interface Scrape {
  acceptEncoding: string;
  contentEncoding: string;
  /** gzip members in the body (0 if not gzip). */
  members: number;
  /** Body bytes as sent, and once decoded. */
  bytes: number;
  textBytes: number;
}

/**
 * A loopback proxy that passes every request to `upstream`'s origin as it came (Accept-Encoding
 * included) and the answer back byte for byte, telling `onScrape` what was asked for and sent.
 */
async function startRecordingProxy(upstream: string, onScrape: (scrape: Scrape) => void): Promise<Server> {
  const origin = new URL(upstream).origin;
  const server = createServer((req, res) => {
    const forward = httpRequest(
      `${origin}${req.url ?? "/"}`,
      { method: req.method, headers: req.headers },
      (up) => {
        const chunks: Buffer[] = [];
        up.on("data", (chunk: Buffer) => chunks.push(chunk));
        up.on("end", () => {
          const body = Buffer.concat(chunks);
          const contentEncoding = up.headers["content-encoding"] ?? "";
          const gzip = contentEncoding === "gzip";
          onScrape({
            acceptEncoding: req.headers["accept-encoding"] ?? "",
            contentEncoding,
            members: gzip ? countGzipMembers(body) : 0,
            bytes: body.length,
            textBytes: gzip ? gunzipSync(body).length : body.length,
          });
          res.writeHead(up.statusCode ?? 502, up.headers);
          res.end(body);
        });
      },
    );
    forward.on("error", () => res.destroy());
    forward.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}
