import { expect } from "chai";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import protobuf from "protobufjs";
import { parse, stringify } from "yaml";
import { REPO_ROOT } from "../support/cli.js";
import { until } from "../support/net.js";
import {
  activeAlerts,
  apiGet,
  instantQuery,
  startPrometheus,
  waitForScrapes,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

/*
 * The shipped rules (grafana/alerts.yml, grafana/slo-rules.yml) and the dashboard's latency queries
 * give the same answers whichever way Prometheus scraped the latency histograms: classic (text,
 * `_bucket`, `_count`, `_sum`) or native only (protobuf with native-histograms on: Prometheus 2.42
 * then stores no `_bucket`, `_count` or `_sum`). 2.42's promtool cannot take native input series,
 * so this is the native case of the rules' tests. The exposition is written here (protobufjs and
 * text by hand), the same observations both ways, so the rules are tested apart from our encoder.
 */

const GRAFANA = join(REPO_ROOT, "grafana");
const JOB = "serve-metrics";
const FAMILIES = [
  "serve_request_duration_seconds",
  "serve_handler_time_seconds",
  "serve_prediction_time_seconds",
];
const CLASSIC_BOUNDS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Observations per model per second of the server's life: fast all at 0.2 s, slow half at 2.2 s. */
const MODELS: Record<string, [value: number, count: number][]> = {
  fast: [[0.2, 100]],
  slow: [
    [0.2, 50],
    [2.2, 50],
  ],
};
/** The native buckets' resolution: bucket i holds (2^((i-1)/8), 2^(i/8)]. */
const SCHEMA = 3;

const METRIC_FAMILY = protobuf
  .loadSync(fileURLToPath(new URL("../support/prometheus-metrics.proto", import.meta.url)))
  .lookupType("io.prometheus.client.MetricFamily");

function labels(model: string): [string, string][] {
  return [
    ["hostname", "h1"],
    ["model_name", model],
    ["model_version", "1.0"],
  ];
}

/** Count, sum, cumulative classic buckets and native bucket counts of a model after `n` seconds. */
function histogramOf(model: string, n: number) {
  const observations = MODELS[model] ?? [];
  const native = new Map<number, number>();
  for (const [value, count] of observations) {
    const index = Math.ceil(Math.log2(value) * 2 ** SCHEMA);
    native.set(index, (native.get(index) ?? 0) + count * n);
  }
  return {
    count: observations.reduce((a, [, c]) => a + c * n, 0),
    sum: observations.reduce((a, [v, c]) => a + v * c * n, 0),
    cumulative: CLASSIC_BOUNDS.map((bound) =>
      observations.filter(([v]) => v <= bound).reduce((a, [, c]) => a + c * n, 0),
    ),
    native: [...native].sort(([a], [b]) => a - b),
  };
}

function protobufBody(n: number): Buffer {
  return Buffer.concat(
    FAMILIES.map((name) => {
      const metric = Object.keys(MODELS).map((model) => {
        const h = histogramOf(model, n);
        // One span per bucket, each offset from the end of the last.
        let end = 0;
        const positiveSpan = h.native.map(([index], i) => {
          const span = { offset: i === 0 ? index : index - end, length: 1 };
          end = index + 1;
          return span;
        });
        const positiveDelta = h.native.map(([, c], i) => c - (i === 0 ? 0 : (h.native[i - 1]?.[1] ?? 0)));
        return {
          label: labels(model).map(([k, v]) => ({ name: k, value: v })),
          histogram: {
            sampleCount: h.count,
            sampleSum: h.sum,
            bucket: CLASSIC_BOUNDS.map((upperBound, i) => ({
              upperBound,
              cumulativeCount: h.cumulative[i],
            })),
            schema: SCHEMA,
            zeroThreshold: 2 ** -128,
            positiveSpan,
            positiveDelta,
          },
        };
      });
      return METRIC_FAMILY.encodeDelimited(
        METRIC_FAMILY.create({ name, help: name, type: 4, metric }),
      ).finish();
    }),
  );
}

function textBody(n: number): string {
  const lines: string[] = [];
  for (const name of FAMILIES) {
    lines.push(`# TYPE ${name} histogram`);
    for (const model of Object.keys(MODELS)) {
      const h = histogramOf(model, n);
      const l = labels(model)
        .map(([k, v]) => `${k}="${v}"`)
        .join(",");
      CLASSIC_BOUNDS.forEach((bound, i) =>
        lines.push(`${name}_bucket{${l},le="${bound}"} ${h.cumulative[i] ?? 0}`),
      );
      lines.push(`${name}_bucket{${l},le="+Inf"} ${h.count}`);
      lines.push(`${name}_sum{${l}} ${h.sum}`, `${name}_count{${l}} ${h.count}`);
    }
  }
  return `${lines.join("\n")}\n`;
}

/** Debian's Prometheus with the shipped prometheus.yml and rule files, scraping `target` every second. */
async function startShipped(binary: string, target: string, flags: string[]): Promise<RunningPrometheus> {
  const dir = tempDir("rules-native-");
  const config = parse(readFileSync(join(GRAFANA, "prometheus.yml"), "utf8")) as {
    global: Record<string, unknown>;
    rule_files: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  config.global.scrape_interval = "1s";
  config.global.evaluation_interval = "1s";
  config.rule_files = config.rule_files.map((f) => resolve(GRAFANA, f));
  config.scrape_configs = config.scrape_configs.filter((c) => c.job_name === JOB);
  const scrape = config.scrape_configs[0];
  if (scrape === undefined) throw new Error(`no job ${JOB} in grafana/prometheus.yml`);
  scrape.static_configs = [{ targets: [target] }];
  writeFileSync(join(dir, "prometheus.yml"), stringify(config));
  return startPrometheus(binary, join(dir, "prometheus.yml"), dir, flags);
}

/** The dashboard's targets that read one of the latency histograms. */
function latencyQueries(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(join(GRAFANA, "dashboards", "serve-metrics.json"), "utf8")) as {
    panels: { title: string; targets?: { refId: string; expr: string }[] }[];
  };
  return dashboard.panels.flatMap((p) =>
    (p.targets ?? [])
      .filter((t) => FAMILIES.some((f) => t.expr.includes(f)))
      .map((t) => ({ where: `${p.title} ${t.refId}`, expr: t.expr })),
  );
}

function fill(expr: string): string {
  return expr.replaceAll("$__rate_interval", "1m").replaceAll("$model", ".+").replaceAll("$Hostname", ".+");
}

describe("The shipped rules and latency panels, over classic and over native-only histograms", function () {
  this.timeout(90_000);
  let server: Server | undefined;
  let native: RunningPrometheus | undefined;
  let classic: RunningPrometheus | undefined;
  const accepts: string[] = [];

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const started = Date.now();
    server = createServer((req, res) => {
      const n = 1 + Math.floor((Date.now() - started) / 1000);
      const accept = req.headers.accept ?? "";
      accepts.push(accept);
      if (accept.startsWith("application/vnd.google.protobuf")) {
        res.writeHead(200, {
          "content-type":
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
        });
        res.end(protobufBody(n));
      } else {
        res.writeHead(200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" });
        res.end(textBody(n));
      }
    });
    await new Promise<void>((done) => server?.listen(0, "127.0.0.1", done));
    const target = `127.0.0.1:${(server.address() as AddressInfo).port}`;
    native = await startShipped(binary, target, ["--enable-feature=native-histograms"]);
    classic = await startShipped(binary, target, []);
    await waitForScrapes(native, JOB, 4);
    await waitForScrapes(classic, JOB, 4);
  });

  after(async () => {
    await native?.stop();
    await classic?.stop();
    server?.closeAllConnections();
    await new Promise((done) => (server ? server.close(done) : done(undefined)));
  });

  /** name{model_name} → value of an instant query. */
  async function byModel(api: string, promql: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const r of await instantQuery(api, promql)) out[r.metric.model_name ?? ""] = Number(r.value[1]);
    return out;
  }

  it("scrapes the native histograms only in one and the classic series only in the other", async () => {
    const names = async (api: string): Promise<string[]> =>
      apiGet<string[]>(api, `/label/__name__/values?match[]=${encodeURIComponent(`{job="${JOB}"}`)}`);
    const fromNative = await names(native?.api ?? "");
    const fromClassic = await names(classic?.api ?? "");
    for (const family of FAMILIES) {
      expect(fromNative).to.include(family).and.not.include(`${family}_bucket`);
      expect(fromNative).not.to.include(`${family}_count`).and.not.include(`${family}_sum`);
      expect(fromClassic).to.include.members([`${family}_bucket`, `${family}_count`, `${family}_sum`]);
      expect(fromClassic).not.to.include(family);
    }
    expect(accepts.some((a) => a.startsWith("application/vnd.google.protobuf"))).to.equal(true);
  });

  it("records the p99 over either: above 1 s for the slow model, under it for the fast one", async () => {
    const rule = "model:serve_request_duration_seconds:p99_rate5m";
    const fromNative = await byModel(native?.api ?? "", rule);
    const fromClassic = await byModel(classic?.api ?? "", rule);
    // Native: within 2.2's bucket at schema 3, (2^(9/8), 2^(10/8)]; classic: within (1, 2.5].
    expect(fromNative.slow).to.be.within(2 ** (9 / 8), 2 ** (10 / 8));
    expect(fromClassic.slow).to.be.within(1, 2.5);
    expect(fromNative.fast).to.be.within(2 ** (-19 / 8), 2 ** (-18 / 8));
    expect(fromClassic.fast).to.be.within(0.1, 0.25);
  });

  it("records the mean concurrency from the _sum or from histogram_sum alike", async () => {
    const rule = "model:serve_requests_concurrency:rate1m";
    for (const api of [native?.api ?? "", classic?.api ?? ""]) {
      const values = await byModel(api, rule);
      // 120 request-seconds per second's batch for slow, 20 for fast: the same scrapes give both.
      expect(values.fast).to.be.greaterThan(0);
      expect((values.slow ?? 0) / (values.fast ?? 1)).to.be.closeTo(6, 1e-9);
    }
  });

  it("records the same latency budget and burn rates from the classic bucket or histogram_fraction", async () => {
    for (const api of [native?.api ?? "", classic?.api ?? ""]) {
      expect(await byModel(api, "model:serve_slo_latency:error_budget")).to.deep.equal({
        fast: 0.01,
        slow: 0.01,
      });
      for (const window of ["5m", "1h", "30d"]) {
        const burn = await byModel(api, `model:serve_slo_latency:burn_rate${window}`);
        // Half of slow's requests take over 1 s: 0.5 / 0.01.
        expect(burn.slow, window).to.be.closeTo(50, 1e-9);
        expect(burn.fast, window).to.equal(0);
      }
    }
  });

  it("puts the latency alerts in pending for the slow model only, from either", async () => {
    for (const prometheus of [native, classic]) {
      const api = prometheus?.api ?? "";
      const wanted = ["ServeModelHighP99Latency", "ServeModelLatencyBudgetBurn"];
      let seen: string[] = [];
      await until(
        async () => {
          seen = (await activeAlerts(api))
            .map((a) => `${a.labels.alertname ?? ""} ${a.labels.model_name ?? ""} ${a.state}`)
            .sort();
          return wanted.every((w) => seen.includes(`${w} slow pending`));
        },
        `${wanted.join(" and ")} for slow; seen ${JSON.stringify(seen)}`,
        20_000,
      );
      expect(seen.filter((s) => s.includes(" fast "))).to.deep.equal([]);
    }
  });

  it("answers every latency panel query from either, the native one from its native half", async () => {
    const queries = latencyQueries();
    expect(queries.length).to.be.at.least(10);
    for (const q of queries) {
      const halves = fill(q.expr).split(/ or (?=histogram_quantile|sum)/);
      const nativeHalf = halves.find((h) => !/_bucket\{|_sum\{/.test(h)) ?? "";
      expect(halves, q.where).to.have.length(2);
      expect(nativeHalf, q.where).to.match(/_seconds\{/);
      for (const [name, api] of [
        ["native", native?.api ?? ""],
        ["classic", classic?.api ?? ""],
      ] as const) {
        const answer = await instantQuery(api, fill(q.expr));
        expect(answer.length, `${q.where} from ${name}`).to.be.greaterThan(0);
        expect(
          answer.every((r) => Number(r.value[1]) > 0),
          `${q.where} from ${name}`,
        ).to.equal(true);
      }
      expect(await instantQuery(native?.api ?? "", nativeHalf), q.where).to.not.be.empty;
      expect(await instantQuery(classic?.api ?? "", nativeHalf), q.where).to.be.empty;
    }
  });
});
