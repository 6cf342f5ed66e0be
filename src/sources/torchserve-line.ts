import { TORCHSERVE_FRONTEND_METRICS } from "../telemetry/recorder.js";
import { metricsPayload, type MetricLineType } from "./metric-line.js";

/** One response as TorchServe's access log records it. */
export interface AccessRecord {
  /** The HTTP method, or `gRPC` for a gRPC call. */
  method: string;
  /** The raw request URI with its query, or the full gRPC method name. */
  uri: string;
  /** `HTTP/1.1`, `HTTP/2.0`, ... */
  protocol: string;
  /** The HTTP status, or the gRPC status code (0 = OK). */
  status: number;
  /** Milliseconds from the request to the response, as TorchServe printed them. */
  ms: number;
}

/**
 * Which TorchServe file a line was read from, when the caller knows it. `ts_log` (ts_log.log)
 * holds copies of every record, which are never counted from it: only what no other file says.
 */
export type TorchServeFile = "ts_metrics" | "model_metrics" | "access_log" | "ts_log";

/** Who wrote a metric record: TorchServe's frontend, its backend metrics, or a worker's `[METRICS]` line. */
export type MetricOrigin = "ts_metrics" | "model_metrics" | "worker";

/** What one line of TorchServe's output is. */
export type TorchServeLine =
  /** A metric record; `payload` is the metric line without any prefix, in TorchServe 0.8+'s form. */
  | { kind: "metric"; payload: string; origin: MetricOrigin }
  | { kind: "access"; access: AccessRecord }
  /**
   * The type TorchServe gave a backend metric, from WorkerLifeCycle's `result=[METRICS]…` echo of
   * a worker's line (written before the metric is recorded): the line's `|#type:`, or COUNTER,
   * TorchServe's default for a line without one (MetricCache.addAutoDetectMetricBackend).
   */
  | { kind: "type"; name: string; type: MetricLineType }
  /** ModelManager's `Model <name> loaded.`: a model TorchServe serves. */
  | { kind: "model"; model: string }
  /** Any other log line: MODEL_LOG, the `result=[METRICS]...` echoes of ts_log.log, plain text. */
  | { kind: "ignored" }
  /** A line with a record's layout that is broken, and why. */
  | { kind: "malformed"; reason: string };

// A record longer than this is not one TorchServe writes; refusing it bounds the work per line.
const MAX_LINE_CHARS = 64 * 1024;
// The layout is looked for in this much of the line's start: a time, a level, a thread and a
// logger name never take more, and a long MODEL_LOG line then costs no more than a short one.
const MAX_PREFIX_CHARS = 1024;
// log4j2's ISO8601 (`2024-05-30T21:46:03,625`) and log4j 1's (`2020-12-20 17:36:07,338`, ≤0.5).
const TIME = String.raw`\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[,.]\d{3}`;
// `<time> - `: the metric files' and the access log's layout.
const FILE_LAYOUT = new RegExp(`^${TIME} - `);
// `<time> [<LEVEL padded to 5>] <thread> <logger> - `: the console's and ts_log.log's. Each part
// is a run of one character class ending where the next starts, so matching is linear.
const CONSOLE_LAYOUT = new RegExp(String.raw`^${TIME} \[[A-Z]+ *\] \S+ (\S+) - `);
const STATUS_AND_MS = /^(\d{1,3}) (-?\d{1,15})$/;
const ACCESS_GRAMMAR = `<client> "<method> <uri> <protocol>" <status> <ms>`;
// A worker's load time as TorchServe ≤0.7 logged it, under the worker's name (`W-9000-mnist_1.0`).
const LEGACY_WORKER_NAME = /^W-\d+-\S+$/;
const SEGMENT = "|#";
// WorkerLifeCycle logs each worker metric line as `result=<line>, pattern=[METRICS]`.
const ECHO_START = "result=";
const ECHO_END = ", pattern=[METRICS]";
const TYPE_SEGMENT = "|#type:";
// ModelManager, once a model is registered: `Model mnist loaded.` (no spaces in a model name).
const MODEL_LOADED = /^Model (\S{1,1024}) loaded\.$/;
const ECHO_TYPES: ReadonlyMap<string, MetricLineType> = new Map([
  ["COUNTER", "counter"],
  ["GAUGE", "gauge"],
  ["HISTOGRAM", "histogram"],
]);

/**
 * What one line of TorchServe's output is, read from its layout alone: the metric files'
 * `<time> - <metric line>`, the access log's `<time> - <access line>`, the console's and
 * ts_log.log's `<time> [<LEVEL>] <thread> <logger> - <message>` (the logger read at its place,
 * never searched for, so a MODEL_LOG line quoting a record is ignored), and the `[METRICS]` lines of
 * workers. `hint` names the file the line came from; without one (standard input, metric_log_files)
 * see {@link metricFileOrigin}. Never throws; linear in the line's length.
 */
export function classifyTorchServeLine(text: string, hint?: TorchServeFile): TorchServeLine {
  // A CRLF line end, or a line that is only whitespace, says nothing.
  const line = text.endsWith("\r") ? text.slice(0, -1) : text;
  if (line.trim() === "") return IGNORED;
  const head = line.length > MAX_PREFIX_CHARS ? line.slice(0, MAX_PREFIX_CHARS) : line;

  const console = CONSOLE_LAYOUT.exec(head);
  if (console !== null) {
    const logger = console[1];
    const message = line.slice(console[0].length);
    // ts_log.log repeats what the metric files and the access log hold: only its echoes count.
    if (hint === "ts_log") {
      if (logger?.endsWith("ModelManager") === true) return loadedModel(message) ?? IGNORED;
      return logger?.endsWith("WorkerLifeCycle") === true && message.startsWith(ECHO_START)
        ? (echoedType(message) ?? IGNORED)
        : IGNORED;
    }
    switch (logger) {
      case "TS_METRICS":
        return tooLong(line) ?? metric(message, "ts_metrics");
      case "MODEL_METRICS":
        return tooLong(line) ?? metric(message, "model_metrics");
      case "ACCESS_LOG":
        return tooLong(line) ?? access(message);
      default:
        if (logger?.endsWith("WorkerLifeCycle") === true && message.startsWith(ECHO_START)) {
          return echoedType(message) ?? IGNORED;
        }
        if (logger?.endsWith("ModelManager") === true) return loadedModel(message) ?? IGNORED;
        // Another logger; a [METRICS] line logged behind the layout is a worker's, as before.
        return workerLine(line) ?? IGNORED;
    }
  }

  if (hint === "ts_log") return IGNORED;
  const file = FILE_LAYOUT.exec(head);
  if (file !== null) {
    const record = line.slice(file[0].length);
    if (hint === "access_log") return tooLong(line) ?? access(record);
    if (hint !== undefined) return tooLong(line) ?? metric(record, hint);
    return tooLong(line) ?? unhintedRecord(record);
  }

  const worker = workerLine(line);
  if (worker !== undefined) return worker;
  if (hint !== undefined) {
    return malformed(
      `not in the layout of TorchServe's ${hint}.log ("<time> - <record>", the time as log4j2's ISO8601 ` +
        `"2024-05-30T21:46:03,625"): ${quote(line)}`,
    );
  }
  return IGNORED;
}

/**
 * Who wrote a metric-file-form line when the file is unknown. A line naming a `requestID:` is a
 * backend record: TorchServe never gives a frontend metric one. Otherwise a frontend or system
 * metric's name makes it the frontend's, and anything else a backend record, which may write
 * only model metrics: the narrower permission is the default for whatever is not known to be
 * the frontend's. (A backend line without request ids that a worker gave a frontend metric's
 * name, under TorchServe's auto-detection, cannot be told apart here; the file hint can.)
 */
export function metricFileOrigin(payload: string): "ts_metrics" | "model_metrics" {
  const tail = payload.slice(payload.lastIndexOf(SEGMENT) + SEGMENT.length);
  if (tail.startsWith("hostname:") && tail.includes(",requestID:")) return "model_metrics";
  const dot = payload.indexOf(".");
  return dot > 0 && TORCHSERVE_FRONTEND_METRICS.has(payload.slice(0, dot)) ? "ts_metrics" : "model_metrics";
}

const IGNORED: TorchServeLine = Object.freeze({ kind: "ignored" });

/** The model of ModelManager's `Model <name> loaded.`, or undefined for another message. */
function loadedModel(message: string): TorchServeLine | undefined {
  const match = MODEL_LOADED.exec(message);
  return match?.[1] === undefined ? undefined : { kind: "model", model: match[1] };
}

/**
 * The metric name and type of a `result=<worker line>, pattern=[METRICS]` echo, or undefined when
 * the echoed line is not a worker metric line. Reads only the name and the `|#type:` segment: the
 * value is recorded from the MODEL_METRICS record, if TorchServe kept the metric.
 */
function echoedType(message: string): TorchServeLine | undefined {
  const end = message.lastIndexOf(ECHO_END);
  if (end < 0 || message.length > MAX_LINE_CHARS) return undefined;
  const payload = metricsPayload(message.slice(ECHO_START.length, end));
  if (payload === undefined) return undefined;
  const dot = payload.indexOf(".");
  const dims = payload.indexOf(SEGMENT);
  if (dot <= 0 || dims < dot) return undefined;
  const name = payload.slice(0, dot);
  const at = payload.indexOf(TYPE_SEGMENT, dims);
  if (at < 0) return { kind: "type", name, type: "counter" };
  const close = payload.indexOf(SEGMENT, at + TYPE_SEGMENT.length);
  const word = payload.slice(at + TYPE_SEGMENT.length, close < 0 ? undefined : close).toUpperCase();
  const type = ECHO_TYPES.get(word);
  return type === undefined ? undefined : { kind: "type", name, type };
}

/** A `<time> - ` record from a file the caller does not name: an access line, or a metric line. */
function unhintedRecord(record: string): TorchServeLine {
  const parsed = parseAccessLine(record);
  if (typeof parsed !== "string") return { kind: "access", access: parsed };
  // Every metric line holds "|#"; an access line's client address starts with "/" (or is a bare IP).
  if (record.includes(SEGMENT)) {
    const payload = legacyFrontendLine(record) ?? record;
    return { kind: "metric", payload, origin: metricFileOrigin(payload) };
  }
  if (/^[/\d[]/.test(record)) return malformed(parsed);
  return IGNORED;
}

function metric(payload: string, origin: "ts_metrics" | "model_metrics"): TorchServeLine {
  if (origin === "ts_metrics") payload = legacyFrontendLine(payload) ?? payload;
  return { kind: "metric", payload, origin };
}

function access(record: string): TorchServeLine {
  const parsed = parseAccessLine(record);
  return typeof parsed === "string" ? malformed(parsed) : { kind: "access", access: parsed };
}

/** A worker's `[METRICS]` line (alone, behind `INFO > ` or a log4j prefix), or undefined. */
function workerLine(line: string): TorchServeLine | undefined {
  const payload = metricsPayload(line);
  if (payload === undefined) return undefined;
  return tooLong(line) ?? { kind: "metric", payload, origin: "worker" };
}

function tooLong(line: string): TorchServeLine | undefined {
  return line.length > MAX_LINE_CHARS
    ? malformed(`line is ${line.length} characters long, more than the ${MAX_LINE_CHARS} allowed`)
    : undefined;
}

function malformed(reason: string): TorchServeLine {
  return { kind: "malformed", reason };
}

/**
 * `<client> "<method> <uri> <protocol>" <status> <ms>`, or the reason the text is not one. Read
 * from both ends: the client holds no space, the status and time are the last two words, so the
 * URI between may hold anything (a quote included) and still be kept whole.
 */
export function parseAccessLine(text: string): AccessRecord | string {
  const open = text.indexOf(' "');
  const close = text.lastIndexOf('" ');
  if (open <= 0 || close <= open + 1) return `expected ${ACCESS_GRAMMAR}, got ${quote(text)}`;
  if (/\s/.test(text.slice(0, open))) return `client address ${quote(text.slice(0, open))} holds a space`;
  const numbers = STATUS_AND_MS.exec(text.slice(close + 2));
  if (numbers === null) {
    return `expected "<status> <ms>" (two integers) after the quoted request, got ${quote(text.slice(close + 2))}`;
  }
  const request = text.slice(open + 2, close);
  const firstSpace = request.indexOf(" ");
  const lastSpace = request.lastIndexOf(" ");
  if (firstSpace <= 0 || lastSpace <= firstSpace + 1 || lastSpace === request.length - 1) {
    return `expected "<method> <uri> <protocol>" between the quotes, got ${quote(request)}`;
  }
  return {
    method: request.slice(0, firstSpace),
    uri: request.slice(firstSpace + 1, lastSpace),
    protocol: request.slice(lastSpace + 1),
    status: Number(numbers[1]),
    ms: Number(numbers[2]),
  };
}

/**
 * A frontend line of TorchServe ≤0.7 in today's form, or undefined when it is none: the worker
 * load time logged under the worker's name (`W-9000-mnist_1.0.ms:3579|#Level:Host|#...`) becomes
 * WorkerLoadTime with that WorkerName, and a GPU metric's `device_id` becomes `DeviceId`.
 */
function legacyFrontendLine(payload: string): string | undefined {
  if (payload.startsWith("W-")) return legacyWorkerLoadTime(payload);
  if (payload.startsWith("GPU")) return legacyDeviceId(payload);
  return undefined;
}

function legacyWorkerLoadTime(payload: string): string | undefined {
  const dims = payload.indexOf(SEGMENT);
  if (dims < 0) return undefined;
  const head = payload.slice(0, dims);
  const colon = head.lastIndexOf(":");
  const dot = head.lastIndexOf(".", colon);
  if (colon < 0 || dot < 0) return undefined;
  const worker = head.slice(0, dot);
  if (!LEGACY_WORKER_NAME.test(worker)) return undefined;
  const rest = payload.slice(dims + SEGMENT.length);
  const joiner = rest.startsWith(SEGMENT) ? "" : ",";
  return `WorkerLoadTime${head.slice(dot)}${SEGMENT}WorkerName:${worker}${joiner}${rest}`;
}

function legacyDeviceId(payload: string): string | undefined {
  const start = payload.indexOf(SEGMENT);
  if (start < 0) return undefined;
  const end = payload.indexOf(SEGMENT, start + SEGMENT.length);
  if (end < 0) return undefined;
  const dims = payload.slice(start + SEGMENT.length, end).split(",");
  const at = dims.findIndex((d) => d.startsWith("device_id:"));
  if (at < 0) return undefined;
  dims[at] = `DeviceId:${(dims[at] ?? "").slice("device_id:".length)}`;
  return `${payload.slice(0, start + SEGMENT.length)}${dims.join(",")}${payload.slice(end)}`;
}

/** The text as a JSON string literal, cut to a readable length. */
function quote(text: string): string {
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}…` : text);
}
