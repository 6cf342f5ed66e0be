/** How a backend metric line asks to be recorded: COUNTER adds, GAUGE sets, HISTOGRAM observes. */
export type MetricLineType = "counter" | "gauge" | "histogram";

/** One parsed metric update. */
export interface MetricLine {
  /** A valid Prometheus metric name, e.g. `PredictionTime`. */
  name: string;
  /** The unit as the worker wrote it, long-form (`Milliseconds`, `Percent`, ...). */
  unit: string;
  /** A finite number. */
  value: number;
  /** Dimension name → value, in line order; names are valid Prometheus label names. */
  dimensions: Record<string, string>;
  /** From the optional `|#type:` segment; undefined when the line has none. */
  type: MetricLineType | undefined;
  /** The worker's host, from `|#hostname:`. */
  hostname: string;
  /** When the line was emitted, in epoch seconds; undefined for TorchServe ≤0.5's `timestamp:null`. */
  timestamp: number | undefined;
  /** The request ids (after the timestamp, or in `requestID:`), in line order; empty when there are none. */
  requestIds: string[];
}

/** A parsed line, or why the text is not one. */
export type MetricLineResult = { ok: true; line: MetricLine } | { ok: false; reason: string };

const MARKER = "[METRICS]";
const SEGMENT = "|#";
const TYPE_PREFIX = "type:";
const HOSTNAME_PREFIX = "hostname:";
// The metric-file form's fields: `hostname:<host>[,requestID:<ids>],timestamp:<t>`.
const REQUEST_ID_PREFIX = "requestID:";
const TIMESTAMP_PREFIX = "timestamp:";
const GRAMMAR = "<Name>.<Unit>:<value>|#<dims>[|#type:<type>]|#hostname:<host>,<timestamp>[,<request ids>]";
// Longer lines are not what a worker prints; refusing them bounds the work and the log message.
const MAX_LINE_CHARS = 64 * 1024;
// Quoted parts of a reason are cut to this length so one bad line cannot flood the log.
const MAX_QUOTED_CHARS = 80;

// Every pattern is anchored and unambiguous (no nested or adjacent overlapping repeats), so
// matching is linear in the input even when it fails.
const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
// TorchServe's units are words (`Milliseconds`); custom ones may be freer (`requests/s`, `%`).
const UNIT = /^[a-zA-Z0-9_%/. -]+$/;
// Decimal or exponent form only: Number() alone would also take "0x1f", "Infinity", "" and " ".
const DECIMAL = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const WHITESPACE = /\s/;

// A Map, so that no type text can reach Object.prototype's members.
const TYPES: ReadonlyMap<string, MetricLineType> = new Map([
  ["COUNTER", "counter"],
  ["GAUGE", "gauge"],
  ["HISTOGRAM", "histogram"],
]);

/**
 * Where the marker may stand: first on the line, as TorchServe's frontend takes it from a worker
 * (`^(INFO > )?\[METRICS]`, the prefix being its C++ backend's), or behind the prefix of its log4j
 * layout (`<ISO 8601 time> [<LEVEL>] <thread> <logger> - `), as a followed log file holds it.
 * Nowhere else: a marker inside other text is something a worker quoted (an input it logged),
 * and taking it would let whoever sent that input write metrics. Linear: `\S+ ` cannot overlap.
 */
const MARKER_AT =
  /^(?:INFO > |\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[,.]\d{3} \[[A-Z]+ *\] \S+ \S+ - )?\[METRICS\]/;
// A metric line is one line of text: a control character (CR, LF, tab, NUL ...; C1 and the Unicode
// line separators too) can only be a garbled or forged line, and some exposition parsers refuse
// the whole scrape for one raw CR in a label value. Surrounding whitespace is trimmed first.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/**
 * The text after `[METRICS]` if the marker starts the line (alone, or after TorchServe's `INFO > `
 * or log4j prefix), else undefined: a marker elsewhere in the line does not count.
 */
export function metricsPayload(text: string): string | undefined {
  const match = MARKER_AT.exec(text);
  return match === null ? undefined : text.slice(match[0].length);
}

/**
 * Parses a metric line, with or without the [METRICS] marker; the marker must start the line (see
 * {@link metricsPayload}). Takes a worker's hostname segment (`<host>,<timestamp>[,<ids>]`) and
 * that of TorchServe's metric files (`<host>[,requestID:<ids>],timestamp:<t>`). Surrounding whitespace, a trailing `\r` included, is tolerated; a
 * control character inside is not. Never throws.
 */
export function parseMetricLine(text: string): MetricLineResult {
  if (text.length > MAX_LINE_CHARS) {
    return fail(`line is ${text.length} characters long, more than the ${MAX_LINE_CHARS} allowed`);
  }
  let payload = metricsPayload(text);
  if (payload === undefined) {
    const at = text.indexOf(MARKER);
    if (at >= 0) {
      return fail(
        `the ${MARKER} marker is at column ${at + 1}, not at the start of the line ` +
          `(only TorchServe's "INFO > " or log4j prefix may precede it): ${quote(text.slice(Math.max(0, at - 40), at + MARKER.length))}`,
      );
    }
    payload = text;
  }
  payload = payload.trim();
  if (payload === "") return fail(`empty metric line; expected ${GRAMMAR}`);
  const control = CONTROL.exec(payload);
  if (control !== null) {
    const code = control[0].charCodeAt(0).toString(16).toUpperCase().padStart(4, "0");
    return fail(
      `control character U+${code} in ${quote(payload.slice(Math.max(0, control.index - 30), control.index + 30))}; ` +
        `a metric line is one line of printable text`,
    );
  }

  // "|" only ever starts a "|#" separator; anywhere else it is a cut or garbled line.
  for (let at = payload.indexOf("|"); at >= 0; at = payload.indexOf("|", at + 1)) {
    if (payload[at + 1] !== "#") {
      return fail(`stray "|" not followed by "#" in ${quote(payload.slice(Math.max(0, at - 30), at + 30))}`);
    }
  }

  const segments = payload.split(SEGMENT);
  const head = parseHead(segments[0] ?? "");
  if (typeof head === "string") return fail(head);

  // Shape: head, dims, [type,] hostname. The hostname segment is looked for first because
  // its absence is the most common way a line is cut short.
  const last = segments[segments.length - 1] ?? "";
  if (segments.length < 2 || !last.startsWith(HOSTNAME_PREFIX)) {
    return fail(`missing "|#hostname:<host>,<timestamp>" segment at the end; expected ${GRAMMAR}`);
  }
  if (segments.length === 2) {
    return fail(
      `missing "|#<dims>" segment before "|#hostname:" (write "|#|#hostname:" when there are none)`,
    );
  }
  if (segments.length > 4) {
    return fail(`${segments.length - 1} "|#" segments, at most 3 expected; expected ${GRAMMAR}`);
  }

  const dimensions = parseDimensions(segments[1] ?? "");
  if (typeof dimensions === "string") return fail(dimensions);

  let type: MetricLineType | undefined;
  if (segments.length === 4) {
    const typeSegment = segments[2] ?? "";
    if (!typeSegment.startsWith(TYPE_PREFIX)) {
      return fail(
        `segment ${quote(SEGMENT + typeSegment)} between the dimensions and "|#hostname:" is not "|#type:<type>"`,
      );
    }
    const typeText = typeSegment.slice(TYPE_PREFIX.length);
    // TorchServe writes the enum names in upper case; any case is taken, as for metrics_mode.
    type = TYPES.get(typeText.toUpperCase());
    if (type === undefined) return fail(`type ${quote(typeText)} is not COUNTER, GAUGE or HISTOGRAM`);
  }

  const tail = parseHostnameSegment(last.slice(HOSTNAME_PREFIX.length));
  if (typeof tail === "string") return fail(tail);

  return {
    ok: true,
    line: {
      name: head.name,
      unit: head.unit,
      value: head.value,
      dimensions,
      type,
      hostname: tail.hostname,
      timestamp: tail.timestamp,
      requestIds: tail.requestIds,
    },
  };
}

function fail(reason: string): MetricLineResult {
  return { ok: false, reason };
}

/** `<Name>.<Unit>:<value>`, or the reason it is not. */
function parseHead(head: string): { name: string; unit: string; value: number } | string {
  // The value holds no ':', so the last one separates it even from a name that has colons.
  const colon = head.lastIndexOf(":");
  if (colon < 0) return `expected "<Name>.<Unit>:<value>" before the first "|#", got ${quote(head)}`;
  const nameAndUnit = head.slice(0, colon);
  // A metric name holds no '.', so the first one ends it; the unit may hold more.
  const dot = nameAndUnit.indexOf(".");
  if (dot < 0) return `expected "<Name>.<Unit>" before ":<value>", got ${quote(nameAndUnit)}`;
  const name = nameAndUnit.slice(0, dot);
  const unit = nameAndUnit.slice(dot + 1);
  if (!METRIC_NAME.test(name)) {
    return `metric name ${quote(name)} is not a valid Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)`;
  }
  if (unit === "") return `metric ${quote(name)} has an empty unit`;
  if (!UNIT.test(unit)) {
    return `unit ${quote(unit)} of metric ${quote(name)} may hold only letters, digits, spaces and _ % / . -`;
  }
  const valueText = head.slice(colon + 1);
  if (valueText === "") return `metric ${quote(name)} has no value after ":"`;
  const value = parseDecimal(valueText);
  if (value === undefined) return `value ${quote(valueText)} of metric ${quote(name)} is not a finite number`;
  return { name, unit, value };
}

/** `<Dim>:<v>,<Dim>:<v>` (or nothing), or the reason it is not. */
function parseDimensions(text: string): Record<string, string> | string {
  if (text === "") return {};
  const dimensions: Record<string, string> = {};
  for (const item of text.split(",")) {
    if (item === "") return `empty dimension in ${quote(text)} (a stray ",")`;
    // Split at the first ':' only: values such as "host:8080" keep theirs.
    const colon = item.indexOf(":");
    if (colon < 0) return `dimension ${quote(item)} has no ":<value>"`;
    const name = item.slice(0, colon);
    if (!LABEL_NAME.test(name))
      return `dimension ${quote(name)} is not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)`;
    if (Object.hasOwn(dimensions, name)) return `dimension ${quote(name)} appears more than once`;
    // defineProperty, not assignment: "__proto__" is a valid label name, and assigning it
    // would replace the object's prototype instead of adding a dimension.
    Object.defineProperty(dimensions, name, {
      value: item.slice(colon + 1),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return dimensions;
}

/** What follows `hostname:`: the host, the timestamp and the request ids. */
interface HostnameSegment {
  hostname: string;
  timestamp: number | undefined;
  requestIds: string[];
}

/**
 * `<host>,<timestamp>[,<request id>...]` as a worker prints it, or `<host>[,requestID:<ids>],timestamp:<t>`
 * as TorchServe's metric files hold it (its LogMetric); the reason it is neither otherwise.
 */
function parseHostnameSegment(text: string): HostnameSegment | string {
  const parts = text.split(",");
  const hostname = parts[0] ?? "";
  const second = parts[1];
  if (hostname === "") return `empty hostname in "|#hostname:<host>,<timestamp>"`;
  if (second === undefined) {
    return `missing timestamp after hostname ${quote(hostname)} (expected "|#hostname:<host>,<timestamp>")`;
  }
  // A worker's timestamp is a bare number, so a field name here can only be the file form.
  if (second.startsWith(REQUEST_ID_PREFIX) || second.startsWith(TIMESTAMP_PREFIX)) {
    return parseFileHostnameSegment(hostname, parts);
  }
  const timestamp = parseTimestamp(second);
  if (typeof timestamp === "string") return timestamp;
  const requestIds = parts.slice(2);
  for (let i = 0; i < requestIds.length; i++) {
    const id = requestIds[i] ?? "";
    if (id === "") return `request id ${i + 1} after the timestamp is empty (a stray ",")`;
    // Catches text glued after the ids, e.g. TorchServe's debug log "..., pattern=[METRICS]".
    if (WHITESPACE.test(id)) return `request id ${quote(id)} contains whitespace`;
  }
  return { hostname, timestamp, requestIds };
}

/**
 * The metric-file form, `parts` being the segment split at ",": `requestID:` may hold a list (a
 * batch; its commas split it too) or the literal `null`, and `timestamp:` always comes last.
 */
function parseFileHostnameSegment(hostname: string, parts: readonly string[]): HostnameSegment | string {
  const last = parts[parts.length - 1] ?? "";
  if (!last.startsWith(TIMESTAMP_PREFIX)) {
    return `expected "${TIMESTAMP_PREFIX}<t>" last in "|#hostname:${cutText(hostname)},...", got ${quote(last)}`;
  }
  const timestampText = last.slice(TIMESTAMP_PREFIX.length);
  // TorchServe ≤0.5 printed a timestamp it did not have as "null".
  const timestamp = timestampText === "null" ? undefined : parseTimestamp(timestampText);
  if (typeof timestamp === "string") return timestamp;
  const middle = parts.slice(1, -1);
  if (middle.length === 0) return { hostname, timestamp, requestIds: [] };
  const first = middle[0] ?? "";
  if (!first.startsWith(REQUEST_ID_PREFIX)) {
    return `unexpected ${quote(first)} between the hostname and "${TIMESTAMP_PREFIX}" (only "${REQUEST_ID_PREFIX}<ids>" may stand there)`;
  }
  middle[0] = first.slice(REQUEST_ID_PREFIX.length);
  // TorchServe prints whatever ids the request carried (an x-request-id-prefix header's text
  // included), so only the layout is checked: the ids end where "timestamp:" starts.
  const requestIds = middle.filter((id) => id !== "" && id !== "null");
  return { hostname, timestamp, requestIds };
}

/** A timestamp in epoch seconds, or the reason the text is not one. */
function parseTimestamp(text: string): number | string {
  const timestamp = parseDecimal(text);
  if (timestamp === undefined) return `timestamp ${quote(text)} is not a number`;
  if (timestamp < 0) return `timestamp ${quote(text)} is negative`;
  return timestamp;
}

/** A finite number in decimal or exponent form, else undefined. */
function parseDecimal(text: string): number | undefined {
  if (!DECIMAL.test(text)) return undefined;
  const value = Number(text);
  // "1e999" has the right form but overflows to Infinity.
  return Number.isFinite(value) ? value : undefined;
}

/** The text cut to a readable length, unquoted. */
function cutText(text: string): string {
  return text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}…` : text;
}

/** The text as a JSON string literal (control characters escaped), cut to a readable length. */
function quote(text: string): string {
  return JSON.stringify(text.length > MAX_QUOTED_CHARS ? `${text.slice(0, MAX_QUOTED_CHARS)}…` : text);
}
