import { expect } from "chai";
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { until } from "../support/net.js";
import {
  apiGet,
  instantQuery,
  startPrometheus,
  waitForScrapes,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

/*
 * What Debian's Prometheus 2.42 stores for a histogram that carries classic and native buckets at
 * once, scraped over protobuf with --enable-feature=native-histograms: the behaviour README's
 * "What Prometheus 2.42 stores for native histograms" states, so that an upgrade that changes it
 * fails here. The exposition is built with protobufjs from metrics.proto, not by our encoder.
 */

const SCHEMA = protobuf.loadSync(
  fileURLToPath(new URL("../support/prometheus-metrics.proto", import.meta.url)),
);
const METRIC_FAMILY = SCHEMA.lookupType("io.prometheus.client.MetricFamily");
const HISTOGRAM = 4; // MetricType.HISTOGRAM
const PROTOBUF =
  "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";
/** client_golang's default zero threshold: what marks a native histogram with no observation yet. */
const ZERO_THRESHOLD = 2 ** -128;

/**
 * Six observations, 0.05 0.08 0.3 0.6 0.9 2: classic buckets le 0.1, 1 (and +Inf), and at schema 0
 * (bucket i holds (2^(i-1), 2^i]) buckets -4, -3, -1, 0, 0, 1, times `n`, the scrape's number, so
 * that rate() has something to see.
 */
function observed(n: number, native: boolean): Record<string, unknown> {
  const exemplar = (trace: string, value: number) => ({ label: [{ name: "trace_id", value: trace }], value });
  const classic = {
    sampleCount: 6 * n,
    sampleSum: 3.93 * n,
    // An exemplar on each classic bucket, and one in the Histogram's own exemplars field.
    bucket: [
      { cumulativeCount: 2 * n, upperBound: 0.1, exemplar: exemplar("fast", 0.08) },
      { cumulativeCount: 5 * n, upperBound: 1, exemplar: exemplar("slow", 0.9) },
    ],
    exemplars: [exemplar("own", 2)],
  };
  if (!native) return classic;
  // Counts 1 1 0 1 2 1 from bucket -4, as deltas.
  const counts = [1, 1, 0, 1, 2, 1].map((c) => c * n);
  const positiveDelta = counts.map((c, i) => c - (i === 0 ? 0 : (counts[i - 1] ?? 0)));
  return {
    ...classic,
    schema: 0,
    zeroThreshold: ZERO_THRESHOLD,
    zeroCount: 0,
    positiveSpan: [{ offset: -4, length: 6 }],
    positiveDelta,
  };
}

/** A histogram of no observation, with native fields only if `zeroThreshold` is above 0. */
function unobserved(zeroThreshold: number): Record<string, unknown> {
  return { sampleCount: 0, sampleSum: 0, bucket: [{ cumulativeCount: 0, upperBound: 0.1 }], zeroThreshold };
}

function family(name: string, metrics: [string, Record<string, unknown>][]): Uint8Array {
  return METRIC_FAMILY.encodeDelimited(
    METRIC_FAMILY.create({
      name,
      help: name,
      type: HISTOGRAM,
      metric: metrics.map(([model, histogram]) => ({
        label: [{ name: "model", value: model }],
        histogram,
      })),
    }),
  ).finish();
}

/** The body of the `n`th scrape of `/metrics`. */
function goodBody(n: number): Buffer {
  return Buffer.concat([
    // Classic and native buckets in one Histogram message.
    family("both_seconds", [["a", observed(n, true)]]),
    // Classic buckets only.
    family("classic_seconds", [["a", observed(n, false)]]),
    // The first histogram of the family has no observation and no zero threshold; the second is native.
    family("first_unmarked_seconds", [
      ["idle", unobserved(0)],
      ["busy", observed(n, true)],
    ]),
    // The same, but the empty one has a zero threshold above 0.
    family("first_marked_seconds", [
      ["idle", unobserved(ZERO_THRESHOLD)],
      ["busy", observed(n, true)],
    ]),
  ]);
}

/** A native histogram whose buckets hold more observations (10) than its count says (6). */
function badBody(): Buffer {
  const h = { ...observed(1, true), positiveSpan: [{ offset: -3, length: 4 }], positiveDelta: [2, 1, -1, 1] };
  return Buffer.from(family("overcounted_seconds", [["a", h]]));
}

function seriesNames(series: Record<string, string>[], prefix: string): string[] {
  return series
    .map((s) => `${s.__name__ ?? ""}{model=${s.model ?? ""}}`)
    .filter((s) => s.startsWith(prefix))
    .sort();
}

describe("What Debian's Prometheus 2.42 stores for native histograms", function () {
  this.timeout(60_000);
  let server: Server | undefined;
  let prometheus: RunningPrometheus | undefined;
  let scrapes = 0;
  let dir = "";
  let binary = "";

  before(async function () {
    binary = requireTool(this, "prometheus");
    server = createServer((req, res) => {
      res.writeHead(200, { "content-type": PROTOBUF });
      res.end(req.url === "/bad" ? badBody() : goodBody(++scrapes));
    });
    await new Promise<void>((resolve) => server?.listen(0, "127.0.0.1", resolve));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    dir = tempDir("prom-native-");
    writeFileSync(
      join(dir, "prometheus.yml"),
      "global:\n  scrape_interval: 1s\nscrape_configs:\n" +
        `  - job_name: good\n    static_configs:\n      - targets: ["${target}"]\n` +
        `  - job_name: bad\n    metrics_path: /bad\n    static_configs:\n      - targets: ["${target}"]\n`,
    );
    prometheus = await startPrometheus(binary, join(dir, "prometheus.yml"), dir, [
      "--enable-feature=native-histograms,exemplar-storage",
    ]);
    await waitForScrapes(prometheus, "good", 4);
  });

  after(async () => {
    await prometheus?.stop();
    server?.closeAllConnections();
    await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  });

  it("stores only the native histogram of a histogram with both: no _bucket, _count or _sum series", async () => {
    const series = await apiGet<Record<string, string>[]>(
      prometheus?.api ?? "",
      `/series?match[]=${encodeURIComponent('{job="good"}')}`,
    );
    expect(seriesNames(series, "both_")).to.deep.equal(["both_seconds{model=a}"]);
    // A histogram with classic buckets only is stored as before.
    expect(seriesNames(series, "classic_")).to.deep.equal([
      "classic_seconds_bucket{model=a}",
      "classic_seconds_bucket{model=a}",
      "classic_seconds_bucket{model=a}",
      "classic_seconds_count{model=a}",
      "classic_seconds_sum{model=a}",
    ]);
    const native = await instantQuery(prometheus?.api ?? "", "both_seconds");
    expect(native).to.have.length(1);
    expect(native[0]).to.have.property("histogram");
  });

  it("decides per family from its first histogram: one with no observation and no zero threshold makes the whole family classic", async () => {
    const series = await apiGet<Record<string, string>[]>(
      prometheus?.api ?? "",
      `/series?match[]=${encodeURIComponent('{job="good"}')}`,
    );
    const unmarked = seriesNames(series, "first_unmarked_");
    expect(unmarked).to.include("first_unmarked_seconds_count{model=busy}");
    expect(unmarked).to.include("first_unmarked_seconds_count{model=idle}");
    expect(unmarked.filter((s) => s.startsWith("first_unmarked_seconds{"))).to.deep.equal([]);
    // With a zero threshold above 0 the empty one is native too, and so is the family.
    expect(seriesNames(series, "first_marked_")).to.deep.equal([
      "first_marked_seconds{model=busy}",
      "first_marked_seconds{model=idle}",
    ]);
  });

  it("fails the whole scrape when a native histogram's buckets hold more than its count", async () => {
    const api = prometheus?.api ?? "";
    await until(async () => (await instantQuery(api, 'up{job="bad"}')).length > 0, "a scrape of /bad");
    expect((await instantQuery(api, 'up{job="bad"}'))[0]?.value[1]).to.equal("0");
    const targets = await apiGet<{ activeTargets: { labels: { job: string }; lastError: string }[] }>(
      api,
      "/targets?state=active",
    );
    const bad = targets.activeTargets.find((t) => t.labels.job === "bad");
    expect(bad?.lastError).to.match(/10 observations found in buckets, but the Count field is 6/);
  });

  it("answers histogram_count, histogram_sum, histogram_quantile and histogram_fraction over it, also over sum(rate())", async () => {
    const api = prometheus?.api ?? "";
    const value = async (promql: string): Promise<number> => {
      const result = await instantQuery(api, promql);
      expect(result, promql).to.have.length(1);
      return Number(result[0]?.value[1]);
    };
    const count = await value("histogram_count(both_seconds)");
    expect(count % 6, "a multiple of the six observations").to.equal(0);
    expect(await value("histogram_sum(both_seconds)")).to.be.closeTo((3.93 * count) / 6, 1e-9);
    // Rank 3 of 6 ends bucket (0.25, 0.5]; 5 of 6 are at most 1 (a bucket bound), 3 at most 0.5.
    expect(await value("histogram_quantile(0.5, both_seconds)")).to.equal(0.5);
    expect(await value("histogram_fraction(0, 1, both_seconds)")).to.be.closeTo(5 / 6, 1e-9);
    const rate = "sum by (model) (rate(both_seconds[10s]))";
    expect(await value(`histogram_quantile(0.5, ${rate})`)).to.be.closeTo(0.5, 1e-9);
    expect(await value(`histogram_fraction(0, 0.5, ${rate})`)).to.be.closeTo(0.5, 1e-9);
    expect(await value(`histogram_count(${rate})`)).to.be.greaterThan(0);
    expect(await value(`histogram_sum(${rate})`)).to.be.greaterThan(0);
  });

  it("keeps one exemplar per native histogram and scrape, the lowest classic bucket's; every bucket's of a classic one", async () => {
    const end = Date.now() / 1000;
    const traces = async (selector: string): Promise<string[]> => {
      const found = await apiGet<{ exemplars: { labels: { trace_id?: string } }[] }[]>(
        prometheus?.api ?? "",
        `/query_exemplars?query=${encodeURIComponent(selector)}&start=${end - 600}&end=${end + 1}`,
      );
      return [...new Set(found.flatMap((s) => s.exemplars.map((e) => e.labels.trace_id ?? "")))].sort();
    };
    // The slow request's exemplar, on a higher bucket, is dropped; the Histogram's own field is not read.
    expect(await traces("both_seconds")).to.deep.equal(["fast"]);
    expect(await traces("classic_seconds_bucket")).to.deep.equal(["fast", "slow"]);
  });

  it("knows no histogram_avg, histogram_stddev or histogram_stdvar (later versions' functions)", async () => {
    for (const fn of ["histogram_avg", "histogram_stddev", "histogram_stdvar"]) {
      const error = await instantQuery(prometheus?.api ?? "", `${fn}(both_seconds)`).then(
        () => "",
        (e: unknown) => String(e),
      );
      expect(error, fn).to.match(new RegExp(`unknown function with name "${fn}"`));
    }
  });

  it("refuses scrape_classic_histograms (the setting that keeps both came in 2.45)", async () => {
    writeFileSync(
      join(dir, "classic.yml"),
      "scrape_configs:\n  - job_name: x\n    scrape_classic_histograms: true\n" +
        '    static_configs:\n      - targets: ["127.0.0.1:9"]\n',
    );
    const child = spawn(
      binary,
      [
        `--config.file=${join(dir, "classic.yml")}`,
        `--storage.tsdb.path=${join(dir, "classic-data")}`,
        "--web.listen-address=127.0.0.1:0",
        "--enable-feature=native-histograms",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    let log = "";
    child.stderr.on("data", (d: Buffer) => (log += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).to.not.equal(0);
    expect(log).to.match(/field scrape_classic_histograms not found in type config\.ScrapeConfig/);
  });

  it("promtool test rules cannot read native histogram input series ({{schema:… buckets:[…]}} came in 2.47)", async function () {
    const promtool = requireTool(this, "promtool");
    writeFileSync(join(dir, "rules.yml"), "groups: []\n");
    writeFileSync(
      join(dir, "native.test.yml"),
      "rule_files: [rules.yml]\ntests:\n  - interval: 1m\n    input_series:\n" +
        '      - series: h\n        values: "{{schema:0 sum:5 count:4 buckets:[1 2 1]}}x5"\n' +
        "    promql_expr_test:\n      - expr: histogram_count(h)\n        eval_time: 2m\n" +
        '        exp_samples:\n          - labels: "{}"\n            value: 4\n',
    );
    const child = spawn(promtool, ["test", "rules", join(dir, "native.test.yml")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).to.equal(1);
    expect(out).to.match(/unexpected character in series sequence: '\{'/);
  });
});
