import { expect } from "chai";
import { requestRaw as get } from "../support/http.js";
import { gunzipSync } from "node:zlib";
import type { MetricsService } from "../../src/service.js";
import { PROTOBUF_CONTENT_TYPE } from "../../src/server/accept-format.js";
import { decodeMetricFamilies, type DecodedFamily } from "../support/metric-family.js";
import { startTestService } from "../support/service.js";

/** What Debian's Prometheus 2.42 sends with --enable-feature=native-histograms. */
const PROMETHEUS_NATIVE_ACCEPT =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited," +
  "application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75," +
  "text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/** `name{a="1",b="2"} value` lines, labels sorted, as Prometheus would store the text's samples. */
function textSamples(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const m = /^([^{ ]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) throw new Error(`unparsed line ${line}`);
    const labels = [...(m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g)].map(
      (l) => `${l[1]}="${l[2]}"`,
    );
    out.push(`${m[1]}{${labels.sort().join(",")}} ${Number(m[3] === "+Inf" ? Infinity : m[3])}`);
  }
  return out.sort();
}

/** The same for decoded families, expanding classic histograms into Prometheus' series (le as Java writes it). */
function protobufSamples(families: DecodedFamily[], le: (bound: number) => string): string[] {
  const escape = (v: string): string => v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
  const out: string[] = [];
  for (const family of families) {
    for (const metric of family.metric) {
      const labels = metric.label.map((l) => `${l.name}="${escape(l.value)}"`);
      const sample = (name: string, extra: string[], value: number): void => {
        out.push(`${name}{${[...labels, ...extra].sort().join(",")}} ${value}`);
      };
      if (family.type === "HISTOGRAM" && metric.histogram !== undefined) {
        const h = metric.histogram;
        for (const b of h.bucket)
          sample(`${family.name}_bucket`, [`le="${le(b.upperBound)}"`], b.cumulativeCount);
        sample(`${family.name}_bucket`, ['le="+Inf"'], h.sampleCount);
        sample(`${family.name}_count`, [], h.sampleCount);
        sample(`${family.name}_sum`, [], h.sampleSum);
      } else {
        sample(family.name, [], metric.counter?.value ?? metric.gauge?.value ?? NaN);
      }
    }
  }
  return out.sort();
}

/** The text without the Requests2XX sample, which counts the scrapes themselves. */
function withoutScrapeCounts(body: Buffer): string {
  return body
    .toString()
    .split("\n")
    .filter((line) => !line.startsWith("Requests2XX"))
    .join("\n");
}

/** A decoded native histogram's positive buckets: Prometheus index → count. */
function nativeCounts(h: DecodedFamily["metric"][number]["histogram"]): Map<number, number> {
  const out = new Map<number, number>();
  const deltas = h?.positiveDelta ?? [];
  let index = 0;
  let count = 0;
  let d = 0;
  for (const [i, span] of (h?.positiveSpan ?? []).entries()) {
    index = i === 0 ? span.offset : index + span.offset;
    for (let j = 0; j < span.length; j++, index++) {
      count += deltas[d++] ?? NaN;
      if (count !== 0) out.set(index, count);
    }
  }
  return out;
}

/** Java's Double.toString for the bucket bounds used here. */
const javaBound = (bound: number): string => (Number.isInteger(bound) ? `${bound}.0` : String(bound));

describe("/metrics in protobuf", () => {
  let service: MetricsService;
  let url: string;

  before(async () => {
    ({ service, url } = await startTestService({ disableSystemMetrics: true }));
    service.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5, queueMs: 0.5 });
    service.recordInference({ model: "resnet18", status: 503, latencyMs: 80, queueMs: 2 });
    service.recordInference({ model: 'we"ird\\model\nname', status: 200, latencyMs: 3000, queueMs: 1 });
    for (let i = 0; i < 300; i++) {
      service.recordMetric("PredictionTime", i / 7, { ModelName: `m${i % 40}`, Level: "Model" });
    }
  });
  after(() => service.stop());

  it("answers Prometheus' native-histogram Accept with delimited MetricFamily messages holding the text's samples", async () => {
    const proto = await get(url, { Accept: PROMETHEUS_NATIVE_ACCEPT });
    const text = await get(url);
    expect(proto.status).to.equal(200);
    expect(proto.headers["content-type"]).to.equal(PROTOBUF_CONTENT_TYPE);
    expect(proto.headers.vary).to.equal("Accept-Encoding, Accept");
    expect(proto.headers["content-length"]).to.equal(String(proto.body.length));
    const families = decodeMetricFamilies(proto.body);
    const byName = new Map(families.map((f) => [f.name, f]));
    expect(byName.get("Requests2XX")?.type).to.equal("COUNTER");
    expect(byName.get("Requests2XX")?.help).to.equal("Torchserve prometheus counter metric with unit: Count");
    expect(byName.get("PredictionTime")?.type).to.equal("GAUGE");
    expect(byName.get("serve_request_duration_seconds")?.type).to.equal("HISTOGRAM");
    expect(byName.get("ts_inference_requests_total")?.metric.map((m) => m.label)).to.deep.include([
      { name: "model_name", value: 'we"ird\\model\nname' },
      { name: "model_version", value: "default" },
      { name: "hostname", value: "test-host" },
    ]);
    // Every sample of the text, and nothing else, once the histograms are expanded as Prometheus does.
    // (Requests2XX aside: the first scrape was counted in it before the second.)
    const scrapes = (sample: string): boolean => !sample.startsWith("Requests2XX{");
    const fromProtobuf = protobufSamples(families, javaBound).filter(scrapes);
    const fromText = textSamples(text.body.toString()).filter(scrapes);
    expect(fromProtobuf.filter((x) => !fromText.includes(x))).to.deep.equal([]);
    expect(fromProtobuf).to.deep.equal(fromText);
    expect(fromText.length).to.be.greaterThan(500);
  });

  it("carries native buckets, from OpenTelemetry's exponential aggregation, next to the classic ones", async () => {
    const families = decodeMetricFamilies((await get(url, { Accept: PROMETHEUS_NATIVE_ACCEPT })).body);
    const series = (family: string, model: string) =>
      families
        .find((f) => f.name === family)
        ?.metric.find((m) => m.label.some((l) => l.name === "model_name" && l.value === model))?.histogram;
    const resnet = series("serve_request_duration_seconds", "resnet18");
    expect(resnet?.schema).to.equal(3);
    expect(resnet?.zeroThreshold).to.equal(2 ** -128);
    expect(resnet?.bucket).to.have.length(14);
    // 12.5 ms and 80 ms: Prometheus' bucket i at schema 3 holds (2^((i-1)/8), 2^(i/8)].
    expect(nativeCounts(resnet)).to.deep.equal(
      new Map([
        [Math.ceil(Math.log2(0.0125) * 8), 1],
        [Math.ceil(Math.log2(0.08) * 8), 1],
      ]),
    );
    // PredictionTime's histogram: m0 got 0, 40/7, 80/7 … ms; the zero goes to the zero bucket.
    const m0 = series("serve_prediction_time_seconds", "m0");
    expect(m0?.zeroCount).to.equal(1);
    const counts = nativeCounts(m0);
    expect([...counts.values()].reduce((a, b) => a + b, 0) + 1).to.equal(m0?.sampleCount);
    expect(counts.get(Math.ceil(Math.log2(40 / 7 / 1000) * 8))).to.equal(1);
  });

  it("leaves native buckets out of a histogram not in native_histograms", async () => {
    const other = await startTestService({ disableSystemMetrics: true, nativeHistograms: [] });
    try {
      other.service.recordInference({ model: "resnet18", status: 200, latencyMs: 12.5 });
      const families = decodeMetricFamilies(
        (await get(other.url, { Accept: PROMETHEUS_NATIVE_ACCEPT })).body,
      );
      const h = families.find((f) => f.name === "serve_request_duration_seconds")?.metric[0]?.histogram;
      expect(h?.sampleCount).to.equal(1);
      expect(h?.schema ?? 0).to.equal(0);
      expect(h?.zeroThreshold ?? 0).to.equal(0);
      expect(h?.positiveSpan ?? []).to.deep.equal([]);
    } finally {
      await other.service.stop();
    }
  });

  it("keeps text, TorchServe's bytes, for every client that does not ask for protobuf above text", async () => {
    const plain = withoutScrapeCounts((await get(url)).body);
    for (const accept of [
      undefined,
      "*/*",
      "text/plain;version=0.0.4",
      "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0",
      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.5,text/plain",
      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
      "application/vnd.google.protobuf",
    ]) {
      const res = await get(url, accept === undefined ? {} : { Accept: accept });
      expect(res.headers["content-type"], accept).to.equal("text/plain; version=0.0.4; charset=utf-8");
      expect(withoutScrapeCounts(res.body), accept).to.equal(plain);
    }
  });

  it("honours q-values: protobuf above text wins, whatever the order", async () => {
    for (const accept of [
      "text/plain;q=0.3,application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7",
      "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
    ]) {
      const res = await get(url, { Accept: accept });
      expect(res.headers["content-type"], accept).to.equal(PROTOBUF_CONTENT_TYPE);
    }
  });

  it("compresses protobuf with gzip and filters it with name[]", async () => {
    const plain = await get(url, { Accept: PROMETHEUS_NATIVE_ACCEPT });
    const gzip = await get(url, { Accept: PROMETHEUS_NATIVE_ACCEPT, "Accept-Encoding": "gzip" });
    expect(gzip.headers["content-encoding"]).to.equal("gzip");
    // The same families; only the count of /metrics answers (Requests2XX) moved in between.
    const stable = (body: Buffer): DecodedFamily[] =>
      decodeMetricFamilies(body).filter((f) => f.name !== "Requests2XX");
    expect(stable(gunzipSync(gzip.body))).to.deep.equal(stable(plain.body));
    const filtered = await get(`${url}?name[]=Requests2XX&name[]=serve_request_duration_seconds_count`, {
      Accept: PROMETHEUS_NATIVE_ACCEPT,
    });
    expect(decodeMetricFamilies(filtered.body).map((f) => f.name)).to.deep.equal([
      "Requests2XX",
      "serve_request_duration_seconds",
    ]);
  });
});
