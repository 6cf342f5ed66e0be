import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import { createServer } from "node:net";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

import { requestLines, log4jTime, type RequestLines } from "../test/support/torchserve-log-writer.js";
import { builtIsFresh } from "./lib/built.js";
import { startChild, type Child } from "./lib/child.js";
import { procSample } from "./lib/proc.js";
import { fmt, times, type Check, type Scenario, type Table } from "./lib/report.js";

type LogFile = keyof RequestLines;
const FILES: readonly LogFile[] = ["ts_metrics", "model_metrics", "access_log"];
const LINES_PER_REQUEST = 9;
const HOSTNAME = "ip-172-31-11-32";
/** The last request's HandlerTime and PredictionTime: no other request logs them, so seeing them means done. */
const LAST_HANDLER_MS = 98765.25;
const LAST_PREDICTION_MS = 98765.5;
const REQUESTS_PER_WRITE = 1000;

/**
 * What the service is run as: `torchserve` follows TORCHSERVE's own files with the
 * `torchserve_log_dir` key; `interim` (until that key exists in the build) follows files of the
 * same mix, line count and size in the `[METRICS]` form through `metric_log_files`.
 */
type ServiceMode = "torchserve" | "interim";

/** A consumer of the log files: serve-metrics or mtail, in its own process. */
interface Consumer {
  name: string;
  pid: number;
  /** The Prometheus text of its /metrics. */
  scrape(): Promise<string>;
  /** Whether the scrape shows all `requests` requests of every file applied. */
  done(text: string, requests: number): boolean;
  /** The exact figures it must show after `requests` requests; a list of mismatches. */
  verify(text: string, requests: number): string[];
  /** How many figures verify() checks. */
  figures: number;
  stop(): Promise<void>;
}

/**
 * The ingest of TorchServe's log files (issue 12): lines per second the service takes from a
 * followed, growing ts_metrics.log + model_metrics.log + access_log.log (the nine lines of one
 * inference request), and CPU per 100k lines, against Google's mtail running bench/ingest.mtail
 * on the same files; then the CPU of following a TorchServe at 1,000 requests per second.
 */
export const ingest: Scenario = async ({ quick, log }) => {
  const requests = quick ? 10_000 : 100_000;
  const rounds = quick ? 1 : 3;
  const pacedS = quick ? 3 : 20;
  const warmupS = quick ? 1 : 5;
  ensureBuilt(log);
  const mtail = mtailPath();
  const mode = await serviceMode();
  log(
    `ingest: serve-metrics in ${mode} mode; ${requests} requests (${requests * LINES_PER_REQUEST} lines) per run`,
  );

  const kinds = mtail === undefined ? (["serve-metrics"] as const) : (["serve-metrics", "mtail"] as const);
  const results = new Map<string, { linesPerS: number[]; cpuPer100k: number[]; loads: string[] }>();
  for (const kind of kinds) results.set(kind, { linesPerS: [], cpuPer100k: [], loads: [] });
  const mismatches: string[] = [];
  let figures = 0;

  for (let round = 0; round < rounds; round++) {
    // In turn, the first one alternating, so a change in the machine's load hits both alike.
    const order = round % 2 === 0 ? [...kinds] : [...kinds].reverse();
    for (const kind of order) {
      const run = await throughputRun(kind, mode, mtail, requests, log);
      const into = results.get(kind);
      into?.linesPerS.push(run.linesPerS);
      into?.cpuPer100k.push(run.cpuPer100k);
      into?.loads.push(run.load);
      mismatches.push(...run.mismatches.map((m) => `${kind}: ${m}`));
      figures += run.figures;
    }
  }

  const paced: { kind: string; cpu: number; load: string; mismatches: string[] }[] = [];
  for (const kind of kinds) {
    const run = await pacedRun(kind, mode, mtail, 1000, pacedS, warmupS, log);
    paced.push({ kind, ...run });
    mismatches.push(...run.mismatches.map((m) => `${kind} (paced): ${m}`));
    figures += run.figures;
  }

  const best = (values: number[], high: boolean): number =>
    values.length === 0 ? NaN : high ? Math.max(...values) : Math.min(...values);
  const table: Table = {
    header: [
      "consumer",
      "lines/s (best of runs)",
      "each run",
      "CPU s per 100k lines (best)",
      "load (1 min) per run",
    ],
    rows: [...results].map(([kind, r]) => [
      kind,
      fmt(best(r.linesPerS, true)),
      r.linesPerS.map((v) => fmt(v)).join(", "),
      fmt(best(r.cpuPer100k, false)),
      r.loads.join(", "),
    ]),
  };
  const pacedTable: Table = {
    caption:
      `A TorchServe at 1,000 requests per second (${LINES_PER_REQUEST * 1000} lines/s, 100 requests every 100 ms), ` +
      `${pacedS} s after ${warmupS} s of warm-up: the consumer's CPU time until it showed the last request, over ` +
      `the ${pacedS} s of writing (one scrape, at the end):`,
    header: ["consumer", "CPU % of one core", "load (1 min)"],
    rows: paced.map((p) => [p.kind, fmt(p.cpu, 2), p.load]),
  };
  const sm = results.get("serve-metrics");
  const mt = results.get("mtail");
  const checks: Check[] = [];
  if (sm !== undefined && mt !== undefined) {
    const speed = best(sm.linesPerS, true) / best(mt.linesPerS, true);
    const cpu = best(sm.cpuPer100k, false) / best(mt.cpuPer100k, false);
    checks.push(
      { target: "ingest lines/s ≥ 2× mtail's", measured: times(speed), pass: speed >= 2 },
      { target: "CPU per line ≤ mtail's", measured: times(cpu), pass: cpu <= 1 },
    );
  }
  const smPaced = paced.find((p) => p.kind === "serve-metrics");
  if (smPaced !== undefined) {
    checks.push({
      target: "following a TorchServe at 1,000 requests/s < 5% of one core",
      measured: `${fmt(smPaced.cpu, 2)}%`,
      pass: smPaced.cpu < 5,
    });
  }
  const exact = figures === 0 ? NaN : ((figures - mismatches.length) / figures) * 100;
  checks.push({
    target: "exact counts and values in both consumers (share of the figures checked)",
    measured: `${fmt(exact)}%`,
    pass: mismatches.length === 0,
  });
  return {
    title: "Ingest: TorchServe's log files, serve-metrics against mtail",
    notes: [
      `Each run starts the consumer on three empty files, then appends ${requests} inference requests to them ` +
        `(${LINES_PER_REQUEST} lines each: six in ts_metrics.log, HandlerTime and PredictionTime in model_metrics.log, ` +
        `one access line; ${REQUESTS_PER_WRITE} requests per write) as fast as the disk takes them, and polls the ` +
        "consumer's /metrics every 100 ms until the last request's values show. lines/s is all lines over the time " +
        "from the first write to that scrape; CPU from /proc/<pid>/stat over the same time (the scrapes included).",
      mode === "torchserve"
        ? "serve-metrics: the built CLI (`node dist/cli.js --ts-config <config>`) with `torchserve_log_dir=<dir>`, " +
          "`metrics_mode=prometheus`, `disable_system_metrics=true`."
        : "serve-metrics: the built CLI (`node dist/cli.js --ts-config <config>`); this build has no " +
          "`torchserve_log_dir` yet, so it follows the three files through `metric_log_files` with " +
          "`model_metrics_auto_detect=true`, the metric lines written in the `[METRICS]` form of ts_log.log " +
          "(same mix, names prefixed `Bench` where TorchServe's are frontend metrics): an interim figure.",
      "mtail: `mtail --progs bench/ingest.mtail --logs <the three files>` (Debian's package), the program a " +
        "TorchServe user would write: the same counters (summed increments) and gauges (last value), and " +
        "requests per model and status from the access log.",
      "Both are checked after each run: the request counters equal the requests written, the µs counters the sum " +
        "of the values written, the gauges the last values written" +
        (mismatches.length === 0
          ? "; all were exact."
          : `; not exact: ${mismatches.slice(0, 5).join("; ")}.`),
      "mtail is a multi-threaded Go program, serve-metrics one Node thread: on a machine busy with other work, " +
        "lines/s measures the share of the cores each gets as much as its speed; CPU per line does not.",
    ],
    tables: [table, pacedTable],
    checks,
  };
};

/** One run as fast as the disk takes the lines. */
async function throughputRun(
  kind: "serve-metrics" | "mtail",
  mode: ServiceMode,
  mtail: string | undefined,
  requests: number,
  log: (line: string) => void,
): Promise<{ linesPerS: number; cpuPer100k: number; load: string; mismatches: string[]; figures: number }> {
  const dir = mkdtempSync(join(tmpdir(), "serve-metrics-ingest-"));
  const form = kind === "serve-metrics" && mode === "interim" ? "interim" : "torchserve";
  const writer = await LogWriter.open(dir, form);
  const consumer = await startConsumer(kind, mode, mtail, dir);
  try {
    // Made before the clock starts: the bench's own string building is not the consumer's work.
    const chunks: Buffer[][] = [];
    for (let from = 0; from < requests; from += REQUESTS_PER_WRITE) {
      chunks.push(writer.render(from, Math.min(requests, from + REQUESTS_PER_WRITE), requests));
    }
    const load = loadavg()[0]?.toFixed(2) ?? "?";
    const before = procSample(consumer.pid);
    for (const chunk of chunks) await writer.write(chunk);
    const text = await waitDone(consumer, requests, 120_000);
    const after = procSample(consumer.pid);
    const lines = requests * LINES_PER_REQUEST;
    const seconds = (after.atMs - before.atMs) / 1000;
    const cpuPer100k = ((after.cpuS - before.cpuS) / lines) * 100_000;
    log(
      `ingest: ${consumer.name}: ${fmt(lines / seconds)} lines/s, ${fmt(cpuPer100k)} CPU s per 100k lines, load ${load}`,
    );
    const mismatches = consumer.verify(text, requests);
    return { linesPerS: lines / seconds, cpuPer100k, load, mismatches, figures: consumer.figures };
  } finally {
    await consumer.stop();
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/** `perSecond` requests a second, written every 100 ms, for `seconds`: the consumer's CPU. */
async function pacedRun(
  kind: "serve-metrics" | "mtail",
  mode: ServiceMode,
  mtail: string | undefined,
  perSecond: number,
  seconds: number,
  warmupS: number,
  log: (line: string) => void,
): Promise<{ cpu: number; load: string; mismatches: string[]; figures: number }> {
  const dir = mkdtempSync(join(tmpdir(), "serve-metrics-ingest-"));
  const form = kind === "serve-metrics" && mode === "interim" ? "interim" : "torchserve";
  const writer = await LogWriter.open(dir, form);
  const consumer = await startConsumer(kind, mode, mtail, dir);
  try {
    const requests = perSecond * (warmupS + seconds);
    const perTick = perSecond / 10;
    const load = loadavg()[0]?.toFixed(2) ?? "?";
    let before = procSample(consumer.pid);
    const started = performance.now();
    for (let tick = 0; tick * perTick < requests; tick++) {
      // A sidecar runs for days: the first seconds' compiling of the hot paths is not its steady cost.
      if (tick === warmupS * 10) before = procSample(consumer.pid);
      await writer.write(writer.render(tick * perTick, (tick + 1) * perTick, requests));
      await sleep(Math.max(0, started + (tick + 1) * 100 - performance.now()));
    }
    const wrote = performance.now();
    // One look at /metrics after the consumer's poll interval, not ten a second: at this rate the
    // scrapes would cost more than the lines.
    await sleep(1000);
    const text = await waitDone(consumer, requests, 60_000);
    const after = procSample(consumer.pid);
    // Over the writing time: the second after it only finishes the last poll's lines.
    const cpu = ((after.cpuS - before.cpuS) / ((wrote - before.atMs) / 1000)) * 100;
    log(`ingest: ${consumer.name} at ${perSecond} requests/s: ${fmt(cpu, 2)}% of one core, load ${load}`);
    return { cpu, load, mismatches: consumer.verify(text, requests), figures: consumer.figures };
  } finally {
    await consumer.stop();
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function waitDone(consumer: Consumer, requests: number, timeoutMs: number): Promise<string> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const text = await consumer.scrape();
    if (consumer.done(text, requests)) return text;
    if (performance.now() > deadline) {
      const shown = consumer.verify(text, requests).join("; ");
      throw new Error(`${consumer.name} did not show ${requests} requests within ${timeoutMs} ms: ${shown}`);
    }
    await sleep(100);
  }
}

/** Appends the lines of inference requests to the three files, as TorchServe's log4j2 does. */
class LogWriter {
  private constructor(
    private readonly handles: ReadonlyMap<LogFile, FileHandle>,
    private readonly form: "torchserve" | "interim",
  ) {}

  /** Creates the three empty files in dir, as TorchServe does at start. */
  static async open(dir: string, form: "torchserve" | "interim"): Promise<LogWriter> {
    const handles = new Map<LogFile, FileHandle>();
    for (const file of FILES) handles.set(file, await open(join(dir, `${file}.log`), "a"));
    return new LogWriter(handles, form);
  }

  /** The bytes of requests [from, to) per file (in FILES order); the one numbered `total - 1` is marked last. */
  render(from: number, to: number, total: number): Buffer[] {
    const texts: string[][] = FILES.map(() => []);
    const time = log4jTime(new Date());
    for (let i = from; i < to; i++) {
      const lines = benchRequest(i, i === total - 1);
      FILES.forEach((file, index) => {
        for (const message of lines[file]) texts[index]?.push(`${time}${this.layout(file, message)}\n`);
      });
    }
    return texts.map((t) => Buffer.from(t.join("")));
  }

  async write(chunk: readonly Buffer[]): Promise<void> {
    for (const [index, file] of FILES.entries()) {
      const bytes = chunk[index];
      if (bytes !== undefined && bytes.length > 0) await this.handles.get(file)?.write(bytes);
    }
  }

  async close(): Promise<void> {
    for (const handle of this.handles.values()) await handle.close();
  }

  /** A line after its time: the metric files' layout, or in the interim, ts_log.log's worker line. */
  private layout(file: LogFile, message: string): string {
    if (this.form === "torchserve" || file === "access_log") return ` - ${message}`;
    return ` [INFO ] W-9000-mnist_1.0-stdout MODEL_METRICS - [METRICS]${interimMessage(file, message)}`;
  }
}

/** Request i's lines; the last request's backend gauges carry values no other request logs. */
function benchRequest(i: number, last: boolean): RequestLines {
  const lines = requestLines(i, "mnist", HOSTNAME);
  if (last) {
    lines.model_metrics = lines.model_metrics.map((l) =>
      l
        .replace(/^HandlerTime\.ms:[^|]+/, `HandlerTime.ms:${LAST_HANDLER_MS}`)
        .replace(/^PredictionTime\.ms:[^|]+/, `PredictionTime.ms:${LAST_PREDICTION_MS}`),
    );
  }
  return lines;
}

/** The interim `[METRICS]` form of a metric-file message: names that only the frontend may write get a prefix. */
function interimMessage(file: LogFile, message: string): string {
  if (file === "access_log") return message;
  // <Name>.<Unit>:<v>|#<dims>|#hostname:<h>,[requestID:<id>,]timestamp:<t>
  const at = message.indexOf("|#hostname:");
  const head = message.slice(0, at);
  const tail = message.slice(at + "|#hostname:".length).split(",");
  const host = tail[0] ?? "";
  const timestamp = (tail.find((p) => p.startsWith("timestamp:")) ?? "timestamp:0").slice(
    "timestamp:".length,
  );
  const id = (tail.find((p) => p.startsWith("requestID:")) ?? "requestID:").slice("requestID:".length);
  const type = head.includes(".Count:") || head.includes(".Microseconds:") ? "COUNTER" : "GAUGE";
  const name = file === "ts_metrics" ? `Bench${head}` : head;
  return `${name}|#type:${type}|#hostname:${host},${timestamp}${id === "" ? "" : `,${id}`}`;
}

/** The expected totals after `requests` requests, from the same generator as the lines. */
function expected(requests: number): { latencyUs: number; queueUs: number; last: RequestLines } {
  let latencyUs = 0;
  let queueUs = 0;
  for (let i = 0; i < requests; i++) {
    const ts = requestLines(i).ts_metrics;
    latencyUs += valueOf(ts[4] ?? "");
    queueUs += valueOf(ts[1] ?? "");
  }
  return { latencyUs, queueUs, last: benchRequest(requests - 1, true) };
}

function valueOf(message: string): number {
  return Number(/^[^:]+:([^|]+)/.exec(message)?.[1] ?? NaN);
}

/** Sums of every series of a family in Prometheus text (labels ignored). */
function family(text: string, name: string): number | undefined {
  let sum: number | undefined;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith("{") || rest.startsWith(" "))) continue;
    const value = Number(rest.slice(rest.lastIndexOf(" ") + 1));
    if (Number.isFinite(value)) sum = (sum ?? 0) + value;
  }
  return sum;
}

function close(a: number | undefined, b: number): boolean {
  return a !== undefined && Math.abs(a - b) <= Math.abs(b) * 1e-9;
}

async function startConsumer(
  kind: "serve-metrics" | "mtail",
  mode: ServiceMode,
  mtail: string | undefined,
  dir: string,
): Promise<Consumer> {
  if (kind === "mtail") {
    if (mtail === undefined) throw new Error("mtail is not installed");
    return startMtail(mtail, dir);
  }
  return startServeMetrics(mode, dir);
}

async function startServeMetrics(mode: ServiceMode, dir: string): Promise<Consumer> {
  const config = join(dir, "config.properties");
  const files = FILES.map((f) => join(dir, `${f}.log`));
  writeFileSync(
    config,
    [
      "metrics_address=http://127.0.0.1:0",
      "metrics_mode=prometheus",
      "disable_system_metrics=true",
      "number_of_gpu=0",
      ...(mode === "torchserve"
        ? [`torchserve_log_dir=${dir}`]
        : [`metric_log_files=${files.join(",")}`, "model_metrics_auto_detect=true"]),
    ].join("\n"),
  );
  // Ready once it follows all three files, not when /metrics listens: the servers open before the
  // followers, and a follower's first look starts at the file's end, skipping what the bench wrote.
  let listening: string | undefined;
  const following = new Set<string>();
  const child = await startChild<string>([], "dist/cli.js", ["--ts-config", config], {
    readyWhen: (line) => {
      listening ??= /metrics API listening on (\S+)/.exec(line)?.[1];
      const path = / following (\S+)$/.exec(line)?.[1];
      if (path !== undefined) following.add(path);
      return following.size >= FILES.length ? listening : undefined;
    },
  });
  // The CLI logs the full /metrics URL.
  const url = child.ready;
  const p = mode === "torchserve" ? "" : "Bench";
  return {
    name: "serve-metrics",
    pid: child.pid,
    figures: 6,
    scrape: () => get(url),
    done: (text, requests) =>
      family(text, `${p}Requests2XX`) === requests && family(text, "PredictionTime") === LAST_PREDICTION_MS,
    verify: (text, requests) => {
      const want = expected(requests);
      const problems: string[] = [];
      const check = (name: string, got: number | undefined, value: number): void => {
        if (!close(got, value)) problems.push(`${name} ${String(got)}, expected ${value}`);
      };
      check(`${p}Requests2XX`, family(text, `${p}Requests2XX`), requests);
      check(`${p}ts_inference_requests_total`, family(text, `${p}ts_inference_requests_total`), requests);
      check(
        `${p}ts_inference_latency_microseconds`,
        family(text, `${p}ts_inference_latency_microseconds`),
        want.latencyUs,
      );
      check(
        `${p}ts_queue_latency_microseconds`,
        family(text, `${p}ts_queue_latency_microseconds`),
        want.queueUs,
      );
      check("HandlerTime", family(text, "HandlerTime"), LAST_HANDLER_MS);
      check(
        `${p}WorkerThreadTime`,
        family(text, `${p}WorkerThreadTime`),
        valueOf(want.last.ts_metrics[3] ?? ""),
      );
      return problems;
    },
    stop: () => child.stop(),
  };
}

async function startMtail(mtail: string, dir: string): Promise<Consumer> {
  const port = await freePort();
  const logs = FILES.map((f) => join(dir, `${f}.log`)).join(",");
  const child = spawn(
    mtail,
    [
      "--progs",
      "bench/ingest.mtail",
      "--logs",
      logs,
      "--address",
      "127.0.0.1",
      "--port",
      String(port),
      "--logtostderr",
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let stderr = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-8192)));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const url = `http://127.0.0.1:${port}/metrics`;
  const deadline = performance.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mtail exited: ${stderr}`);
    try {
      await get(url);
      break;
    } catch {
      if (performance.now() > deadline) throw new Error(`mtail did not answer on ${url}: ${stderr}`);
      await sleep(100);
    }
  }
  // mtail opens the files after its server is up; the first lines must find them open.
  await sleep(1000);
  return {
    name: "mtail",
    pid: child.pid ?? 0,
    figures: 7,
    scrape: () => get(url),
    done: (text, requests) =>
      family(text, "Requests2XX") === requests &&
      family(text, "PredictionTime") === LAST_PREDICTION_MS &&
      family(text, "access_requests_total") === requests,
    verify: (text, requests) => {
      const want = expected(requests);
      const problems: string[] = [];
      const check = (name: string, value: number): void => {
        const got = family(text, name);
        if (!close(got, value)) problems.push(`${name} ${String(got)}, expected ${value}`);
      };
      check("Requests2XX", requests);
      check("ts_inference_requests_total", requests);
      check("ts_inference_latency_microseconds", want.latencyUs);
      check("ts_queue_latency_microseconds", want.queueUs);
      check("HandlerTime", LAST_HANDLER_MS);
      check("WorkerThreadTime", valueOf(want.last.ts_metrics[3] ?? ""));
      check("access_requests_total", requests);
      return problems;
    },
    stop: async () => {
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

async function get(url: string): Promise<string> {
  const res = await fetch(url);
  const text = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url} answered ${res.status}`);
  return text;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Builds dist/ when a source file is newer: the bench runs the CLI as users run it. */
function ensureBuilt(log: (line: string) => void): void {
  if (builtIsFresh("dist/cli.js")) return;
  log("ingest: building dist/ (npm run build)");
  execFileSync("npx", ["tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}

function mtailPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v mtail"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Whether the build knows `torchserve_log_dir`: it warns about unknown keys at start. */
async function serviceMode(): Promise<ServiceMode> {
  const dir = mkdtempSync(join(tmpdir(), "serve-metrics-ingest-"));
  const config = join(dir, "config.properties");
  writeFileSync(
    config,
    [
      "metrics_address=http://127.0.0.1:0",
      "metrics_mode=prometheus",
      "number_of_gpu=0",
      `torchserve_log_dir=${dir}`,
    ].join("\n"),
  );
  let child: Child<string> | undefined;
  try {
    const seen = { unknown: false };
    child = await startChild<string>([], "dist/cli.js", ["--ts-config", config], {
      readyWhen: (line) => {
        if (line.includes('unknown key "torchserve_log_dir"')) seen.unknown = true;
        return /metrics API listening on (\S+)/.exec(line)?.[1];
      },
    });
    return seen.unknown ? "interim" : "torchserve";
  } catch {
    // Refused to start (nothing to do without the key): the key is not there.
    return "interim";
  } finally {
    await child?.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
