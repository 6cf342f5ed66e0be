import { stringify } from "yaml";
import { formatJavaDouble } from "../exposition/java-double.js";
import type { ModelObjectives, Objectives } from "./objectives.js";

/** One Prometheus rule, as it is written in a rule file. */
export interface PrometheusRule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** A Prometheus rule file: groups of rules. */
export interface RuleFile {
  groups: { name: string; rules: PrometheusRule[] }[];
}

/** The two service-level indicators: share of answered requests not 5XX, share at most the threshold. */
export const SLIS = ["availability", "latency"] as const;
/** One of {@link SLIS}. */
export type Sli = (typeof SLIS)[number];

/**
 * The Google SRE workbook's multiwindow, multi-burn-rate alerts (chapter 5, for a 30-day budget):
 * page when 2% of the budget went in an hour or 5% in six hours, open a ticket when 10% went in
 * three days; each long window is paired with a short one (1/12 of it) so an alert ends soon after
 * the burn does.
 */
export const BURN_ALERTS = [
  { severity: "critical", kind: "page", long: "1h", short: "5m", factor: 14.4 },
  { severity: "critical", kind: "page", long: "6h", short: "30m", factor: 6 },
  { severity: "warning", kind: "ticket", long: "3d", short: "6h", factor: 1 },
] as const;

/** The windows burn rates are recorded over (every alert's long and short ones). */
export const BURN_WINDOWS = ["5m", "30m", "1h", "6h", "3d"] as const;

const RESPONSES = "serve_inference_responses_total";
const DURATION = "serve_request_duration_seconds";

/** The recorded rule names, for dashboards and tests. */
export const sloRuleNames = {
  budget: (sli: Sli) => `model:serve_slo_${sli}:error_budget`,
  burnRate: (sli: Sli, window: string) => `model:serve_slo_${sli}:burn_rate${window}`,
  remaining: (sli: Sli) => `model:serve_slo_${sli}:error_budget_remaining`,
  alert: (sli: Sli, kind: "page" | "ticket") =>
    `ServeModel${sli === "availability" ? "Availability" : "Latency"}BudgetBurn${kind === "page" ? "" : "Slow"}`,
};

/**
 * The recording rules and burn-rate alerts of an objectives file. Per model (summed over versions
 * and hosts): the error budget (1 − objective) as a constant series for each model the objective
 * applies to, the burn rate (share of bad requests ÷ budget) over each window and over the
 * budget's period, the budget left (1 − the period's burn rate), and two alerts per indicator.
 * A model with no requests has a burn rate of NaN (0/0), which no comparison passes: no alert.
 */
export function sloRules(objectives: Objectives): RuleFile {
  const recording: PrometheusRule[] = [];
  const alerts: PrometheusRule[] = [];
  for (const sli of SLIS) {
    const budgets = budgetRules(objectives, sli);
    if (budgets.length === 0) continue;
    recording.push(...budgets);
    for (const window of [...BURN_WINDOWS, objectives.period]) {
      recording.push({
        record: sloRuleNames.burnRate(sli, window),
        expr: `(\n${indent(badShare(objectives, sli, window))}\n) / on (model_name) ${sloRuleNames.budget(sli)}`,
      });
    }
    recording.push({
      record: sloRuleNames.remaining(sli),
      expr: `1 - ${sloRuleNames.burnRate(sli, objectives.period)}`,
    });
    alerts.push(...burnAlerts(sli));
  }
  return {
    groups: [
      { name: "serve-slo-recording", rules: recording },
      { name: "serve-slo-alerts", rules: alerts },
    ],
  };
}

/** {@link sloRules} as the YAML a rule file holds, with a header saying where it came from. */
export function sloRulesYaml(objectives: Objectives, source: string): string {
  const header =
    `# Service-level objective rules for serve-metrics, generated from ${source} by\n` +
    `# \`serve-metrics slo-rules ${source}\`: edit that file and generate again, not this one.\n` +
    "# Recording rules: each model's error budget, burn rates and budget left; alerts: the SRE\n" +
    '# workbook\'s multiwindow, multi-burn-rate alerts. What they mean: grafana/README.md, "SLO alerts".\n';
  return header + stringify(sloRules(objectives), { lineWidth: 0 });
}

/** The error-budget series of one indicator: one per listed model that sets it, one rule for the rest. */
function budgetRules(objectives: Objectives, sli: Sli): PrometheusRule[] {
  const rules: PrometheusRule[] = [];
  for (const [model, own] of objectives.models) {
    if (!objectives.overrides.get(model)?.[sli]) continue;
    const budget = budgetOf(own, sli);
    if (budget !== undefined)
      rules.push({
        record: sloRuleNames.budget(sli),
        expr: `vector(${budget})`,
        labels: { model_name: model },
      });
  }
  const budget = budgetOf(objectives.default, sli);
  if (budget !== undefined) {
    // Every model that has series (they start at 0 when the model is known), but those listed:
    // the duration histogram's _count, or its native histogram where Prometheus stores only that.
    const selector = defaultSelector(objectives, sli);
    const series =
      sli === "availability"
        ? `${RESPONSES}${selector}`
        : `${DURATION}_count${selector} or histogram_count(${DURATION}${selector})`;
    rules.push({
      record: sloRuleNames.budget(sli),
      expr: `${budget} * group by (model_name) (${series})`,
    });
  }
  return rules;
}

/** 1 − objective, written so the rule reads like the file (0.001, not 0.0010000000000000009). */
function budgetOf(own: ModelObjectives, sli: Sli): number | undefined {
  const objective = sli === "availability" ? own.availability : own.latency?.target;
  return objective === undefined ? undefined : Number((1 - objective).toPrecision(12));
}

/** `{model_name!~...}` leaving out the models that set this indicator themselves; "" when none do. */
function defaultSelector(objectives: Objectives, sli: Sli): string {
  const own = [...objectives.overrides].filter(([, o]) => o[sli]).map(([m]) => escapeRegex(m));
  return own.length === 0 ? "" : `{model_name!~\`${own.join("|")}\`}`;
}

/** The share of bad requests per model over `window`: 5XX of all responses, or those over the threshold. */
function badShare(objectives: Objectives, sli: Sli, window: string): string {
  if (sli === "availability") {
    return (
      `sum by (model_name) (rate(${RESPONSES}{status_class="5XX"}[${window}]))\n` +
      `  / sum by (model_name) (rate(${RESPONSES}[${window}]))`
    );
  }
  // One term per threshold: each listed model with its own, then every other model with the default's.
  const terms: string[] = [];
  for (const [model, own] of objectives.models) {
    if (!objectives.overrides.get(model)?.latency || own.latency === undefined) continue;
    terms.push(slowShare(`model_name="${model}"`, own.latency.thresholdSeconds, window));
  }
  const fallback = objectives.default.latency;
  if (fallback !== undefined) {
    const selector = defaultSelector(objectives, "latency").slice(1, -1);
    terms.push(slowShare(selector, fallback.thresholdSeconds, window));
  }
  return terms.join("\n or\n");
}

/**
 * 1 − the share of requests at most the threshold, for the models `selector` picks: from the
 * classic bucket whose bound the threshold is (exact), or, where Prometheus stores only the native
 * histogram (2.x with native histograms on stores no _bucket or _count), from `histogram_fraction`
 * over it (exact at a native bucket bound such as 0.25, 0.5, 1, 2; else interpolated in one bucket).
 */
function slowShare(selector: string, threshold: number, window: string): string {
  const models = selector === "" ? "" : `${selector},`;
  const picked = selector === "" ? "" : `{${selector}}`;
  return (
    `1 - (\n` +
    `  sum by (model_name) (rate(${DURATION}_bucket{${models}le=~"${leRegex(threshold)}"}[${window}]))\n` +
    `    / sum by (model_name) (rate(${DURATION}_count${picked}[${window}]))\n` +
    `  or histogram_fraction(0, ${threshold}, sum by (model_name) (rate(${DURATION}${picked}[${window}])))\n` +
    `)`
  );
}

/**
 * Every way an exposition writes this bucket bound (Prometheus 2 keeps the `le` text as scraped):
 * TorchServe's Java form (`1.0`, `5.0E-4`), the OpenTelemetry exporter's (`1`, `0.0005`) and
 * OpenMetrics' (`1.0`), as one anchored regex.
 */
export function leRegex(threshold: number): string {
  const forms = new Set([formatJavaDouble(threshold), String(threshold)]);
  if (Number.isInteger(threshold)) forms.add(`${threshold}.0`);
  return [...forms].map((f) => escapeRegex(f).replaceAll("\\", "\\\\")).join("|");
}

function burnAlerts(sli: Sli): PrometheusRule[] {
  const what =
    sli === "availability"
      ? "availability (answers without a 5XX)"
      : "latency (requests under its threshold)";
  const out: PrometheusRule[] = [];
  for (const kind of ["page", "ticket"] as const) {
    const tiers = BURN_ALERTS.filter((a) => a.kind === kind);
    const name = sloRuleNames.alert(sli, kind);
    const expr = tiers
      .map(
        (t) =>
          `(\n  ${sloRuleNames.burnRate(sli, t.long)} > ${t.factor}\n  and\n  ${sloRuleNames.burnRate(sli, t.short)} > ${t.factor}\n)`,
      )
      .join("\nor\n");
    const windows = tiers.map((t) => `${t.factor}× over ${t.long} and ${t.short}`).join(", or ");
    out.push({
      alert: name,
      expr,
      for: kind === "page" ? "2m" : "1h",
      labels: { severity: tiers[0]?.severity ?? "warning", slo: sli },
      annotations: {
        summary: `Model {{ $labels.model_name }} spends its ${sli} error budget {{ $value | humanize }} times as fast as its objective allows`,
        description:
          `The ${what} objective's error budget burns faster than ${windows} ` +
          (kind === "page"
            ? "(2% of a 30-day budget in an hour, or 5% in six hours): at this rate it is gone within days."
            : "(10% of a 30-day budget in three days): the objective will be missed if this goes on."),
        runbook: `grafana/README.md#${name.toLowerCase()}`,
      },
    });
  }
  return out;
}

function indent(text: string): string {
  return text
    .split("\n")
    .map((l) => `  ${l}`)
    .join("\n");
}

/** Escapes RE2's special characters. */
function escapeRegex(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
