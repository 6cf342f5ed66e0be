import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import { loadDefaultCatalog } from "../../src/catalog/load.js";
import { DEFAULT_BUCKETS, type MetricDefinition } from "../../src/catalog/types.js";
import type { MetricsService } from "../../src/service.js";
import { extraMetrics } from "../../src/telemetry/extra-metrics.js";
import { DEFAULT_HISTOGRAM_GAUGES, planGaugeHistograms } from "../../src/telemetry/gauge-histograms.js";
import { REPO_ROOT } from "../support/cli.js";
import { request } from "../support/http.js";
import {
  apiGet,
  instantQuery,
  startPrometheus,
  successfulScrapes,
  waitForScrapes,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";
import { TorchServeLogWriter } from "../support/torchserve-log-writer.js";

const GRAFANA = join(REPO_ROOT, "grafana");
const DASHBOARDS = join(GRAFANA, "dashboards");
const FAKE_NVIDIA_SMI = join(REPO_ROOT, "test/fixtures/nvidia-smi/fake-nvidia-smi.js");
const DATASOURCE = { type: "prometheus", uid: "${datasource}" };

interface Target {
  refId: string;
  expr: string;
  legendFormat?: string;
  datasource?: unknown;
  exemplar?: boolean;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: unknown;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
}
interface Variable {
  name: string;
  type: string;
  query: unknown;
  datasource?: unknown;
  includeAll?: boolean;
  allValue?: string;
}
interface Dashboard {
  id: unknown;
  uid: unknown;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: Variable[] };
}
/** The parts of docker-compose.yml the tests read. */
interface ComposeFile {
  services: Record<
    string,
    {
      image: string;
      network_mode?: string;
      command?: string[];
      volumes?: string[];
      environment?: Record<string, string>;
      profiles?: string[];
    }
  >;
}
/** One panel query, named for failure messages. */
interface PanelQuery {
  where: string;
  expr: string;
  legendFormat: string;
}

function readYaml(path: string): Record<string, unknown> {
  return parse(readFileSync(path, "utf8")) as Record<string, unknown>;
}

function dashboardFiles(): string[] {
  return readdirSync(DASHBOARDS)
    .filter((f) => f.endsWith(".json"))
    .map((f) => join(DASHBOARDS, f));
}

function loadDashboards(): Dashboard[] {
  return dashboardFiles().map((f) => JSON.parse(readFileSync(f, "utf8")) as Dashboard);
}

function panelQueries(): PanelQuery[] {
  return loadDashboards().flatMap((d) =>
    d.panels.flatMap((p) =>
      (p.targets ?? []).map((t) => ({
        where: `${d.uid as string} / "${p.title}" / ${t.refId}`,
        expr: t.expr,
        legendFormat: t.legendFormat ?? "",
      })),
    ),
  );
}

/** Grafana's variables as Grafana would fill them in, for Prometheus without Grafana. */
function substitute(expr: string, values: { rateInterval: string; model: string; host: string }): string {
  const filled = expr
    .replaceAll(/\$\{?__rate_interval\}?/g, values.rateInterval)
    .replaceAll(/\$\{?model\}?/g, values.model)
    .replaceAll(/\$\{?Hostname\}?/g, values.host);
  if (filled.includes("$")) throw new Error(`a variable the test does not know is left in ${filled}`);
  return filled;
}

/**
 * Every metric the service exposes, with its labels: the bundled catalog, serve-metrics' own and
 * the histograms of the default histogram gauges.
 */
function exposedMetrics(): Map<string, MetricDefinition> {
  const catalog = loadDefaultCatalog().metrics;
  const histograms = planGaugeHistograms(catalog, DEFAULT_HISTOGRAM_GAUGES, DEFAULT_BUCKETS).histograms;
  const all = [...catalog, ...extraMetrics(DEFAULT_BUCKETS), ...histograms.map((h) => h.definition)];
  return new Map(all.map((m) => [m.name, m]));
}

/** The catalog metric a sample name belongs to (a histogram's `_bucket`/`_count`/`_sum` too). */
function metricOf(sample: string, metrics: Map<string, MetricDefinition>): MetricDefinition | undefined {
  const exact = metrics.get(sample);
  if (exact !== undefined) return exact;
  const base = sample.replace(/_(bucket|count|sum)$/, "");
  const histogram = metrics.get(base);
  return histogram?.type === "histogram" ? histogram : undefined;
}

/** The vector selectors of an expression: metric names (from `__name__=~` too) and label matchers. */
function selectors(
  expr: string,
): { names: string[]; matchers: { label: string; op: string; value: string }[] }[] {
  return [...expr.matchAll(/([A-Za-z_:][\w:]*)?\{([^}]*)\}/g)].map((m) => {
    const matchers = [...(m[2] ?? "").matchAll(/(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"/g)].map((x) => ({
      label: x[1] ?? "",
      op: x[2] ?? "",
      value: x[3] ?? "",
    }));
    const byName = matchers.find((x) => x.label === "__name__");
    const names = m[1] !== undefined ? [m[1]] : (byName?.value.split("|") ?? []);
    return { names, matchers: matchers.filter((x) => x.label !== "__name__") };
  });
}

/**
 * The series the shipped rule files (prometheus.yml's rule_files) record, by name: a panel may read
 * them (the SLO panels read the burn rates and budgets, which only the rules know), filtered by
 * model alone, as they are summed over hosts.
 */
function recordedRules(): Set<string> {
  const config = readYaml(join(GRAFANA, "prometheus.yml")) as { rule_files?: string[] };
  const names = new Set<string>();
  for (const file of config.rule_files ?? []) {
    const rules = readYaml(resolve(GRAFANA, file)) as { groups: { rules: { record?: string }[] }[] };
    for (const g of rules.groups) for (const r of g.rules) if (r.record !== undefined) names.add(r.record);
  }
  return names;
}

const JOB = "serve-metrics";

/**
 * Starts Debian's Prometheus with the shipped prometheus.yml and rules, scraping `metricsUrl` every
 * second; `flags` are added (native histograms, say).
 */
async function startShippedPrometheus(
  binary: string,
  dir: string,
  metricsUrl: string,
  flags: readonly string[] = [],
): Promise<RunningPrometheus> {
  const config = readYaml(join(GRAFANA, "prometheus.yml")) as {
    global: Record<string, unknown>;
    rule_files?: string[];
    scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
  };
  config.global.scrape_interval = "1s";
  config.global.evaluation_interval = "1s";
  // Relative to the config file, which is copied: point at the shipped rules.
  config.rule_files = config.rule_files?.map((f) => resolve(GRAFANA, f));
  const scrape = config.scrape_configs.find((c) => c.job_name === JOB);
  expect(scrape, `job ${JOB} in grafana/prometheus.yml`).not.to.equal(undefined);
  expect(scrape?.static_configs.flatMap((s) => s.targets)).to.deep.equal(["127.0.0.1:8082"]);
  scrape!.static_configs = [{ targets: [new URL(metricsUrl).host] }];
  writeFileSync(join(dir, "prometheus.yml"), stringify(config));
  return startPrometheus(binary, join(dir, "prometheus.yml"), dir, flags);
}

/** The histograms that carry native buckets by default (native_histograms), which the latency panels read. */
const NATIVE_HISTOGRAMS = [
  "serve_request_duration_seconds",
  "serve_handler_time_seconds",
  "serve_prediction_time_seconds",
];

/**
 * What is wrong with each query's answer: no series, no finite value, a rate of 0, a legend label
 * missing. `host` is the Hostname variable's value, any host by default.
 */
async function panelProblems(api: string, queries: readonly PanelQuery[], host = ".+"): Promise<string[]> {
  const problems: string[] = [];
  for (const q of queries) {
    // ".+" rather than Grafana's ".*": it does not match a missing label, so a selector
    // filtering on a misspelt label (hostname for Hostname) comes back empty here.
    const promql = substitute(q.expr, { rateInterval: "1m", model: ".+", host });
    const result = await instantQuery(api, promql);
    const values = result.map((r) => Number(r.value[1]));
    if (result.length === 0) problems.push(`${q.where}: no series for ${promql}`);
    else if (!values.some(Number.isFinite)) problems.push(`${q.where}: only ${values.join(", ")}`);
    else if (/\brate\(/.test(promql) && !values.some((v) => v > 0))
      problems.push(`${q.where}: no rate above 0 for ${promql}`);
    for (const label of [...q.legendFormat.matchAll(/\{\{\s*(\w+)\s*\}\}/g)].map((m) => m[1] ?? ""))
      for (const r of result)
        if (!(label in r.metric)) problems.push(`${q.where}: legend label ${label} missing from the result`);
  }
  return problems;
}

describe("Grafana dashboards, provisioning and the Prometheus and Collector configs", function () {
  this.timeout(60_000);

  describe("the dashboard JSON", () => {
    it("is provisioning-safe: id null, a fixed uid, a datasource variable, no import inputs", () => {
      expect(dashboardFiles()).to.have.length.within(1, 2);
      const uids = new Set<unknown>();
      for (const file of dashboardFiles()) {
        const raw = readFileSync(file, "utf8");
        expect(raw, file).not.to.match(/DS_PROMETHEUS|__inputs|__requires/);
        const d = JSON.parse(raw) as Dashboard;
        expect(d.id, file).to.equal(null);
        expect(d.uid, file)
          .to.be.a("string")
          .and.match(/^[A-Za-z0-9_-]{1,40}$/);
        uids.add(d.uid);
        expect(d.schemaVersion, file).to.be.within(36, 41);
        const datasource = d.templating.list.filter((v) => v.type === "datasource");
        expect(
          datasource.map((v) => [v.name, v.query]),
          file,
        ).to.deep.equal([["datasource", "prometheus"]]);
        for (const v of d.templating.list.filter((x) => x.type === "query"))
          expect(v.datasource, `${file} variable ${v.name}`).to.deep.equal(DATASOURCE);
      }
      expect(uids.size).to.equal(dashboardFiles().length);
    });

    it("has only timeseries and stat panels, each with queries on the ${datasource} variable", () => {
      for (const d of loadDashboards()) {
        expect(d.panels).not.to.be.empty;
        const ids = d.panels.map((p) => p.id);
        expect(new Set(ids).size, "panel ids").to.equal(ids.length);
        for (const p of d.panels) {
          const where = `${d.title} / "${p.title}"`;
          expect(p.type, where).to.be.oneOf(["timeseries", "stat"]);
          expect(p.datasource, where).to.deep.equal(DATASOURCE);
          expect(p.gridPos.x + p.gridPos.w, where).to.be.at.most(24);
          expect(p.targets, where).to.be.an("array").that.is.not.empty;
          for (const t of p.targets ?? []) {
            expect(t.datasource, `${where} ${t.refId}`).to.deep.equal(DATASOURCE);
            expect(t.expr, `${where} ${t.refId}`).to.be.a("string").that.is.not.empty;
          }
        }
      }
    });

    it("filters every selector by $Hostname and $model on the label spelling of its metric", () => {
      const metrics = exposedMetrics();
      const recorded = recordedRules();
      expect(recorded.has("model:serve_slo_availability:burn_rate1h")).to.equal(true);
      for (const q of panelQueries()) {
        // Variables only ever stand in regex matchers (Grafana writes multi-values as a|b).
        const outsideMatchers = q.expr
          .replaceAll(/\w+\s*=~\s*"[^"]*"/g, "")
          .replaceAll("[$__rate_interval]", "");
        expect(outsideMatchers, q.where).not.to.include("$");
        const found = selectors(q.expr);
        expect(found, q.where).not.to.be.empty;
        for (const s of found) {
          expect(s.names, q.where).not.to.be.empty;
          for (const name of s.names) {
            if (recorded.has(name)) {
              expect(s.matchers, `${q.where}: ${name} by model alone`).to.deep.equal([
                { label: "model_name", op: "=~", value: "$model" },
              ]);
              continue;
            }
            const metric = metricOf(name, metrics);
            expect(metric, `${q.where}: ${name} is not a metric the service exposes`).not.to.equal(undefined);
            const labels = metric?.dimensions ?? [];
            for (const m of s.matchers)
              expect(labels, `${q.where}: ${name} has no label ${m.label}`).to.include(m.label);
            const hostLabel = labels.find((l) => l.toLowerCase() === "hostname");
            expect(s.matchers, `${q.where}: ${name} by host`).to.deep.include({
              label: hostLabel,
              op: "=~",
              value: "$Hostname",
            });
            const modelLabel = labels.find((l) => l === "model_name" || l === "ModelName");
            const modelFilter = s.matchers.find((m) => m.value.includes("$model"));
            if (modelLabel !== undefined)
              expect(modelFilter, `${q.where}: ${name} by model`).to.deep.equal({
                label: modelLabel,
                op: "=~",
                value: "$model",
              });
            else if (modelFilter !== undefined) expect(modelFilter.label, q.where).to.equal("WorkerName");
          }
        }
      }
    });

    it("shows every metric the service exposes somewhere", () => {
      const used = new Set(
        panelQueries().flatMap((q) =>
          selectors(q.expr).flatMap((s) => s.names.map((n) => metricOf(n, exposedMetrics())?.name)),
        ),
      );
      const missing = [...exposedMetrics().keys()].filter((name) => !used.has(name));
      expect(missing).to.deep.equal([]);
    });

    it("asks for exemplars on the p99 line of each percentile panel, and nowhere else", () => {
      const asking = loadDashboards().flatMap((d) =>
        d.panels.flatMap((p) =>
          (p.targets ?? []).filter((t) => t.exemplar === true).map((t) => ({ panel: p, target: t })),
        ),
      );
      expect(asking.map((a) => a.panel.title)).to.deep.equal([
        "Latency percentiles per model",
        "HandlerTime percentiles per model",
        "PredictionTime percentiles per model",
      ]);
      for (const { panel, target } of asking) {
        // Grafana draws exemplars on time series panels only.
        expect(panel.type, panel.title).to.equal("timeseries");
        expect(target.expr, panel.title).to.match(/^histogram_quantile\(0\.99,/);
      }
    });

    it("declares the Hostname and model variables as label_values queries over all values", () => {
      for (const d of loadDashboards()) {
        const byName = new Map(d.templating.list.map((v) => [v.name, v]));
        expect(byName.get("Hostname")?.query).to.equal("label_values(Hostname)");
        expect(byName.get("model")?.query).to.equal("label_values(ts_inference_requests_total, model_name)");
        for (const name of ["Hostname", "model"]) {
          // ".*", not Grafana's default of the listed values: a host or model seen only in
          // HandlerTime lines would otherwise vanish from "All".
          expect(byName.get(name)).to.include({ includeAll: true, allValue: ".*" });
        }
      }
    });
  });

  describe("with promtool", () => {
    let binary: string;
    const promtool = (args: string[]): { status: number | null; output: string } => {
      const run = spawnSync(binary, args, { encoding: "utf8" });
      return { status: run.status, output: `${run.stdout}${run.stderr}` };
    };
    before(function () {
      binary = requireTool(this, "promtool");
    });

    it("accepts grafana/prometheus.yml (promtool check config)", () => {
      const run = promtool(["check", "config", join(GRAFANA, "prometheus.yml")]);
      expect(run.status, run.output).to.equal(0);
      expect(run.output).to.include("SUCCESS");
    });

    it("parses every panel expression as PromQL (promtool check rules on a generated rule file)", () => {
      const dir = mkdtempSync(join(tmpdir(), "grafana-rules-"));
      try {
        const queries = panelQueries();
        const rules = (exprs: string[]): string =>
          stringify({
            groups: [
              {
                name: "serve-metrics-dashboard",
                rules: exprs.map((expr, i) => ({ record: `dashboard:query_${i}`, expr })),
              },
            ],
          });
        const fill = (expr: string): string =>
          substitute(expr, { rateInterval: "1m", model: ".*", host: ".*" });
        writeFileSync(join(dir, "dashboard.rules.yml"), rules(queries.map((q) => fill(q.expr))));
        const run = promtool(["check", "rules", join(dir, "dashboard.rules.yml")]);
        expect(run.status, run.output).to.equal(0);
        expect(run.output).to.include(`SUCCESS: ${queries.length} rules found`);

        // The same check refuses a broken expression, so the success above means something.
        writeFileSync(join(dir, "broken.rules.yml"), rules(["sum(rate(Requests2XX[1m])"]));
        expect(promtool(["check", "rules", join(dir, "broken.rules.yml")]).status).not.to.equal(0);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("every panel query against a real Prometheus scraping the service", () => {
    let service: MetricsService | undefined;
    let prometheus: RunningPrometheus | undefined;
    // The same shipped config with native histograms on: it scrapes protobuf and stores the
    // latency histograms as native histograms only.
    let native: RunningPrometheus | undefined;
    let dir: string | undefined;
    let nativeDir: string | undefined;
    let inference: string;
    const job = JOB;

    /**
     * Inference traffic through the frontend: 2XX, a 404 for an unknown model, a worker's 400 and
     * 500, and [METRICS] lines good and bad.
     */
    async function sendTraffic(): Promise<void> {
      const post = async (path: string, body = "hello"): Promise<number> =>
        (await request(`${inference}${path}`, { method: "POST", body })).status;
      const ok = await Promise.all(Array.from({ length: 6 }, () => post("/predictions/echo")));
      expect(ok).to.deep.equal([200, 200, 200, 200, 200, 200]);
      expect(await post("/predictions/echo/1.0?sleep=20")).to.equal(200);
      expect(await post("/predictions/nope")).to.equal(404);
      // The worker answers 400 itself: a 4XX of a served model, for the per-model 4XX ratio.
      expect(await post("/predictions/echo?status=400")).to.equal(400);
      // The worker answers 500 itself: a real 5XX through the frontend, no crash and restart.
      expect(await post("/predictions/echo?status=500")).to.equal(500);
      const now = Math.floor(Date.now() / 1000);
      const lines = await request(`${inference}/metric-lines`, {
        method: "POST",
        body: `[METRICS]PredictionTime.Milliseconds:71.95|#ModelName:echo,Level:Model|#type:GAUGE|#hostname:worker-1,${now},req-7\nnot a metric line\n`,
      });
      expect(JSON.parse(lines.body)).to.deep.include({ accepted: 1 });
    }

    before(async function () {
      const binary = requireTool(this, "prometheus");
      // nvidia-smi is the one part replaced: the fixture prints two GPUs' CSV, so the GPU panels
      // are checked too; the service still runs it as it would run the driver's tool.
      process.env.FAKE_NVIDIA_SMI = "two-gpus.csv";
      const started = await startTestService(
        {
          models: [
            {
              model: "echo",
              version: "1.0",
              isDefault: true,
              workers: 2,
              url: undefined,
              command: "node test/fixtures/workers/echo-worker.js --port {port}",
            },
          ],
          inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
          numberOfGpu: undefined,
          nvidiaSmiPath: FAKE_NVIDIA_SMI,
        },
        { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
      );
      service = started.service;
      await service.workersReady();
      inference = service.inferenceUrl ?? "";
      await sendTraffic();

      dir = mkdtempSync(join(tmpdir(), "grafana-prom-"));
      prometheus = await startShippedPrometheus(binary, dir, started.url);
      nativeDir = mkdtempSync(join(tmpdir(), "grafana-prom-native-"));
      native = await startShippedPrometheus(binary, nativeDir, started.url, [
        "--enable-feature=native-histograms,exemplar-storage",
      ]);

      // Counters must rise between scrapes for rate() to be above 0: traffic before the first
      // scrapes and again after them, then two more scrapes.
      await waitForScrapes(prometheus, job, 2);
      await waitForScrapes(native, job, 2);
      await sendTraffic();
      // The process metrics are read every 15 s: read them now, so that the CPU counter rises
      // between scrapes as it would over a longer run.
      await service.sampleSystem();
      for (const p of [prometheus, native])
        await waitForScrapes(p, job, (await successfulScrapes(p.api, job)) + 2);
    });

    after(async () => {
      await prometheus?.stop();
      await native?.stop();
      await service?.stop();
      delete process.env.FAKE_NVIDIA_SMI;
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
      if (nativeDir !== undefined) rmSync(nativeDir, { recursive: true, force: true });
    });

    it("answers every panel query with data, each legend's labels present", async () => {
      const queries = panelQueries();
      expect(await panelProblems(prometheus!.api, queries)).to.deep.equal([]);
      expect(queries.length).to.be.at.least(20);
    });

    it("answers every panel query with data from a Prometheus storing native histograms, the latency panels from them", async () => {
      const names = await apiGet<string[]>(
        native!.api,
        `/label/__name__/values?match[]=${encodeURIComponent(`{job="${job}"}`)}`,
      );
      // Stored as native histograms only: the classic series are not there to fall back on.
      expect(names).to.include.members(NATIVE_HISTOGRAMS);
      for (const family of NATIVE_HISTOGRAMS)
        expect(names).not.to.include.members([`${family}_bucket`, `${family}_count`, `${family}_sum`]);
      const queries = panelQueries();
      expect(await panelProblems(native!.api, queries)).to.deep.equal([]);
      const latency = queries.filter((q) => NATIVE_HISTOGRAMS.some((f) => q.expr.includes(`${f}{`)));
      expect(latency.length).to.be.at.least(10);
      // Each latency query is "<native> or <classic>" (either order): the native half alone answers.
      const nativeOnly = latency.map((q) => ({
        ...q,
        expr: q.expr.split(/ or (?=histogram_quantile|sum)/).find((h) => !/_bucket\{|_sum\{/.test(h)) ?? "",
      }));
      expect(await panelProblems(native!.api, nativeOnly)).to.deep.equal([]);
    });

    it("takes each exemplar target's query at /api/v1/query_exemplars, as Grafana sends it", async () => {
      const end = Date.now() / 1000;
      for (const [api, name] of [
        [native!.api, "native"],
        [prometheus!.api, "classic"],
      ] as const) {
        for (const d of loadDashboards())
          for (const p of d.panels)
            for (const t of (p.targets ?? []).filter((x) => x.exemplar === true)) {
              const query = substitute(t.expr, { rateInterval: "1m", model: ".+", host: ".+" });
              const found = await apiGet<unknown[]>(
                api,
                `/query_exemplars?query=${encodeURIComponent(query)}&start=${end - 600}&end=${end}`,
              ).catch((e: unknown) => `${p.title} (${name}): ${String(e)}`);
              expect(found, `${p.title} (${name})`).to.be.an("array");
            }
      }
    });

    it("shows the 404 and the 500 in the 4XX and 5XX ratios", async () => {
      const ratios = panelQueries().filter((q) => q.expr.includes("or vector(0)"));
      expect(ratios.map((q) => /Requests[45]XX/.exec(q.expr)?.[0])).to.have.members([
        "Requests4XX",
        "Requests5XX",
      ]);
      for (const q of ratios) {
        const result = await instantQuery(
          prometheus!.api,
          substitute(q.expr, { rateInterval: "1m", model: ".*", host: ".*" }),
        );
        expect(Number(result[0]?.value[1]), q.where).to.be.within(Number.MIN_VALUE, 1);
      }
    });

    it("lists the service's hosts and models in the variables' label_values queries", async () => {
      const [dashboard] = loadDashboards();
      const options = async (name: string): Promise<string[]> => {
        const v = dashboard?.templating.list.find((x) => x.name === name);
        const m = /^label_values\((?:(.+),\s*)?(\w+)\)$/.exec(String(v?.query));
        expect(m, `variable ${name}`).not.to.equal(null);
        const match = m?.[1] === undefined ? "" : `?match[]=${encodeURIComponent(m[1])}`;
        return apiGet<string[]>(prometheus!.api, `/label/${m?.[2] ?? ""}/values${match}`);
      };
      // The service's own host, the echo worker's (its [METRICS] lines) and the posted line's.
      expect(await options("Hostname")).to.include.members(["test-host", hostname(), "worker-1"]);
      expect(await options("model")).to.deep.equal(["echo"]);
    });
  });

  describe("every panel query against a real Prometheus scraping a service that follows TorchServe's logs", () => {
    // Only the inference frontend has these: TorchServe's logs say nothing of its queue or workers.
    const FRONTEND_ONLY = [
      "serve_queue_depth",
      "serve_job_queue_size",
      "serve_workers",
      "serve_worker_restarts_total",
      "serve_requests_in_flight",
      // The access log says a response's status, not why it failed.
      "serve_inference_errors_total",
    ];
    // The sidecar's own families: its process, its line intake and its OTLP pushes, which carry
    // the sidecar's host (startTestService's test-host), not TorchServe's.
    const SIDECAR_OWN = /^(process_|nodejs_|serve_metric_lines_|serve_otlp_exports_total$)/;
    let service: MetricsService | undefined;
    let prometheus: RunningPrometheus | undefined;
    let writer: TorchServeLogWriter | undefined;
    let dir: string | undefined;
    let requests = 0;
    // TorchServe's host, not the sidecar's (startTestService names it test-host): the two differ,
    // as in the compose example's separate containers.
    const TS_HOST = "ts-host";

    /** What a TorchServe logs for some requests to two models (a 4XX and a 5XX among them) and a minute's system metrics. */
    async function logTraffic(): Promise<void> {
      const w = writer!;
      const tail = `|#hostname:${TS_HOST},timestamp:${Math.floor(Date.now() / 1000)}`;
      await w.writeRequests(5);
      requests += 5;
      for (const [model, status] of [
        ["resnet", 200],
        ["resnet", 400],
        ["resnet", 503],
      ] as const) {
        const dims = `model_name:${model},model_version:default`;
        await w.writeLines("ts_metrics", [
          `ts_inference_requests_total.Count:1.0|#${dims}${tail}`,
          `ts_inference_latency_microseconds.Microseconds:2.5E4|#${dims}${tail}`,
          `ts_queue_latency_microseconds.Microseconds:120.0|#${dims}${tail}`,
          `Requests${String(status)[0]}XX.Count:1.0|#Level:Host${tail}`,
        ]);
        await w.writeLines("access_log", [
          `/127.0.0.1:5000 "POST /predictions/${model} HTTP/1.1" ${status} 25`,
        ]);
      }
      await w.writeLines("model_metrics", [
        `HandlerTime.ms:31.5|#ModelName:resnet,Level:Model|#hostname:${TS_HOST},requestID:r-${requests},timestamp:1717105563`,
        `PredictionTime.ms:30.5|#ModelName:resnet,Level:Model|#hostname:${TS_HOST},requestID:r-${requests},timestamp:1717105563`,
      ]);
      await w.writeLines("ts_metrics", [
        `CPUUtilization.Percent:12.5|#Level:Host${tail}`,
        `MemoryUsed.Megabytes:5225.0|#Level:Host${tail}`,
        `MemoryAvailable.Megabytes:10342.0|#Level:Host${tail}`,
        `MemoryUtilization.Percent:35.1|#Level:Host${tail}`,
        `DiskUsage.Gigabytes:40.1|#Level:Host${tail}`,
        `DiskAvailable.Gigabytes:60.0|#Level:Host${tail}`,
        `DiskUtilization.Percent:40.1|#Level:Host${tail}`,
        `GPUUtilization.Percent:87.0|#Level:Host,DeviceId:0${tail}`,
        `GPUMemoryUsed.Megabytes:1325.0|#Level:Host,DeviceId:0${tail}`,
        `GPUMemoryUtilization.Percent:8.1|#Level:Host,DeviceId:0${tail}`,
        `WorkerLoadTime.Milliseconds:2704.0|#WorkerName:W-9000-mnist_1.0,Level:Host${tail}`,
        // A broken record: rejected, counted, shown in the rejected-lines panel.
        "Requests2XX.Count:one|#Level:Host|#hostname:ts-host,timestamp:1717105563",
      ]);
    }

    before(async function () {
      const binary = requireTool(this, "prometheus");
      dir = mkdtempSync(join(tmpdir(), "grafana-ts-"));
      writer = new TorchServeLogWriter({ logDir: join(dir, "logs"), hostname: TS_HOST });
      await writer.open();
      const started = await startTestService({ torchserveLogDir: join(dir, "logs") });
      service = started.service;
      prometheus = await startShippedPrometheus(binary, dir, started.url);
      // As for the frontend: traffic before the first scrapes and again after them.
      await logTraffic();
      await waitForScrapes(prometheus, JOB, 2);
      await logTraffic();
      await service.sampleSystem();
      const seen = await successfulScrapes(prometheus.api, JOB);
      await waitForScrapes(prometheus, JOB, seen + 3);
    });

    after(async () => {
      await prometheus?.stop();
      await service?.stop();
      await writer?.close();
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it("answers every panel query but the frontend's queue and worker panels with data, Hostname set to TorchServe's host", async () => {
      const all = panelQueries();
      const frontendOnly = (q: PanelQuery): boolean =>
        selectors(q.expr).some((sel) => sel.names.some((n) => FRONTEND_ONLY.includes(n)));
      const sidecarOwn = (q: PanelQuery): boolean =>
        selectors(q.expr).some((sel) => sel.names.some((n) => SIDECAR_OWN.test(n)));
      const queries = all.filter((q) => !frontendOnly(q));
      // The Hostname variable set as a user picks it in Grafana: TorchServe's host alone, not the
      // sidecar's nor a wildcard (issue 19, deliver 4), for every family TorchServe's lines feed.
      const fed = queries.filter((q) => !sidecarOwn(q));
      expect(await panelProblems(prometheus!.api, fed, TS_HOST)).to.deep.equal([]);
      // The sidecar's own process and intake carry the sidecar's host, where they run.
      const own = queries.filter(sidecarOwn);
      expect(await panelProblems(prometheus!.api, own, "test-host")).to.deep.equal([]);
      expect(new Set(own.map((q) => /"(.*)"/.exec(q.where)?.[1]))).to.deep.equal(
        new Set([
          "Rejected [METRICS] lines",
          "[METRICS] lines applied",
          "serve-metrics CPU",
          "serve-metrics memory",
          "Event-loop delay",
          "File descriptors",
          "OTLP exports",
          "serve-metrics uptime",
        ]),
      );
      // Left out: the panels about the frontend's own queue and workers, nothing else.
      expect(all.filter(frontendOnly).map((q) => /"(.*)"/.exec(q.where)?.[1])).to.have.members([
        "Queued requests",
        "Queue depth per model",
        "Workers by state",
        "Worker restarts",
        "Queue saturation",
        "SLO: errors by reason",
        // In flight, queued, and the queue's capacity.
        "In flight and queued per model",
        "In flight and queued per model",
        "In flight and queued per model",
      ]);
    });
  });

  describe("provisioning, docker-compose.yml and otel-collector.yaml", () => {
    const compose = (): ComposeFile =>
      readYaml(join(GRAFANA, "docker-compose.yml")) as unknown as ComposeFile;
    const mounts = (service: string): Map<string, string> =>
      new Map(
        (compose().services[service]?.volumes ?? [])
          .filter((v) => v.startsWith("./"))
          .map((v) => {
            const [from = "", to = ""] = v.split(":");
            return [to, from];
          }),
      );

    it("mounts files that exist, with Prometheus and Grafana on the host network", () => {
      const { services } = compose();
      expect(services.prometheus?.image).to.match(/^prom\/prometheus:v\d/);
      expect(services.grafana?.image).to.match(/^grafana\/grafana:\d/);
      expect(services["otel-collector"]?.image).to.match(/^otel\/opentelemetry-collector-contrib:\d/);
      for (const name of ["prometheus", "grafana", "otel-collector"]) {
        expect(services[name]?.network_mode, name).to.equal("host");
        for (const from of mounts(name).values())
          expect(existsSync(resolve(GRAFANA, from)), `${name} mounts ${from}`).to.be.true;
      }
      expect(mounts("prometheus").get("/etc/prometheus/prometheus.yml")).to.equal("./prometheus.yml");
      expect(services.prometheus?.command).to.include("--config.file=/etc/prometheus/prometheus.yml");
      expect(mounts("otel-collector").get("/etc/otelcol-contrib/config.yaml")).to.equal(
        "./otel-collector.yaml",
      );
      expect(services["otel-collector"]?.profiles).to.deep.equal(["otel"]);
      const grafana = mounts("grafana");
      expect(grafana.get("/etc/grafana/provisioning/datasources")).to.equal("./provisioning/datasources");
      expect(grafana.get("/etc/grafana/provisioning/dashboards")).to.equal("./provisioning/dashboards");
      expect(services.grafana?.environment).to.include({
        GF_AUTH_ANONYMOUS_ENABLED: "true",
        GF_AUTH_ANONYMOUS_ORG_ROLE: "Viewer",
        GF_SECURITY_ADMIN_PASSWORD: "admin",
      });
    });

    it("provisions the Prometheus datasource and the dashboards folder compose mounts", () => {
      const datasources = readYaml(join(GRAFANA, "provisioning/datasources/prometheus.yaml")) as {
        apiVersion: number;
        datasources: { type: string; url: string; jsonData: { timeInterval: string } }[];
      };
      expect(datasources.apiVersion).to.equal(1);
      expect(datasources.datasources).to.have.length(1);
      const [prom] = datasources.datasources;
      expect(prom?.type).to.equal("prometheus");
      const listen = compose()
        .services.prometheus?.command?.find((a) => a.startsWith("--web.listen-address="))
        ?.split("=")[1];
      expect(prom?.url).to.equal(`http://${listen ?? "?"}`);
      // $__rate_interval is at least 4 × timeInterval: it must be Prometheus' scrape interval.
      const prometheusYml = readYaml(join(GRAFANA, "prometheus.yml")) as {
        global: { scrape_interval: string };
      };
      expect(prom?.jsonData.timeInterval).to.equal(prometheusYml.global.scrape_interval);

      const dashboards = readYaml(join(GRAFANA, "provisioning/dashboards/serve-metrics.yaml")) as {
        apiVersion: number;
        providers: { type: string; options: { path: string } }[];
      };
      expect(dashboards.apiVersion).to.equal(1);
      expect(dashboards.providers.map((p) => p.type)).to.deep.equal(["file"]);
      const path = dashboards.providers[0]?.options.path ?? "";
      expect(mounts("grafana").get(path), `compose mounts ./dashboards at ${path}`).to.equal("./dashboards");
    });

    it("wires OTLP (gRPC 4317, HTTP 4318) to a Prometheus exporter keeping TorchServe's names, and debug", () => {
      const otel = readYaml(join(GRAFANA, "otel-collector.yaml")) as {
        receivers: { otlp: { protocols: { grpc: { endpoint: string }; http: { endpoint: string } } } };
        processors?: Record<string, unknown>;
        exporters: { prometheus: { endpoint: string; add_metric_suffixes: unknown }; debug: unknown };
        service: {
          pipelines: { metrics: { receivers: string[]; processors?: string[]; exporters: string[] } };
        };
      };
      expect(otel.receivers.otlp.protocols.grpc.endpoint).to.match(/:4317$/);
      expect(otel.receivers.otlp.protocols.http.endpoint).to.match(/:4318$/);
      expect(otel.exporters.prometheus.add_metric_suffixes).to.equal(false);
      expect(otel.exporters.prometheus.endpoint).to.match(/:\d+$/);
      expect(otel.exporters).to.have.property("debug");
      const pipeline = otel.service.pipelines.metrics;
      expect(pipeline.receivers).to.deep.equal(["otlp"]);
      expect(pipeline.exporters).to.have.members(["prometheus", "debug"]);
      // Every component the pipeline names is defined.
      for (const p of pipeline.processors ?? []) expect(otel.processors ?? {}, p).to.have.property(p);
    });
  });
});
