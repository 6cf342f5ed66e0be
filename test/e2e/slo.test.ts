import { expect } from "chai";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parse, stringify } from "yaml";
import type { ModelWorkerConfig } from "../../src/config/types.js";
import type { MetricsService } from "../../src/service.js";
import { REPO_ROOT } from "../support/cli.js";
import { until } from "../support/net.js";
import {
  activeAlerts,
  instantQuery,
  startPrometheus,
  waitForScrapes,
  type PrometheusAlert,
  type RunningPrometheus,
} from "../support/prometheus.js";
import { startTestService } from "../support/service.js";
import { requireTool } from "../support/tools.js";

const GRAFANA = join(REPO_ROOT, "grafana");
const FAULTY = "node test/fixtures/workers/faulty-worker.js --port {port}";
const PAGE = "ServeModelAvailabilityBudgetBurn";

function model(name: string, extra: Partial<ModelWorkerConfig> = {}): ModelWorkerConfig {
  return {
    model: name,
    version: "1.0",
    isDefault: true,
    workers: 2,
    url: undefined,
    command: FAULTY,
    ...extra,
  };
}

/** A POST whose outcome does not matter here (a reset connection included). */
function post(url: string): Promise<void> {
  return new Promise((done) => {
    const req = httpRequest(url, { method: "POST", agent: false }, (res) => {
      res.resume();
      res.on("end", done);
      res.on("error", () => done());
    });
    req.on("error", () => done());
    req.end("x");
  });
}

describe("end to end: Prometheus with the shipped SLO rules, a worker failing a share of requests", function () {
  this.timeout(120_000);
  let service: MetricsService | undefined;
  let prometheus: RunningPrometheus | undefined;
  let dir: string | undefined;
  let traffic: NodeJS.Timeout | undefined;
  const job = "serve-metrics";

  before(async function () {
    const binary = requireTool(this, "prometheus");
    const started = await startTestService(
      {
        models: [model("flaky"), model("steady"), model("idle", { workers: 1 })],
        inferenceAddress: { protocol: "http", host: "127.0.0.1", port: 0 },
      },
      { workerTimings: { backoff: { initialMs: 100, maxMs: 400 }, stopGraceMs: 1000 } },
    );
    service = started.service;
    await service.workersReady();
    const base = service.inferenceUrl ?? "";
    // 30% of flaky's requests fail, for two reasons: its handler raises (500), or its connection
    // is reset (502). steady's all succeed; idle gets nothing.
    const round = ["ok", "ok", "ok", "ok", "ok", "ok", "ok", "error", "error", "reset"];
    let turn = 0;
    traffic = setInterval(() => {
      void post(`${base}/predictions/flaky?do=${round[turn++ % round.length] ?? "ok"}`);
      void post(`${base}/predictions/steady?do=ok`);
    }, 25);

    dir = mkdtempSync(join(tmpdir(), "slo-prom-"));
    const config = parse(readFileSync(join(GRAFANA, "prometheus.yml"), "utf8")) as {
      global: Record<string, unknown>;
      rule_files: string[];
      scrape_configs: { job_name: string; static_configs: { targets: string[] }[] }[];
    };
    config.global.scrape_interval = "1s";
    config.global.evaluation_interval = "1s";
    expect(config.rule_files).to.include("slo-rules.yml");
    config.rule_files = config.rule_files.map((f) => resolve(GRAFANA, f));
    const scrape = config.scrape_configs.find((c) => c.job_name === job);
    scrape!.static_configs = [{ targets: [new URL(started.url).host] }];
    writeFileSync(join(dir, "prometheus.yml"), stringify(config));
    prometheus = await startPrometheus(binary, join(dir, "prometheus.yml"), dir);
    await waitForScrapes(prometheus, job, 2);
  });

  after(async () => {
    clearInterval(traffic);
    await prometheus?.stop();
    await service?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("puts the availability page alert in pending for the failing model only", async () => {
    const running = prometheus!;
    let seen: PrometheusAlert[] = [];
    await until(
      async () => {
        seen = await activeAlerts(running.api);
        if (seen.some((a) => a.labels.alertname === PAGE)) return true;
        await new Promise((r) => setTimeout(r, 250));
        return false;
      },
      `${PAGE} to be pending`,
      60_000,
    ).catch((err: unknown) => {
      throw new Error(`${String(err)}; alerts: ${JSON.stringify(seen)}\n${running.log()}`);
    });
    const page = seen.filter((a) => a.labels.alertname === PAGE);
    expect(page.map((a) => [a.labels.model_name, a.state, a.labels.severity])).to.deep.equal([
      ["flaky", "pending", "critical"],
    ]);
    // No SLO alert of any kind for the healthy or the idle model.
    expect(
      seen.filter((a) => a.labels.model_name === "steady" || a.labels.model_name === "idle"),
    ).to.deep.equal([]);
  });

  it("shows the idle model's series at 0 with no burn rate, and flaky's errors by reason", async () => {
    const api = prometheus!.api;
    const idle = await instantQuery(
      api,
      'sum by (status_class) (serve_inference_responses_total{model_name="idle"})',
    );
    expect(idle.map((s) => [s.metric.status_class, s.value[1]]).sort()).to.deep.equal([
      ["2XX", "0"],
      ["4XX", "0"],
      ["5XX", "0"],
    ]);
    // 0/0: NaN, which no alert condition passes.
    const burn = await instantQuery(api, 'model:serve_slo_availability:burn_rate5m{model_name="idle"}');
    expect(burn.map((s) => s.value[1])).to.deep.equal(["NaN"]);
    const reasons = await instantQuery(
      api,
      'sum by (reason) (serve_inference_errors_total{model_name="flaky"})',
    );
    // Under load its queue may also fill (queue_full): the two failures it was given are there either way.
    expect(reasons.map((s) => s.metric.reason)).to.include.members(["worker_error", "worker_unreachable"]);
    const steady = await instantQuery(api, 'model:serve_slo_availability:burn_rate5m{model_name="steady"}');
    expect(steady.map((s) => s.value[1])).to.deep.equal(["0"]);
  });
});
