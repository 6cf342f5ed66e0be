import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { ConfigError } from "../../src/config/errors.js";
import { parseObjectives } from "../../src/slo/objectives.js";
import { leRegex, sloRules, sloRulesYaml, type RuleFile } from "../../src/slo/rules.js";
import { REPO_ROOT, runCli } from "../support/cli.js";
import { requireTool } from "../support/tools.js";

const GRAFANA = join(REPO_ROOT, "grafana");
const OBJECTIVES = "grafana/slo-objectives.yml";
const RULES = join(GRAFANA, "slo-rules.yml");
const RULE_TESTS = join(GRAFANA, "slo-rules.test.yml");

function objectives(text: string) {
  return parseObjectives(text, "objectives.yml");
}

function configError(text: string): ConfigError {
  try {
    objectives(text);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error("no ConfigError");
}

/** The anchors GitHub gives the README's headings. */
function readmeAnchors(): Set<string> {
  const readme = readFileSync(join(GRAFANA, "README.md"), "utf8");
  return new Set(
    [...readme.matchAll(/^#+\s+(.+)$/gm)].map((m) =>
      (m[1] ?? "")
        .trim()
        .toLowerCase()
        .replaceAll(/[^\w\- ]/g, "")
        .replaceAll(" ", "-"),
    ),
  );
}

describe("SLO rules (serve-metrics slo-rules)", function () {
  this.timeout(60_000);

  describe("the objectives file", () => {
    it("reads percentages as shares, fills listed models from the default, and null drops an objective", () => {
      const o = objectives(`
default: { availability: 99.9, latency: { threshold: 1, target: 99 } }
models:
  resnet18: { availability: 99.5 }
  batch: { latency: null }
`);
      expect(o.default).to.deep.equal({
        availability: 0.999,
        latency: { thresholdSeconds: 1, target: 0.99 },
      });
      expect(o.models.get("resnet18")).to.deep.equal({
        availability: 0.995,
        latency: { thresholdSeconds: 1, target: 0.99 },
      });
      expect(o.models.get("batch")).to.deep.equal({ availability: 0.999, latency: undefined });
      expect(o.period).to.equal("30d");
    });

    for (const [what, text, key, problem] of [
      [
        "a percentage of 100",
        "default: { availability: 100 }",
        "default.availability",
        /above 0 and below 100/,
      ],
      ["a percentage as text", 'default: { availability: "99.9%" }', "default.availability", /percentage/],
      [
        "a threshold with no bucket",
        "default: { latency: { threshold: 0.3, target: 99 } }",
        "default.latency.threshold",
        /no bucket bound .*request_duration_buckets/,
      ],
      ["a misspelled key", "default: { availabilty: 99 }", "default.availabilty", /unknown key/],
      [
        "a model name PromQL cannot hold",
        'models: { "a`b": { availability: 99 } }',
        "models.a`b",
        /model name/,
      ],
      ["a period in minutes", "period: 90m", "period", /hours, days or weeks/],
    ] as const) {
      it(`refuses ${what}, naming the file, the key and the value`, () => {
        const err = configError(text);
        expect(err.file).to.equal("objectives.yml");
        expect(err.key).to.equal(key);
        expect(err.problem).to.match(problem);
        expect(err.exitCode).to.equal(2);
      });
    }

    it("takes a threshold that is one of the file's own request_duration_buckets", () => {
      const o = objectives(
        "request_duration_buckets: [0.1, 0.3, 1]\ndefault: { latency: { threshold: 0.3, target: 95 } }",
      );
      expect(o.default.latency).to.deep.equal({ thresholdSeconds: 0.3, target: 0.95 });
    });
  });

  describe("the generator", () => {
    it("matches a bucket bound however it was written: TorchServe's Java form, OpenTelemetry's, OpenMetrics'", () => {
      expect(leRegex(1)).to.equal("1\\\\.0|1");
      expect(leRegex(0.25)).to.equal("0\\\\.25");
      expect(leRegex(0.0005)).to.equal("5\\\\.0E-4|0\\\\.0005");
    });

    it("gives listed models their own budget and threshold, and the default to every other model", () => {
      const rules = sloRules(
        objectives(`
default: { availability: 99.9, latency: { threshold: 1, target: 99 } }
models:
  resnet18: { availability: 99.5, latency: { threshold: 0.25, target: 95 } }
  batch: { latency: null }
`),
      );
      const all = rules.groups.flatMap((g) => g.rules);
      const budgets = all.filter((r) => r.record?.endsWith(":error_budget"));
      expect(budgets.map((r) => [r.record, r.expr, r.labels])).to.deep.equal([
        ["model:serve_slo_availability:error_budget", "vector(0.005)", { model_name: "resnet18" }],
        [
          "model:serve_slo_availability:error_budget",
          "0.001 * group by (model_name) (serve_inference_responses_total{model_name!~`resnet18`})",
          undefined,
        ],
        ["model:serve_slo_latency:error_budget", "vector(0.05)", { model_name: "resnet18" }],
        [
          "model:serve_slo_latency:error_budget",
          "0.01 * group by (model_name) (serve_request_duration_seconds_count{model_name!~`resnet18|batch`}" +
            " or histogram_count(serve_request_duration_seconds{model_name!~`resnet18|batch`}))",
          undefined,
        ],
      ]);
      const latency1h = all.find((r) => r.record === "model:serve_slo_latency:burn_rate1h")?.expr ?? "";
      expect(latency1h).to.include('{model_name="resnet18",le=~"0\\\\.25"}');
      expect(latency1h).to.include('{model_name!~`resnet18|batch`,le=~"1\\\\.0|1"}');
      // Where Prometheus stores only the native histogram (no _bucket, _count): histogram_fraction.
      expect(latency1h).to.include(
        'histogram_fraction(0, 0.25, sum by (model_name) (rate(serve_request_duration_seconds{model_name="resnet18"}[1h])))',
      );
      expect(latency1h).to.include(
        "histogram_fraction(0, 1, sum by (model_name) (rate(serve_request_duration_seconds{model_name!~`resnet18|batch`}[1h])))",
      );
      expect(all.filter((r) => r.alert !== undefined).map((r) => r.alert)).to.deep.equal([
        "ServeModelAvailabilityBudgetBurn",
        "ServeModelAvailabilityBudgetBurnSlow",
        "ServeModelLatencyBudgetBurn",
        "ServeModelLatencyBudgetBurnSlow",
      ]);
    });

    it("writes no rule for an indicator nobody has an objective for", () => {
      const rules = sloRules(objectives("default: { availability: 99 }"));
      const names = rules.groups.flatMap((g) => g.rules).map((r) => r.record ?? r.alert ?? "");
      expect(names.filter((n) => n.includes("latency") || n.includes("Latency"))).to.deep.equal([]);
      expect(names).to.include("ServeModelAvailabilityBudgetBurn");
    });

    it("gives every alert a severity, a summary naming the model and a runbook section", () => {
      const anchors = readmeAnchors();
      const alerts = (parse(readFileSync(RULES, "utf8")) as RuleFile).groups.flatMap((g) =>
        g.rules.filter((r) => r.alert !== undefined),
      );
      expect(alerts).to.have.length(4);
      for (const a of alerts) {
        const name = a.alert ?? "";
        expect(a.labels?.severity, name).to.be.oneOf(["critical", "warning"]);
        expect(a.annotations?.summary, name).to.include("{{ $labels.model_name }}");
        expect(a.annotations?.runbook, name).to.equal(`grafana/README.md#${name.toLowerCase()}`);
        expect(anchors.has(name.toLowerCase()), `grafana/README.md has a section ${name}`).to.equal(true);
      }
    });
  });

  describe("the command", () => {
    it("prints exactly the shipped grafana/slo-rules.yml for the shipped grafana/slo-objectives.yml", async () => {
      const { code, stdout, stderr } = await runCli(["slo-rules", OBJECTIVES]);
      expect(code, stderr).to.equal(0);
      expect(stdout).to.equal(readFileSync(RULES, "utf8"));
      const text = readFileSync(join(REPO_ROOT, OBJECTIVES), "utf8");
      expect(stdout).to.equal(sloRulesYaml(parseObjectives(text, OBJECTIVES), OBJECTIVES));
    });

    it("exits 2 naming the file, key and value for objectives it cannot use, and for a missing file", async () => {
      const dir = mkdtempSync(join(tmpdir(), "slo-"));
      try {
        const bad = join(dir, "bad.yml");
        writeFileSync(bad, "default: { latency: { threshold: 0.3, target: 99 } }\n");
        const refused = await runCli(["slo-rules", bad]);
        expect(refused.code).to.equal(2);
        expect(refused.stdout).to.equal("");
        expect(refused.stderr)
          .to.include(bad)
          .and.include('default.latency.threshold: "0.3" is no bucket bound');
        const missing = await runCli(["slo-rules", join(dir, "nope.yml")]);
        expect([missing.code, missing.stderr]).to.satisfy(
          ([c, e]: [number, string]) => c === 2 && e.includes("ENOENT"),
        );
        const none = await runCli(["slo-rules"]);
        expect(none.code).to.equal(2);
        expect(none.stderr).to.include("Usage: serve-metrics slo-rules");
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("with promtool", () => {
    let binary: string;
    let dir: string | undefined;
    const promtool = (args: string[]): { status: number | null; output: string } => {
      const run = spawnSync(binary, args, { encoding: "utf8" });
      return { status: run.status, output: `${run.stdout}${run.stderr}` };
    };
    /** slo-rules.yml changed by `edit`, with the shipped tests beside it, under promtool test rules. */
    const testMutated = (edit: (file: RuleFile) => void): { status: number | null; output: string } => {
      const file = parse(readFileSync(RULES, "utf8")) as RuleFile;
      edit(file);
      const at = dir ?? "";
      writeFileSync(join(at, "slo-rules.yml"), stringify(file));
      copyFileSync(RULE_TESTS, join(at, "slo-rules.test.yml"));
      return promtool(["test", "rules", join(at, "slo-rules.test.yml")]);
    };

    before(function () {
      binary = requireTool(this, "promtool");
      dir = mkdtempSync(join(tmpdir(), "slo-rules-"));
    });
    after(() => {
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    });

    it("accepts slo-rules.yml (promtool check rules)", () => {
      const run = promtool(["check", "rules", RULES]);
      expect(run.status, run.output).to.equal(0);
    });

    it("passes slo-rules.test.yml: each alert fires for a fast and a slow burn, quiet for a spike and no traffic", () => {
      const run = promtool(["test", "rules", RULE_TESTS]);
      expect(run.status, run.output).to.equal(0);
      expect(run.output).to.include("SUCCESS");
      const tests = (
        parse(readFileSync(RULE_TESTS, "utf8")) as {
          tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[] }[];
        }
      ).tests.flatMap((t) => t.alert_rule_test ?? []);
      for (const name of [
        "ServeModelAvailabilityBudgetBurn",
        "ServeModelAvailabilityBudgetBurnSlow",
        "ServeModelLatencyBudgetBurn",
        "ServeModelLatencyBudgetBurnSlow",
      ]) {
        const mine = tests.filter((c) => c.alertname === name);
        expect(
          mine.some((c) => c.exp_alerts.length > 0),
          `${name} fires in a test`,
        ).to.equal(true);
        expect(mine.filter((c) => c.exp_alerts.length === 0).length, `${name} stays quiet`).to.be.greaterThan(
          1,
        );
      }
    });

    it("fails those tests for alerts that never fire, naming each", () => {
      const run = testMutated((file) => {
        for (const g of file.groups)
          for (const r of g.rules) if (r.alert !== undefined) r.expr = "vector(1) == 0";
      });
      expect(run.status).not.to.equal(0);
      for (const name of ["ServeModelAvailabilityBudgetBurn", "ServeModelAvailabilityBudgetBurnSlow"])
        expect(run.output, name).to.include(`alertname: ${name},`);
    });

    it("fails those tests for burn factors so low that the spike and the slow burn page", () => {
      const run = testMutated((file) => {
        for (const g of file.groups)
          for (const r of g.rules)
            if (r.alert !== undefined) r.expr = r.expr.replaceAll(/> [\d.]+/g, "> 0.5");
      });
      expect(run.status).not.to.equal(0);
      expect(run.output).to.include("alertname: ServeModelAvailabilityBudgetBurn,");
      expect(run.output).to.include("alertname: ServeModelLatencyBudgetBurn,");
    });
  });
});
