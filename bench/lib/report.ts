/** How a scenario is run. */
export interface BenchOptions {
  /** Small sizes and few iterations (CI smoke), rather than the full run. */
  quick: boolean;
  /** Progress lines for the person watching; not part of the results. */
  log: (line: string) => void;
}

/** A table of results, cells already formatted. */
export interface Table {
  caption?: string;
  header: string[];
  rows: string[][];
}

/** One target from issue 5 and whether this run met it (informative: nothing fails on it). */
export interface Check {
  target: string;
  measured: string;
  pass: boolean;
}

/** What one scenario found. */
export interface ScenarioReport {
  title: string;
  /** How it was measured, what the numbers mean; one paragraph each. */
  notes: string[];
  tables: Table[];
  checks: Check[];
}

/** A scenario: `bench/<name>.ts` exports one. */
export type Scenario = (options: BenchOptions) => Promise<ScenarioReport>;

/** A GitHub-flavoured Markdown table; readable as plain text too. */
export function markdownTable(table: Table): string {
  const escape = (cell: string): string => cell.replace(/\|/g, "\\|");
  const widths = table.header.map((h, i) =>
    Math.max(h.length, ...table.rows.map((row) => escape(row[i] ?? "").length), 3),
  );
  const line = (cells: readonly string[]): string =>
    `| ${widths.map((w, i) => escape(cells[i] ?? "").padEnd(w)).join(" | ")} |`;
  return [
    line(table.header),
    `| ${widths.map((w) => "-".repeat(w)).join(" | ")} |`,
    ...table.rows.map(line),
  ].join("\n");
}

/** A number with `digits` significant digits, without exponent notation for everyday magnitudes. */
export function fmt(value: number, digits = 3): string {
  if (!Number.isFinite(value)) return "n/a";
  if (value === 0) return "0";
  const magnitude = Math.floor(Math.log10(Math.abs(value)));
  const decimals = Math.max(0, digits - 1 - magnitude);
  return value.toLocaleString("en-US", { maximumFractionDigits: decimals, minimumFractionDigits: 0 });
}

/** A ratio as `0.42×`. */
export function times(value: number): string {
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : "n/a";
}

/** A byte count in B, KiB or MiB. */
export function bytes(value: number): string {
  if (!Number.isFinite(value)) return "n/a";
  if (Math.abs(value) < 1024) return `${fmt(value)} B`;
  if (Math.abs(value) < 1024 * 1024) return `${fmt(value / 1024)} KiB`;
  return `${fmt(value / (1024 * 1024))} MiB`;
}

/** A series count as `1k`, `100k`. */
export function count(n: number): string {
  return n >= 1000 && n % 1000 === 0 ? `${n / 1000}k` : String(n);
}
