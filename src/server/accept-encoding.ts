/**
 * Whether a response should be gzip-compressed, by the request's `Accept-Encoding` (RFC 9110
 * §12.5.3): gzip (or its alias x-gzip), or `*` when gzip is not named, with a q-value above 0 and
 * no lower than that of identity where the header names identity (or `*`). With no header, or
 * gzip at `q=0`, the answer is no: identity is the default.
 */
export function acceptsGzip(header: string | string[] | undefined): boolean {
  if (header === undefined) return false;
  let gzip: number | undefined;
  let identity: number | undefined;
  let any: number | undefined;
  for (const item of (Array.isArray(header) ? header.join(",") : header).split(",")) {
    const [coding = "", ...params] = item.split(";");
    const q = qValue(params);
    // A malformed q-value makes the whole item unusable: ignore it rather than guess.
    if (q === undefined) continue;
    switch (coding.trim().toLowerCase()) {
      case "gzip":
      case "x-gzip":
        gzip = Math.max(gzip ?? 0, q);
        break;
      case "identity":
        identity = q;
        break;
      case "*":
        any = q;
    }
  }
  const gzipQ = gzip ?? any ?? 0;
  // Identity is acceptable unless excluded, but only a q-value given for it can outrank gzip.
  // (`*;q=0` excludes identity too, but an exposition has no other coding: it is sent anyway.)
  const identityQ = identity ?? any ?? 0;
  return gzipQ > 0 && gzipQ >= identityQ;
}

/** The item's `q` parameter (1 when absent), or undefined when it is not a number in [0, 1]. */
export function qValue(params: readonly string[]): number | undefined {
  for (const param of params) {
    const [name = "", value = ""] = param.split("=");
    if (name.trim().toLowerCase() !== "q") continue;
    const text = value.trim();
    if (!/^(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$/.test(text)) return undefined;
    return Number(text);
  }
  return 1;
}
