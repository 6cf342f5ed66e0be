/**
 * The `key1=value1,key2=value2` lists of OpenTelemetry's settings (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES, the file's `*_list` keys) and the checks on the headers they give.
 * A header list usually carries a secret (`authorization=Bearer …`, `api-key=…`), so no problem
 * reported here ever quotes a value, or an item whose name and value cannot be told apart: it
 * names the item by its position and, where one is known, its name.
 */

/** What the list holds, for the messages: `header "authorization" …`, `attribute "team" …`. */
export type ListItemNoun = "header" | "attribute";

/**
 * Parses a list with percent-encoded keys and values; a string says what is wrong, never quoting
 * a value.
 */
export function parseKeyValueList(text: string, noun: ListItemNoun): Record<string, string> | string {
  const out: Record<string, string> = {};
  const items = text.split(",");
  for (const [i, raw] of items.entries()) {
    const item = raw.trim();
    if (item === "") continue;
    const where = `item ${i + 1} of ${items.length}`;
    const eq = item.indexOf("=");
    if (eq <= 0) return notKeyValue(item, where, noun);
    let key: string;
    try {
      key = decodeURIComponent(item.slice(0, eq).trim());
    } catch {
      return `${where} has a broken %-escape in its name (the item is not shown: it may hold a secret)`;
    }
    try {
      out[key] = decodeURIComponent(item.slice(eq + 1).trim());
    } catch {
      return `${noun} ${JSON.stringify(key)} (${where}) has a broken %-escape in its value (not shown)`;
    }
  }
  return out;
}

/** An item without `=`: `authorization: Bearer x` is named by its header, anything else by position. */
function notKeyValue(item: string, where: string, noun: ListItemNoun): string {
  const expected = "write name=value pairs separated by commas, with , = and % in a value %-encoded";
  const colon = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)\s*:/.exec(item);
  if (colon !== null) {
    return `${noun} ${JSON.stringify(colon[1])} (${where}) is written name:value; ${expected} (its value is not shown)`;
  }
  if (item.startsWith("=")) return `${where} has no name before its "="; ${expected} (the item is not shown)`;
  return `${where} is not name=value; ${expected} (the item is not shown: it may hold a secret)`;
}

/** RFC 9110 `token`: what an HTTP header name may be made of. */
const HTTP_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** What Node lets an HTTP header value hold: tab, printable ASCII and latin1 (no CR, LF or controls). */
const HTTP_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;
/** What @grpc/grpc-js lets metadata hold: lower-case names (it lowers them), printable ASCII values. */
const GRPC_NAME = /^[0-9a-z_.-]+$/;
const GRPC_VALUE = /^[\x20-\x7e]*$/;

/**
 * Checks headers before any export, so that a bad one stops the start naming the header, rather
 * than failing every export later or, for gRPC, throwing an error that quotes the value (grpc-js
 * does). Undefined when they are fine; values are never quoted.
 */
export function checkHeaders(
  headers: Readonly<Record<string, string>>,
  transport: "http" | "grpc",
): string | undefined {
  const grpc = transport === "grpc";
  for (const [name, value] of Object.entries(headers)) {
    const shown = JSON.stringify(name);
    if (!(grpc ? GRPC_NAME.test(name.toLowerCase()) : HTTP_NAME.test(name))) {
      return grpc
        ? `header name ${shown} is not valid gRPC metadata (letters, digits, _ . - only)`
        : `header name ${shown} is not a valid HTTP header name (letters, digits and !#$%&'*+.^_\`|~- only)`;
    }
    if (grpc && name.toLowerCase().endsWith("-bin")) {
      return `header ${shown} is binary gRPC metadata (its name ends in -bin), which cannot be set from text`;
    }
    if (!(grpc ? GRPC_VALUE : HTTP_VALUE).test(value)) {
      const allowed = grpc
        ? "printable ASCII"
        : "printable ASCII or latin1, no line breaks or control characters";
      return `header ${shown} has a character in its value that ${grpc ? "gRPC metadata" : "HTTP"} cannot carry (${allowed}; the value is not shown)`;
    }
  }
  return undefined;
}
