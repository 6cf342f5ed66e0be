/** Which of TorchServe's inference APIs a request uses. */
export type InferenceKind = "predictions" | "explanations" | "v1-predict" | "v1-explain" | "v2-infer";

/** The model an inference request addresses, read from its path. */
export interface InferencePath {
  /** The model name, percent-decoded and otherwise unchecked: look it up, never use it as a file path. */
  model: string;
  /** The version the path names; undefined when it names none (the model's default version). */
  version: string | undefined;
  kind: InferenceKind;
}

/** A path of plain segments, the common case, whose pathname a URL parse would return unchanged. */
const PLAIN_PATH = /^\/(?!\/)[A-Za-z0-9_\-/]*(?=\?|$)/;
/** A query the WHATWG parse leaves as it is (no `"`, `#`, `'`, `<`, `>`, controls, spaces or non-ASCII). */
const PLAIN_QUERY = /^(?:\?[!$%&()*+,\-./0-9:;=?@A-Z[\\\]^_`a-z{|}~]*)?$/;

/** A request target as routed and forwarded: the same normalised path for both. */
export interface RequestTarget {
  pathname: string;
  /** The query with its `?`, or "". */
  search: string;
}

/**
 * The pathname and query of a request target as a WHATWG URL parse gives them (dot segments and
 * `%2e` resolved, backslashes read as slashes, odd characters percent-encoded, an absolute-form
 * target reduced to its path), or undefined when it is no valid URL. Plain paths skip the parse,
 * which would otherwise cost every inference request a few microseconds.
 */
export function requestTarget(target: string): RequestTarget | undefined {
  const plain = PLAIN_PATH.exec(target);
  if (plain !== null) {
    const search = target.slice(plain[0].length);
    if (PLAIN_QUERY.test(search)) return { pathname: plain[0], search: search === "?" ? "" : search };
  }
  try {
    const url = new URL(target, "http://inference.invalid");
    return { pathname: url.pathname, search: url.search };
  } catch {
    return undefined;
  }
}

/**
 * Parses TorchServe's inference paths: `POST /predictions/{model}[/{version}]`,
 * `/explanations/{model}[/{version}]`, KServe v1 `/v1/models/{model}:predict|:explain` and v2
 * `/v2/models/{model}[/versions/{version}]/infer`. Anything else, any other method, an empty name
 * or bad percent-encoding gives undefined. A query string and one trailing slash are ignored.
 */
export function parseInferencePath(method: string, pathname: string): InferencePath | undefined {
  // HTTP methods are case-sensitive (RFC 9110), and only POST runs a model.
  if (method !== "POST") return undefined;
  const segments = splitSegments(pathname);
  if (segments === undefined) return undefined;
  const [root, ...rest] = segments;
  switch (root) {
    case "predictions":
    case "explanations":
      return rest.length === 1 || rest.length === 2 ? named(root, rest[0], rest[1]) : undefined;
    case "v1":
      return rest.length === 2 && rest[0] === "models" ? v1(rest[1]) : undefined;
    case "v2":
      return v2(rest);
    default:
      return undefined;
  }
}

/** `{model}:predict` or `{model}:explain`; the last colon separates, so a model name may hold one. */
function v1(segment: string | undefined): InferencePath | undefined {
  if (segment === undefined) return undefined;
  const colon = segment.lastIndexOf(":");
  const verb = segment.slice(colon + 1);
  if (colon < 0 || (verb !== "predict" && verb !== "explain")) return undefined;
  return named(verb === "predict" ? "v1-predict" : "v1-explain", segment.slice(0, colon), undefined);
}

/** `models/{model}/infer` or `models/{model}/versions/{version}/infer`. */
function v2(rest: readonly string[]): InferencePath | undefined {
  if (rest[0] !== "models" || rest.at(-1) !== "infer") return undefined;
  if (rest.length === 3) return named("v2-infer", rest[1], undefined);
  if (rest.length === 5 && rest[2] === "versions") return named("v2-infer", rest[1], rest[3]);
  return undefined;
}

function named(
  kind: InferenceKind,
  model: string | undefined,
  version: string | undefined,
): InferencePath | undefined {
  if (model === undefined || model === "" || version === "") return undefined;
  return { model, version, kind };
}

/**
 * Decoded path segments, or undefined for a path that is not absolute, has an empty segment or
 * bad percent-encoding. Splitting before decoding keeps an encoded `/` (`%2F`) inside its segment,
 * and decoding before matching lets `%3Apredict` work as routers that decode the path do.
 */
function splitSegments(pathname: string): string[] | undefined {
  const path = pathname.replace(/[?#].*$/s, "").replace(/(.)\/$/s, "$1");
  if (!path.startsWith("/")) return undefined;
  const raw = path.slice(1).split("/");
  if (raw.includes("")) return undefined;
  try {
    return raw.map((segment) => (segment.includes("%") ? decodeURIComponent(segment) : segment));
  } catch {
    return undefined; // URIError: a stray `%` or invalid UTF-8
  }
}
