import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createServer as createHttpsServer } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { makeTempDir, removeTempDir, writeTempFile } from "../config/support.js";
import { startMetricsService, type MetricsService } from "../../src/service.js";
import {
  OtlpReceiver,
  type ReceivedExport,
  type ReceiverMode,
  type ReceivedAttributes,
} from "../support/otlp-receiver.js";
import { until } from "../support/net.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

const SHIPPED = fileURLToPath(new URL("../../otel-config.yaml", import.meta.url));

/** A service like startTestService's (loopback port 0, no GPU, hostname test-host) with push options. */
async function startPushing(
  options: { env?: NodeJS.ProcessEnv; otelConfigFile?: string; shutdownTimeoutMs?: number } = {},
): Promise<{ service: MetricsService; logger: MemoryLogger }> {
  const logger = createMemoryLogger();
  const service = await startMetricsService({
    env: options.env ?? {},
    otelConfigFile: options.otelConfigFile,
    shutdownTimeoutMs: options.shutdownTimeoutMs,
    logger,
    hostname: "test-host",
    settings: { metricsAddress: { protocol: "http", host: "127.0.0.1", port: 0 }, numberOfGpu: 0 },
  });
  return { service, logger };
}

/** Some traffic: two models, an error, a model metric, a worker load and a 404 of the embedding server. */
function recordTraffic(service: MetricsService): void {
  service.recordInference({
    model: "resnet",
    version: "1.0",
    status: 200,
    latencyMs: 12.5,
    queueMs: 0.25,
    backendMs: 11,
  });
  service.recordInference({
    model: "resnet",
    version: "1.0",
    status: 200,
    latencyMs: 7.75,
    queueMs: 0.5,
    backendMs: 6,
  });
  service.recordInference({ model: "bert", status: 503, latencyMs: 0.3 });
  service.recordMetric("PredictionTime", 83.13, { ModelName: "resnet", Level: "Model" });
  service.recordWorkerLoad({ workerName: "W-9000-resnet_1.0", loadTimeMs: 4593 });
  service.recordResponse(404);
}

/** One series in a form both outputs can be brought to: histograms as cumulative `[le, count]` buckets. */
interface Series {
  name: string;
  attributes: ReceivedAttributes;
  value: number | { count: number; sum: number; buckets: [number, number][] };
}

function sortSeries(series: Series[]): Series[] {
  const key = (s: Series): string => `${s.name} ${JSON.stringify(Object.entries(s.attributes).sort())}`;
  return series
    .map((s) => ({ ...s, attributes: Object.fromEntries(Object.entries(s.attributes).sort()) }))
    .sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

/** The series of a pushed export, histogram buckets made cumulative as Prometheus text has them. */
function pushedSeries(received: ReceivedExport): Series[] {
  return sortSeries(
    received.metrics.flatMap((m) =>
      m.points.map((p): Series => {
        if (typeof p.value === "number") return { name: m.name, attributes: p.attributes, value: p.value };
        if (!("buckets" in p.value)) throw new Error(`${m.name}: an exponential histogram`);
        const { count, sum, buckets } = p.value;
        let total = 0;
        const cumulative = buckets.counts.map((c, i): [number, number] => {
          total += c;
          return [buckets.bounds[i] ?? Infinity, total];
        });
        return { name: m.name, attributes: p.attributes, value: { count, sum, buckets: cumulative } };
      }),
    ),
  );
}

/** The series of TorchServe text (`name{k="v",} 1.0`, histograms as _bucket/_count/_sum). */
function scrapedSeries(text: string): Series[] {
  const histograms = new Set([...text.matchAll(/^# TYPE (\S+) histogram$/gm)].map((m) => m[1]));
  const number = (s: string): number => (s === "+Inf" ? Infinity : s === "-Inf" ? -Infinity : Number(s));
  const plain: Series[] = [];
  const grouped = new Map<
    string,
    Series & { value: { count: number; sum: number; buckets: [number, number][] } }
  >();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([^{\s]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null) throw new Error(`unparsable line: ${line}`);
    const [, sample = "", labelText = "", valueText = ""] = match;
    const attributes: Record<string, string> = {};
    for (const [, k = "", v = ""] of labelText.matchAll(/([^=,]+)="((?:[^"\\]|\\.)*)",?/g)) {
      attributes[k] = v.replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const base = sample.replace(/_(bucket|count|sum)$/, "");
    if (base === sample || !histograms.has(base)) {
      plain.push({ name: sample, attributes, value: number(valueText) });
      continue;
    }
    const { le, ...series } = attributes;
    const id = `${base} ${JSON.stringify(series)}`;
    const entry = grouped.get(id) ?? {
      name: base,
      attributes: series,
      value: { count: 0, sum: 0, buckets: [] },
    };
    grouped.set(id, entry);
    if (sample.endsWith("_bucket")) entry.value.buckets.push([number(le ?? ""), number(valueText)]);
    else if (sample.endsWith("_count")) entry.value.count = number(valueText);
    else entry.value.sum = number(valueText);
  }
  return sortSeries([...plain, ...grouped.values()]);
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("OTLP push", function () {
  this.timeout(20_000);
  const receivers: OtlpReceiver[] = [];
  const services: MetricsService[] = [];
  afterEach(async () => {
    await Promise.all(services.splice(0).map((s) => s.stop()));
    await Promise.all(receivers.splice(0).map((r) => r.close()));
  });
  const receiver = async (kind: "http" | "grpc"): Promise<OtlpReceiver> => {
    const rx = kind === "grpc" ? await OtlpReceiver.startGrpc() : await OtlpReceiver.startHttp();
    receivers.push(rx);
    return rx;
  };
  const pushing = async (options: Parameters<typeof startPushing>[0]) => {
    const started = await startPushing(options);
    services.push(started.service);
    return started;
  };

  const protocols: ["http/json" | "http/protobuf" | "grpc", "gzip" | "none"][] = [
    ["http/json", "none"],
    ["http/protobuf", "gzip"],
    ["grpc", "gzip"],
  ];
  for (const [protocol, compression] of protocols) {
    it(`pushes over ${protocol} (${compression}) exactly what /metrics shows: TorchServe names, labels, values`, async () => {
      const rx = await receiver(protocol === "grpc" ? "grpc" : "http");
      const { service, logger } = await pushing({
        env: {
          OTEL_METRICS_EXPORTER: "otlp",
          OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
          OTEL_EXPORTER_OTLP_COMPRESSION: compression,
          OTEL_EXPORTER_OTLP_HEADERS: "x-tenant=ml%20team",
        },
      });
      expect(logger.lines).to.include(`INFO OTLP ${protocol} push to ${rx.endpoint} every 60 s`);
      recordTraffic(service);
      const scraped = scrapedSeries(await service.scrape());
      await service.stop(); // the final export: the only one, as the interval is a minute
      expect(rx.decodeErrors).to.deep.equal([]);
      expect(rx.exports).to.have.length(1);
      const received = rx.latest();
      expect(received.protocol).to.equal(protocol);
      if (protocol !== "grpc") expect(received.gzip).to.equal(compression === "gzip");
      expect(received.headers["x-tenant"]).to.equal("ml team");
      expect(received.resource).to.include({ "service.name": "serve-metrics", "host.name": "test-host" });

      const pushed = pushedSeries(received);
      expect(pushed).to.deep.equal(scraped);
      // Not a vacuous match: counters, gauges and the histogram are all there under TorchServe names.
      const names = new Set(pushed.map((s) => s.name));
      for (const name of [
        "ts_inference_requests_total",
        "ts_inference_latency_microseconds",
        "Requests2XX",
        "Requests4XX",
        "Requests5XX",
        "PredictionTime",
        "WorkerLoadTime",
        "MemoryUsed",
        "serve_request_duration_seconds",
        "serve_inference_responses_total",
        "serve_prediction_time_seconds",
      ]) {
        expect(names).to.include(name);
      }
      expect(pushed).to.deep.include({
        name: "ts_inference_requests_total",
        attributes: { hostname: "test-host", model_name: "resnet", model_version: "1.0" },
        value: 2,
      });
      expect(pushed).to.deep.include({
        name: "serve_inference_responses_total",
        attributes: {
          hostname: "test-host",
          model_name: "bert",
          model_version: "default",
          status_class: "5XX",
        },
        value: 1,
      });
      const prediction = pushed.find((s) => s.name === "serve_prediction_time_seconds")?.value;
      expect(prediction).to.deep.include({ count: 1, sum: 0.08313 });
    });
  }

  it("pushes with the shipped otel-config.yaml to OTEL_EXPORTER_OTLP_ENDPOINT, its view's buckets on both outputs", async () => {
    const rx = await receiver("http");
    const base = rx.endpoint.replace(/\/v1\/metrics$/, "");
    const { service } = await pushing({
      otelConfigFile: SHIPPED,
      env: { OTEL_EXPORTER_OTLP_ENDPOINT: base },
    });
    service.recordInference({ model: "resnet", version: "1.0", status: 200, latencyMs: 40 });
    const text = await service.scrape(["serve_request_duration_seconds_bucket"]);
    expect(text)
      .to.include('le="0.025",} 0.0\n')
      .and.to.include('le="0.05",} 1.0\n')
      .and.to.include('le="30.0",}');
    await service.stop();
    const received = rx.latest();
    expect(received.protocol).to.equal("http/protobuf");
    expect(received.gzip).to.equal(true);
    expect(received.resource).to.include({ "deployment.environment.name": "production" });
    const histogram = received.metrics.find((m) => m.name === "serve_request_duration_seconds");
    const value = histogram?.points[0]?.value;
    expect(value).to.deep.include({ count: 1, sum: 0.04 });
    expect(typeof value === "object" && "buckets" in value ? value.buckets.bounds : []).to.deep.equal([
      0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30,
    ]);
  });

  it("pushes exponential histograms when the reader asks for base2_exponential_bucket_histogram; /metrics keeps its classic buckets", async () => {
    const rx = await receiver("http");
    const dir = makeTempDir();
    try {
      const file = writeTempFile(
        dir,
        "otel.yaml",
        'file_format: "1.0"\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n' +
          `            endpoint: ${rx.endpoint}\n            encoding: json\n` +
          "            default_histogram_aggregation: base2_exponential_bucket_histogram\n",
      );
      const { service } = await pushing({ otelConfigFile: file });
      for (const latencyMs of [12.5, 80, 80, 3000]) {
        service.recordInference({ model: "resnet", version: "1.0", status: 200, latencyMs });
      }
      const text = await service.scrape(["serve_request_duration_seconds_bucket"]);
      expect(text).to.include('le="0.1",} 3.0\n');
      await service.stop();
      expect(rx.decodeErrors).to.deep.equal([]);
      const pushed = rx.latest().metrics.filter((m) => m.name === "serve_request_duration_seconds");
      // One stream, exponential: the native buckets' own provider pushes nothing.
      expect(pushed.map((m) => m.type)).to.deep.equal(["exponential_histogram"]);
      const value = pushed[0]?.points[0]?.value;
      if (typeof value !== "object" || !("scale" in value)) throw new Error("no exponential point");
      expect(value.count).to.equal(4);
      expect(value.sum).to.be.closeTo(3.1725, 1e-9);
      // OpenTelemetry's bucket i holds (2^(i/2^scale), 2^((i+1)/2^scale)].
      const at = (v: number): number =>
        Math.ceil(Math.log2(v) * 2 ** value.scale) - 1 - value.positive.offset;
      expect(value.positive.bucketCounts[at(0.08)]).to.equal(2);
      expect(value.positive.bucketCounts.reduce((a, b) => a + b, 0)).to.equal(4);
    } finally {
      removeTempDir(dir);
    }
  });

  it("sends the file's headers and none from process.env", async () => {
    const rx = await receiver("http");
    const dir = makeTempDir();
    const file = writeTempFile(
      dir,
      "otel-config.yaml",
      'file_format: "1.0"\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n' +
        `            endpoint: ${rx.endpoint}\n            headers:\n              - {name: x-a, value: from-headers}\n` +
        "            headers_list: x-a=from-list,x-b=b%2Cc\n",
    );
    process.env.OTEL_EXPORTER_OTLP_HEADERS = "x-leak=process-env";
    let service: MetricsService;
    try {
      ({ service } = await pushing({ otelConfigFile: file }));
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_HEADERS;
      removeTempDir(dir); // read once, at start
    }
    await service.stop();
    const { headers } = rx.latest();
    expect(headers).to.include({ "x-a": "from-headers", "x-b": "b,c" });
    expect(headers).not.to.have.property("x-leak");
  });

  // A collector that is down or stuck: HTTP (which retries) refused, answering 503, hanging;
  // gRPC (which does not) answering UNAVAILABLE and hanging.
  // HTTP also dripping a 200 a byte at a time (the transport's own timeout restarts with each
  // byte) and cutting a 200 off mid-body (the transport calls that a success).
  const outages: ["http" | "grpc", ReceiverMode, RegExp][] = [
    ["http", "refuse", /socket hang up|ECONNRESET/],
    ["http", "unavailable", /kept answering a retryable HTTP status \(429, 502, 503 or 504\)$/],
    ["http", "hang", /no complete answer within the export timeout \(500 ms\)$/],
    ["http", "drip", /no complete answer within the export timeout \(500 ms\)$/],
    ["http", "cut", /the collector's answer ended before its body was complete$/],
    ["grpc", "unavailable", /UNAVAILABLE: collector unavailable \(test\)$/],
    ["grpc", "hang", /DEADLINE_EXCEEDED/],
  ];
  for (const [kind, mode, reason] of outages) {
    it(`keeps recording and scraping fast while the ${kind} collector is "${mode}", and logs the outage once each way`, async () => {
      const rx = await receiver(kind);
      const exporterTimeoutMs = 500;
      const { service, logger } = await pushing({
        env: {
          OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
          OTEL_EXPORTER_OTLP_PROTOCOL: kind === "grpc" ? "grpc" : "http/protobuf",
          OTEL_METRIC_EXPORT_INTERVAL: "200",
          OTEL_EXPORTER_OTLP_TIMEOUT: String(exporterTimeoutMs),
        },
      });
      await rx.waitForExport();

      rx.setMode(mode);
      const failing = (): string[] => logger.lines.filter((l) => l.includes(" failing: "));
      const recovered = (): string[] => logger.lines.filter((l) => l.includes(" recovered after "));
      await until(() => failing().length > 0, "the failing warning");
      // Each round records 200 × 2 resnet requests, then scrapes: every scrape must answer with them all.
      const resnetRequests = async (): Promise<number> =>
        Number(
          /ts_inference_requests_total\{[^}]*model_name="resnet"[^}]*\} (\S+)/.exec(
            await service.scrape(["ts_inference_requests_total"]),
          )?.[1] ?? 0, // no series before the first update
        );
      const answered: number[] = [];
      const expected: number[] = [];
      const counted = await resnetRequests();
      const failedBefore = rx.requests + rx.refused;
      // A few export intervals of outage, recording and scraping meanwhile.
      const outageEnds = Date.now() + 1000;
      while (Date.now() < outageEnds) {
        for (let i = 0; i < 200; i++) recordTraffic(service);
        expected.push(counted + 400 * (expected.length + 1));
        answered.push(await resnetRequests());
        await sleep(20);
      }
      expect(rx.requests + rx.refused).to.be.above(failedBefore, "the exporter kept trying");
      expect(failing()).to.have.length(1);
      expect(failing()[0]?.startsWith(`WARN OTLP push to ${rx.endpoint} failing: `)).to.equal(true);
      expect(failing()[0]).to.match(reason);
      // Neither records nor scrapes wait on the collector: every scrape answered, with every update.
      expect(answered).to.deep.equal(expected);
      expect(answered.length).to.be.at.least(2);
      // Abandoned requests are dropped, not piled up (what keeps memory flat while the collector hangs).
      expect(rx.maxHeld).to.be.at.most(Math.ceil(exporterTimeoutMs / 200) + 2);
      // Each export ended by its deadline closed its connection: they do not pile up either.
      expect(rx.maxConnections).to.be.at.most(Math.ceil(exporterTimeoutMs / 200) + 2);
      // Every export that ended is counted, failures included, and /metrics answers meanwhile.
      const failures = Number(
        /serve_otlp_exports_total\{result="failure",[^}]*\} (\S+)/.exec(
          await service.scrape(["serve_otlp_exports_total"]),
        )?.[1],
      );
      expect(failures).to.be.at.least(2);

      rx.setMode("ok");
      await until(() => recovered().length > 0, "the recovered line");
      const before = rx.exports.length;
      await until(() => rx.exports.length >= before + 2, "two more exports");
      expect(failing()).to.have.length(1);
      expect(recovered()).to.have.length(1);
      const failed = Number(/after (\d+) failed exports?$/.exec(recovered()[0] ?? "")?.[1]);
      expect(failed).to.be.at.least(2);
      expect(recovered()[0]).to.equal(
        `INFO OTLP push to ${rx.endpoint} recovered after ${failed} failed exports`,
      );

      // The final export on stop() carries everything recorded, outage included.
      const scraped = scrapedSeries(await service.scrape(["ts_inference_requests_total"]));
      const exportsBeforeStop = rx.exports.length;
      await service.stop();
      expect(rx.exports.length).to.be.above(exportsBeforeStop);
      const pushed = pushedSeries(rx.latest()).filter((s) => s.name === "ts_inference_requests_total");
      expect(pushed).to.deep.equal(scraped);
    });
  }

  it("stop() gives up on the final export to a hanging collector at shutdownTimeoutMs", async () => {
    const rx = await receiver("http");
    rx.setMode("hang");
    const exporterTimeoutMs = 8000;
    const shutdownTimeoutMs = 400;
    const { service, logger } = await pushing({
      shutdownTimeoutMs,
      env: {
        OTEL_EXPORTER_OTLP_METRICS_ENDPOINT: rx.endpoint,
        OTEL_EXPORTER_OTLP_TIMEOUT: String(exporterTimeoutMs),
      },
    });
    recordTraffic(service);
    const start = performance.now();
    await service.stop();
    const elapsed = performance.now() - start;
    expect(rx.requests).to.equal(1, "the final export was sent");
    // Bounded by the deadline, not by the exporter's own timeout.
    expect(elapsed).to.be.at.least(shutdownTimeoutMs - 50);
    expect(elapsed).to.be.below((shutdownTimeoutMs + exporterTimeoutMs) / 2);
    expect(logger.lines).to.include(
      `WARN final OTLP export abandoned after ${shutdownTimeoutMs} ms: Operation timed out.`,
    );
    // Let the abandoned request end now rather than at the exporter's timeout, which would hold mocha's exit.
    rx.answerHeld();
  });

  it("pushes over https with the file's tls.ca_file, and refuses a collector whose certificate it cannot verify", async function () {
    requireTool(this, "openssl");
    const dir = tempDir("otlp-tls-");
    const [cert, key] = [join(dir, "cert.pem"), join(dir, "key.pem")];
    execFileSync(
      "openssl",
      ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"].concat([
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        key,
        "-out",
        cert,
      ]),
      { stdio: "ignore" },
    );
    let received = 0;
    const collector = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      req.resume();
      req.on("end", () => {
        received++;
        res.writeHead(200, { "content-type": "application/x-protobuf" }).end();
      });
    });
    collector.listen(0, "127.0.0.1");
    await once(collector, "listening");
    const endpoint = `https://127.0.0.1:${(collector.address() as AddressInfo).port}/v1/metrics`;
    try {
      const config = (tls: string): string =>
        writeTempFile(
          dir,
          `otel-${tls === "" ? "no-ca" : "ca"}.yaml`,
          'file_format: "1.0"\nmeter_provider:\n  readers:\n    - periodic:\n        exporter:\n          otlp_http:\n' +
            `            endpoint: ${endpoint}\n${tls}`,
        );
      const trusted = await pushing({ otelConfigFile: config(`            tls: {ca_file: ${cert}}\n`) });
      await trusted.service.stop();
      expect(received).to.equal(1);
      expect(trusted.logger.lines.filter((l) => l.includes("failing"))).to.deep.equal([]);

      const untrusted = await pushing({ otelConfigFile: config("") });
      await untrusted.service.stop();
      expect(received).to.equal(1, "no request reached the collector");
      expect(untrusted.logger.lines.filter((l) => l.includes("failing"))).to.have.length(1);
      expect(untrusted.logger.lines.find((l) => l.includes("failing"))).to.match(/self-signed certificate/);
    } finally {
      collector.closeAllConnections();
      collector.close();
    }
  });

  it("reads OTLP settings from the service's env only: an endpoint in process.env pushes nothing", async () => {
    const rx = await receiver("http");
    process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT = rx.endpoint;
    try {
      const { service, logger } = await pushing({ env: {} });
      recordTraffic(service);
      await service.stop();
      expect(logger.lines.filter((l) => l.includes("OTLP"))).to.deep.equal([]);
    } finally {
      delete process.env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT;
    }
    expect(rx.requests + rx.refused).to.equal(0);
  });
});
