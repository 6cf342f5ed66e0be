// Hop-by-hop headers belong to one connection and are not forwarded (RFC 9110 section 7.6.1).
const HOP_BY_HOP = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/**
 * The end-to-end headers of a request or response: without the hop-by-hop ones, nor any header the
 * `Connection` header names (RFC 9110 section 7.6.1 makes those hop-by-hop too).
 */
export function endToEndHeaders(
  headers: Readonly<Record<string, string | string[] | undefined>>,
): Record<string, string | string[]> {
  const connection = headers.connection;
  // Node joins repeated Connection headers into one; undici keeps each.
  const named =
    connection === undefined
      ? undefined
      : new Set(
          (typeof connection === "string" ? connection : connection.join(","))
            .toLowerCase()
            .split(",")
            .map((name) => name.trim()),
        );
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value !== undefined && !HOP_BY_HOP.has(name) && named?.has(name) !== true) out[name] = value;
  }
  return out;
}
