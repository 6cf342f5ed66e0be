import { execFileSync } from "node:child_process";

/** One sample as `prometheus_client`'s OpenMetrics parser reads it. */
export interface ParsedSample {
  name: string;
  labels: Record<string, string>;
  value: number;
  exemplar: { labels: Record<string, string>; value: number; timestamp: number | null } | null;
}

/** One metric family as `prometheus_client`'s OpenMetrics parser reads it. */
export interface ParsedFamily {
  name: string;
  type: string;
  help: string;
  samples: ParsedSample[];
}

// Numbers go as repr() text (nan, inf, shortest round-trip digits), which JSON cannot carry. The
// input is read as bytes: Python's text mode would turn a raw "\r" in a label value into "\n".
const SCRIPT = `
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
def num(v):
    return repr(float(v))
def ts(t):
    if t is None: return None
    return repr(float(t.sec) + t.nsec / 1e9) if hasattr(t, "sec") else repr(float(t))
out = []
for f in text_string_to_metric_families(sys.stdin.buffer.read().decode("utf-8")):
    samples = []
    for s in f.samples:
        e = s.exemplar
        samples.append({"name": s.name, "labels": s.labels, "value": num(s.value),
            "exemplar": None if e is None else {"labels": e.labels, "value": num(e.value), "timestamp": ts(e.timestamp)}})
    out.append({"name": f.name, "type": f.type, "help": f.documentation, "samples": samples})
print(json.dumps(out))
`;

function toNumber(text: string): number {
  if (text === "nan") return NaN;
  if (text === "inf") return Infinity;
  if (text === "-inf") return -Infinity;
  return Number(text);
}

/**
 * Parses OpenMetrics text with Python's `prometheus_client` (an independent, strict parser: it
 * wants `# EOF`, checks suffixes by type, histograms, exemplar placement), run by `python`.
 * @throws Error with the parser's complaint when the text is not valid OpenMetrics.
 */
export function parseOpenMetrics(python: string, text: string): ParsedFamily[] {
  let json: string;
  try {
    json = execFileSync(python, ["-c", SCRIPT], { input: text, encoding: "utf8", stdio: "pipe" });
  } catch (err) {
    const { stderr } = err as { stderr?: string | Buffer };
    const complaint =
      String(stderr ?? "")
        .trim()
        .split("\n")
        .pop() ?? "";
    throw new Error(`prometheus_client refused the OpenMetrics text: ${complaint}`, { cause: err });
  }
  type Raw = Omit<ParsedFamily, "samples"> & {
    samples: (Omit<ParsedSample, "value" | "exemplar"> & {
      value: string;
      exemplar: { labels: Record<string, string>; value: string; timestamp: string | null } | null;
    })[];
  };
  return (JSON.parse(json) as Raw[]).map((f) => ({
    ...f,
    samples: f.samples.map((s) => ({
      ...s,
      value: toNumber(s.value),
      exemplar:
        s.exemplar === null
          ? null
          : {
              labels: s.exemplar.labels,
              value: toNumber(s.exemplar.value),
              timestamp: s.exemplar.timestamp === null ? null : Number(s.exemplar.timestamp),
            },
    })),
  }));
}

/** `name{a="1",b="2"} value`, labels sorted and values JSON-quoted: a sample as Prometheus stores it. */
export function seriesLine(name: string, labels: Record<string, string>, value: number): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${name}{${pairs.join(",")}} ${Object.is(value, -0) ? "-0" : String(value)}`;
}

/** The samples of a parsed OpenMetrics exposition as sorted {@link seriesLine}s. */
export function openMetricsSeries(families: readonly ParsedFamily[]): string[] {
  return families.flatMap((f) => f.samples.map((s) => seriesLine(s.name, s.labels, s.value))).sort();
}

/**
 * The samples of Prometheus text 0.0.4 (as TorchServe writes it: trailing commas, Java numbers)
 * as sorted {@link seriesLine}s, read by a parser of its own: Python's text parser adds `_total`
 * to counters, which Prometheus does not.
 */
export function textSeries(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    // dotAll: a label value may hold a raw "\r" or U+2028, which `.` does not match otherwise.
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/s.exec(line);
    if (m === null) throw new Error(`unparsed line ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? "").matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/gs)) {
      labels[l[1] ?? ""] = (l[2] ?? "").replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c));
    }
    const v = m[3] ?? "";
    out.push(seriesLine(m[1] ?? "", labels, v === "+Inf" ? Infinity : v === "-Inf" ? -Infinity : Number(v)));
  }
  return out.sort();
}
