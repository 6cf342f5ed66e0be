/**
 * The benchmark harness (issue 5): `node --import tsx bench/run.ts [--quick] [--only scrape,record]`.
 * Runs the scenarios one after another, prints their tables and writes them to a Markdown file.
 */
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { runContext, type RunContext } from "./lib/machine.js";
import { markdownTable, type Check, type Scenario, type ScenarioReport } from "./lib/report.js";

// Imported on demand, so `--only record` does not load what the other scenarios need.
const SCENARIOS: Readonly<Record<string, () => Promise<Scenario>>> = {
  scrape: async () => (await import("./scrape.js")).scrape,
  lines: async () => (await import("./lines.js")).lines,
  record: async () => (await import("./record.js")).record,
  frontend: async () => (await import("./frontend.js")).frontend,
  idle: async () => (await import("./idle.js")).idle,
  memory: async () => (await import("./memory.js")).memory,
  ingest: async () => (await import("./ingest.js")).ingest,
  protobuf: async () => (await import("./protobuf.js")).protobuf,
};

const USAGE = `Usage: node --import tsx bench/run.ts [--quick] [--only ${Object.keys(SCENARIOS).join(",")}] [--out FILE]
  --quick  small sizes, few iterations (CI smoke, under a minute)
  --only   run only these scenarios, comma-separated
  --out    where to write the Markdown results (default: bench/RESULTS.md for a full run of
           every scenario, bench/RESULTS.local.md otherwise, so a partial run keeps the full one)
`;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      only: { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const names =
    values.only === undefined ? Object.keys(SCENARIOS) : values.only.split(",").map((s) => s.trim());
  const unknown = names.filter((n) => !(n in SCENARIOS));
  if (unknown.length > 0) {
    process.stderr.write(`unknown scenario ${unknown.join(", ")}\n${USAGE}`);
    return 2;
  }
  const quick = values.quick;
  const out =
    values.out ?? (quick || values.only !== undefined ? "bench/RESULTS.local.md" : "bench/RESULTS.md");
  const context = runContext();
  const log = (line: string): void => {
    process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
  };

  const reports: ScenarioReport[] = [];
  let failed = false;
  for (const name of names) {
    const load = SCENARIOS[name];
    if (load === undefined) continue;
    const started = Date.now();
    try {
      const report = await (await load())({ quick, log });
      reports.push(report);
      process.stdout.write(`\n${renderReport(report)}\n`);
    } catch (err) {
      // A broken scenario is an error of the harness (exit 1); a missed target is only reported.
      failed = true;
      const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`scenario ${name} failed: ${message}\n`);
      reports.push({
        title: `${name}: failed`,
        notes: [message.split("\n")[0] ?? ""],
        tables: [],
        checks: [{ target: `${name} ran`, measured: "error", pass: false }],
      });
    }
    log(`${name} took ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }

  const summary = summaryTable(reports.flatMap((r) => r.checks));
  process.stdout.write(`\n## Targets\n\n${summary}\n`);
  writeFileSync(out, renderResults(context, quick, reports, summary));
  log(`wrote ${out}`);
  return failed ? 1 : 0;
}

function renderReport(report: ScenarioReport): string {
  const parts = [`## ${report.title}`, ...report.notes];
  for (const table of report.tables) {
    if (table.caption !== undefined) parts.push(table.caption);
    parts.push(markdownTable(table));
  }
  return parts.join("\n\n");
}

function summaryTable(checks: readonly Check[]): string {
  return markdownTable({
    header: ["target", "measured", "result"],
    rows: checks.map((c) => [c.target, c.measured, c.pass ? "PASS" : "FAIL"]),
  });
}

function renderResults(
  context: RunContext,
  quick: boolean,
  reports: readonly ScenarioReport[],
  summary: string,
): string {
  return [
    "# Benchmark results",
    "",
    `Written by \`bench/run.ts\`${quick ? " (quick run: small sizes, few iterations; not for comparison)" : ""}. ` +
      "Rerun with `npm run bench`. Ratios compare peers measured in the same run, taken in turn; " +
      "absolute times depend on the machine and on what else ran on it.",
    "",
    markdownTable({
      header: ["", ""],
      rows: [
        ["machine", `${context.cpu}, ${context.cores} cores, ${context.memory}`],
        ["node", context.node],
        ["date", context.date],
        ["command", `\`${context.command}\``],
        ["load average at start", context.load],
      ],
    }),
    "",
    "## Targets (informative: a FAIL fails nothing)",
    "",
    summary,
    "",
    ...reports.map((r) => `${renderReport(r)}\n`),
  ].join("\n");
}

process.exitCode = await main();
