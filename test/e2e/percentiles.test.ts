import { expect } from "chai";
import { writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { join } from "node:path";
import type { MetricsService } from "../../src/service.js";
import { request } from "../support/http.js";
import { decodeMetricFamilies } from "../support/metric-family.js";
import {
  apiGet,
  instantQuery,
  startPrometheus,
  successfulScrapes,
  waitForScrapes,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

/*
 * Percentiles from native histograms against the truth: Debian's Prometheus with native
 * histograms and exemplar storage on scrapes a live service (protobuf), the test sends HandlerTime
 * values it knows through the [METRICS] line protocol (POST /metric-lines), and
 * histogram_quantile over the native serve_handler_time_seconds must be within one native
 * bucket's width of the true percentile, and closer than the classic buckets' estimate, read from
 * a second Prometheus scraping the same service as text.
 */

const MODEL = "pct";
const JOB = "serve-metrics";
const QUANTILES = [0.5, 0.9, 0.99] as const;

/**
 * A fixed set of 1,000 HandlerTime values in ms, as the lines write them: 920 spread evenly over
 * 120-180 ms and 80 over 300-340 ms, a latency with a slow tail. The classic default buckets hold
 * them in (0.1, 0.25] and (0.25, 0.5], whose linear interpolation misplaces them by 20-40%. No
 * percentile asked for falls at the gap (rank 920), where any value from 180 to 300 ms is one.
 */
const VALUES_MS: readonly string[] = [
  ...Array.from({ length: 920 }, (_, i) => (120 + (60 * i) / 919).toFixed(6)),
  ...Array.from({ length: 80 }, (_, i) => (300 + (40 * i) / 79).toFixed(6)),
];

/** The nearest-rank percentile, in seconds: the smallest value with at least q of all at or below it. */
function truePercentile(q: number): number {
  const sorted = VALUES_MS.map(Number).sort((a, b) => a - b);
  return (sorted[Math.ceil(q * sorted.length) - 1] ?? NaN) / 1000;
}

function line(valueMs: string, i: number): string {
  const now = Math.floor(Date.now() / 1000);
  return `[METRICS]HandlerTime.Milliseconds:${valueMs}|#ModelName:${MODEL},Level:Model|#type:GAUGE|#hostname:h1,${now},req-${i}`;
}

/** The body of a protobuf scrape of `url`. */
function scrapeProtobuf(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        headers: {
          accept:
            "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve(Buffer.concat(chunks)));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

async function start(binary: string, target: string, flags: string[]): Promise<RunningPrometheus> {
  const dir = tempDir("percentiles-");
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: ${JOB}\n    static_configs:\n      - targets: ["${target}"]\n`,
  );
  return startPrometheus(binary, join(dir, "prometheus.yml"), dir, flags);
}

describe("Percentiles from native histograms against the true ones (Debian's Prometheus, live service)", function () {
  this.timeout(90_000);
  let service: MetricsService | undefined;
  let metricsUrl = "";
  let native: RunningPrometheus | undefined;
  let classic: RunningPrometheus | undefined;

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const started = await startTestService({
      disableSystemMetrics: true,
      inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      // No model workers: the frontend only for POST /metric-lines.
      enableInferenceApi: true,
    });
    service = started.service;
    metricsUrl = started.url;
    const lines = `${service.inferenceUrl ?? ""}/metric-lines`;
    const target = new URL(metricsUrl).host;
    native = await start(binary, target, ["--enable-feature=native-histograms,exemplar-storage"]);
    classic = await start(binary, target, []);
    // One value first, so that the model's histogram is scraped before the known ones arrive:
    // rate() then sees exactly the 1,000 (the first value is in every sample of the window).
    const first = await request(lines, { method: "POST", body: `${line("150", 0)}\n` });
    expect(JSON.parse(first.body)).to.deep.include({ accepted: 1 });
    for (const p of [native, classic])
      await waitForScrapes(p, JOB, (await successfulScrapes(p.api, JOB)) + 2);
    const sent = await request(lines, {
      method: "POST",
      body: `${VALUES_MS.map((v, i) => line(v, i + 1)).join("\n")}\n`,
    });
    expect(JSON.parse(sent.body)).to.deep.include({ accepted: VALUES_MS.length });
    for (const p of [native, classic])
      await waitForScrapes(p, JOB, (await successfulScrapes(p.api, JOB)) + 2);
  });

  after(async () => {
    await native?.stop();
    await classic?.stop();
    await service?.stop();
  });

  /** The native histogram's schema as our protobuf scrape says it, decoded by protobufjs. */
  async function servedSchema(): Promise<number> {
    const families = decodeMetricFamilies(await scrapeProtobuf(metricsUrl));
    const family = families.find((f) => f.name === "serve_handler_time_seconds");
    const metric = family?.metric.find((m) =>
      m.label.some((l) => l.name === "model_name" && l.value === MODEL),
    );
    expect(metric?.histogram?.sampleCount).to.equal(VALUES_MS.length + 1);
    expect(metric?.histogram?.positiveSpan, "native buckets").to.not.be.empty;
    return metric?.histogram?.schema ?? NaN;
  }

  async function estimate(api: string, promql: string): Promise<number> {
    const result = await instantQuery(api, promql);
    expect(result, promql).to.have.length(1);
    return Number(result[0]?.value[1]);
  }

  it("stores the native histogram only in the native Prometheus, the classic buckets in the other", async () => {
    const names = async (api: string): Promise<string[]> =>
      apiGet<string[]>(
        api,
        `/label/__name__/values?match[]=${encodeURIComponent(`{model_name="${MODEL}"}`)}`,
      );
    expect(await names(native?.api ?? "")).to.deep.equal(["serve_handler_time_seconds"]);
    expect(await names(classic?.api ?? "")).to.have.members([
      "serve_handler_time_seconds_bucket",
      "serve_handler_time_seconds_count",
      "serve_handler_time_seconds_sum",
    ]);
  });

  it("puts p50, p90 and p99 within the schema's relative error of the true ones, closer than the classic buckets", async () => {
    const schema = await servedSchema();
    expect(schema).to.equal(3); // native_histogram_schema's default; 1,000 values need no fewer buckets
    // Prometheus 2.42 interpolates linearly inside the bucket that holds the rank, which also holds
    // the true percentile: at most one bucket's width off, 2^(2^-schema) - 1 of its lower bound.
    const bound = 2 ** (2 ** -schema) - 1;
    const report: string[] = [];
    for (const q of QUANTILES) {
      const truth = truePercentile(q);
      const fromNative = await estimate(
        native?.api ?? "",
        `histogram_quantile(${q}, sum by (model_name) (rate(serve_handler_time_seconds{model_name="${MODEL}"}[1m])))`,
      );
      const fromClassic = await estimate(
        classic?.api ?? "",
        `histogram_quantile(${q}, sum by (le, model_name) (rate(serve_handler_time_seconds_bucket{model_name="${MODEL}"}[1m])))`,
      );
      const nativeError = Math.abs(fromNative - truth) / truth;
      const classicError = Math.abs(fromClassic - truth) / truth;
      report.push(
        `p${q * 100}: true ${truth}, native ${fromNative} (${(nativeError * 100).toFixed(2)}%), classic ${fromClassic} (${(classicError * 100).toFixed(2)}%)`,
      );
      expect(nativeError, report.join("; ")).to.be.at.most(bound);
      expect(nativeError, report.join("; ")).to.be.lessThan(classicError);
    }
  });

  it("counts and sums the same from the native histogram as from the classic series", async () => {
    const count = await estimate(
      native?.api ?? "",
      `histogram_count(sum(serve_handler_time_seconds{model_name="${MODEL}"}))`,
    );
    const sum = await estimate(
      native?.api ?? "",
      `histogram_sum(sum(serve_handler_time_seconds{model_name="${MODEL}"}))`,
    );
    expect(count).to.equal(VALUES_MS.length + 1);
    expect(
      await estimate(classic?.api ?? "", `sum(serve_handler_time_seconds_count{model_name="${MODEL}"})`),
    ).to.equal(count);
    const expectedSum = (150 + VALUES_MS.reduce((a, v) => a + Number(v), 0)) / 1000;
    expect(sum).to.be.closeTo(expectedSum, 1e-6);
    expect(
      await estimate(classic?.api ?? "", `sum(serve_handler_time_seconds_sum{model_name="${MODEL}"})`),
    ).to.be.closeTo(expectedSum, 1e-6);
  });
});
