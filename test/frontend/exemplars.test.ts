import { expect } from "chai";
import { request as httpRequest } from "node:http";
import type { MetricsService } from "../../src/service.js";
import { PROTOBUF_CONTENT_TYPE } from "../../src/server/accept-format.js";
import { decodeMetricFamilies, type DecodedExemplar, type DecodedFamily } from "../support/metric-family.js";
import { until } from "../support/net.js";
import { startTestService } from "../support/service.js";

const ECHO = "node test/fixtures/workers/echo-worker.js --port {port}";
const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN_ID = "00f067aa0ba902b7";
const TRACEPARENT = `00-${TRACE_ID}-${SPAN_ID}-01`;

/** One request over a real socket with these headers; the body as bytes. */
function send(
  url: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<{ status: number; contentType: string | undefined; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      { method: options.method ?? "GET", headers: options.headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers["content-type"],
            body: Buffer.concat(chunks),
          }),
        );
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(options.body);
  });
}

/** Every exemplar of a family, with the label values of its series and, for a histogram, its bucket. */
function exemplarsOf(
  families: DecodedFamily[],
  name: string,
): { series: Record<string, string>; bucket?: [number, number]; exemplar: DecodedExemplar }[] {
  const out: { series: Record<string, string>; bucket?: [number, number]; exemplar: DecodedExemplar }[] = [];
  for (const metric of families.find((f) => f.name === name)?.metric ?? []) {
    const series = Object.fromEntries(metric.label.map((l) => [l.name, l.value]));
    if (metric.counter?.exemplar) out.push({ series, exemplar: metric.counter.exemplar });
    let lower = -Infinity;
    for (const b of metric.histogram?.bucket ?? []) {
      if (b.exemplar) out.push({ series, bucket: [lower, b.upperBound], exemplar: b.exemplar });
      lower = b.upperBound;
    }
  }
  return out;
}

describe("exemplars through the inference frontend", function () {
  this.timeout(30_000);
  let service: MetricsService;
  let metricsUrl: string;
  let base: string;

  before(async () => {
    ({ service, url: metricsUrl } = await startTestService(
      {
        models: [
          { model: "echo", version: "1.0", isDefault: true, workers: 1, url: undefined, command: ECHO },
        ],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
        disableSystemMetrics: true,
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
    ));
    await service.workersReady();
    base = service.inferenceUrl ?? "";
  });
  after(() => service.stop());

  const scrapeProtobuf = async (): Promise<DecodedFamily[]> => {
    const res = await send(metricsUrl, { headers: { Accept: PROTOBUF_CONTENT_TYPE } });
    expect(res.contentType).to.equal(PROTOBUF_CONTENT_TYPE);
    return decodeMetricFamilies(res.body);
  };
  const infer = async (headers: Record<string, string> = {}): Promise<void> => {
    const res = await send(`${base}/predictions/echo`, { method: "POST", headers, body: "x" });
    expect(res.status).to.equal(200);
  };

  it("puts a request's trace context on its latency bucket and response counter, and nothing for requests without one", async () => {
    await infer();
    await infer({ traceparent: "00-not-a-valid-header-01" });
    let families = await scrapeProtobuf();
    expect(exemplarsOf(families, "serve_request_duration_seconds")).to.deep.equal([]);
    expect(exemplarsOf(families, "serve_inference_responses_total")).to.deep.equal([]);

    const before = Date.now();
    await infer({ traceparent: TRACEPARENT });
    await infer(); // comes after, and changes nothing
    families = await scrapeProtobuf();
    const series = {
      model_name: "echo",
      model_version: "default",
      hostname: "test-host",
    };
    const [latency, ...moreLatency] = exemplarsOf(families, "serve_request_duration_seconds");
    expect(moreLatency).to.deep.equal([]);
    expect(latency?.series).to.deep.equal(series);
    expect(latency?.exemplar.label).to.deep.equal([
      { name: "trace_id", value: TRACE_ID },
      { name: "span_id", value: SPAN_ID },
    ]);
    // On the bucket its value falls in.
    const value = latency?.exemplar.value ?? NaN;
    const [lower, upper] = latency?.bucket ?? [NaN, NaN];
    expect(value > lower && value <= upper, `${value} in (${lower}, ${upper}]`).to.equal(true);
    const seconds = latency?.exemplar.timestamp?.seconds ?? 0;
    expect(seconds).to.be.within(Math.floor(before / 1000), Math.ceil(Date.now() / 1000));

    const responses = exemplarsOf(families, "serve_inference_responses_total");
    expect(responses.map((r) => [r.series, r.exemplar.value, r.exemplar.label])).to.deep.equal([
      [
        { ...series, status_class: "2XX" },
        1,
        [
          { name: "trace_id", value: TRACE_ID },
          { name: "span_id", value: SPAN_ID },
        ],
      ],
    ]);

    // The text is untouched: no exemplar syntax in TorchServe's format.
    const text = (await send(metricsUrl)).body.toString();
    expect(text).to.not.include(TRACE_ID);
    expect(text).to.not.match(/ # \{/);
  });

  it("puts TorchServe's requestID on the handler-time histogram, from worker lines and line posts", async () => {
    const lines = [
      "[METRICS]HandlerTime.Milliseconds:71.5|#ModelName:mnist,Level:Model|#type:GAUGE|#hostname:worker-host,1699061430,7f9e2d4c-0a1b-4c3d-9e8f-0123456789ab",
      // TorchServe's own model_metrics.log form (the sidecar's), a batch: the first id is taken.
      "PredictionTime.ms:2500.0|#ModelName:mnist,Level:Model|#hostname:worker-host,requestID:aaaa-1,bbbb-2,timestamp:1699061430",
      // No request id: no exemplar.
      "[METRICS]HandlerTime.Milliseconds:1|#ModelName:quiet,Level:Model|#type:GAUGE|#hostname:worker-host,1699061430",
      "",
    ].join("\n");
    const res = await send(`${base}/metric-lines`, { method: "POST", body: lines });
    expect(res.status).to.equal(200);
    expect((JSON.parse(res.body.toString()) as { accepted: number }).accepted).to.equal(3);
    const families = await scrapeProtobuf();
    const handler = exemplarsOf(families, "serve_handler_time_seconds").map((e) => [
      e.series.model_name,
      e.bucket?.[1],
      e.exemplar.value,
      e.exemplar.label,
    ]);
    expect(handler).to.deep.include.members([
      ["mnist", 0.075, 0.0715, [{ name: "request_id", value: "7f9e2d4c-0a1b-4c3d-9e8f-0123456789ab" }]],
    ]);
    // The echo worker's own lines name request `req-1` (read from its stdout, maybe after its answer).
    await until(async () => {
      const now = exemplarsOf(await scrapeProtobuf(), "serve_handler_time_seconds");
      return now.some((e) => e.series.model_name === "echo" && e.exemplar.label[0]?.value === "req-1");
    }, "the echo worker's HandlerTime exemplar");
    expect(handler.map((h) => h[0])).to.not.include("quiet");
    const prediction = exemplarsOf(families, "serve_prediction_time_seconds").map((e) => [
      e.series.model_name,
      e.bucket?.[1],
      e.exemplar.value,
      e.exemplar.label,
    ]);
    expect(prediction).to.deep.equal([["mnist", 2.5, 2.5, [{ name: "request_id", value: "aaaa-1" }]]]);
  });
});
