import { expect } from "chai";
import fc from "fast-check";
import {
  parseInferencePath,
  requestTarget,
  type InferencePath,
  type RequestTarget,
} from "../../src/frontend/inference-path.js";

describe("requestTarget", () => {
  /** What the WHATWG parser makes of a request target, the reference the fast path must match. */
  const whatwg = (target: string): RequestTarget | undefined => {
    try {
      const url = new URL(target, "http://inference.invalid");
      return { pathname: url.pathname, search: url.search };
    } catch {
      return undefined;
    }
  };

  it("gives the WHATWG URL pathname and query for any request target, plain or not", () => {
    const pieces = fc.constantFrom(
      "/",
      "//",
      "a",
      "Z9",
      "_",
      "-",
      ".",
      "..",
      "%2F",
      "%",
      "?",
      "#",
      "\\",
      " ",
      "é",
      ":",
      "predictions",
      "=",
      "&",
      "'",
      '"',
      "<",
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.array(pieces, { maxLength: 8 }).map((p) => p.join("")),
          fc.string(),
        ),
        (target) => {
          expect(requestTarget(target)).to.deep.equal(whatwg(target));
        },
      ),
      { numRuns: 5000 },
    );
    for (const target of [
      "/predictions/m?x=1",
      "//evil/predictions/m",
      "/a/../predictions/m",
      "/p%20x",
      "/",
      "/predictions/m?",
      "/predictions/m?a='x'",
    ]) {
      expect(requestTarget(target), target).to.deep.equal(whatwg(target));
    }
  });

  it("routes and forwards the same path: dot segments, %2e, backslashes and absolute form resolved", () => {
    for (const [target, pathname] of [
      ["/predictions/zzz/../m", "/predictions/m"],
      ["/predictions/zzz/%2e%2e/m", "/predictions/m"],
      ["/predictions\\zzz\\..\\m", "/predictions/m"],
      ["http://internal:9000/predictions/m?x=1", "/predictions/m"],
    ] as const) {
      expect(requestTarget(target)?.pathname, target).to.equal(pathname);
    }
  });
});

describe("parseInferencePath", () => {
  const accepted: [string, InferencePath][] = [
    ["/predictions/resnet18", { model: "resnet18", version: undefined, kind: "predictions" }],
    ["/predictions/resnet18/1.0", { model: "resnet18", version: "1.0", kind: "predictions" }],
    ["/predictions/resnet18/", { model: "resnet18", version: undefined, kind: "predictions" }],
    ["/predictions/resnet18/2.0/", { model: "resnet18", version: "2.0", kind: "predictions" }],
    ["/predictions/resnet18?batch=1", { model: "resnet18", version: undefined, kind: "predictions" }],
    ["/predictions/resnet18#frag", { model: "resnet18", version: undefined, kind: "predictions" }],
    ["/explanations/bert", { model: "bert", version: undefined, kind: "explanations" }],
    ["/explanations/bert/3", { model: "bert", version: "3", kind: "explanations" }],
    ["/v1/models/mnist:predict", { model: "mnist", version: undefined, kind: "v1-predict" }],
    ["/v1/models/mnist:explain", { model: "mnist", version: undefined, kind: "v1-explain" }],
    ["/v1/models/ns:mnist:predict", { model: "ns:mnist", version: undefined, kind: "v1-predict" }],
    ["/v1/models/mnist%3Apredict", { model: "mnist", version: undefined, kind: "v1-predict" }],
    ["/v2/models/mnist/infer", { model: "mnist", version: undefined, kind: "v2-infer" }],
    ["/v2/models/mnist/versions/2/infer", { model: "mnist", version: "2", kind: "v2-infer" }],
    ["/predictions/my%20model", { model: "my model", version: undefined, kind: "predictions" }],
    ["/predictions/a%2Fb/v%2F1", { model: "a/b", version: "v/1", kind: "predictions" }],
    ["/predictions/caf%C3%A9", { model: "café", version: undefined, kind: "predictions" }],
  ];
  for (const [path, expected] of accepted) {
    it(`reads POST ${path} as ${JSON.stringify(expected)}`, () => {
      expect(parseInferencePath("POST", path)).to.deep.equal(expected);
    });
  }

  const refused: [string, string, string][] = [
    ["GET", "/predictions/resnet18", "a GET"],
    ["PUT", "/v2/models/mnist/infer", "a PUT"],
    ["post", "/predictions/resnet18", "a lowercase method (methods are case-sensitive)"],
    ["POST", "/predictions", "no model"],
    ["POST", "/predictions/", "no model, trailing slash"],
    ["POST", "/predictions//1.0", "an empty model name"],
    ["POST", "/predictions/resnet18//", "two trailing slashes"],
    ["POST", "/predictions/resnet18/1.0/extra", "a segment too many"],
    ["POST", "/Predictions/resnet18", "a differently cased root"],
    ["POST", "predictions/resnet18", "a relative path"],
    ["POST", "/", "the root"],
    ["POST", "", "an empty path"],
    ["POST", "/ping", "the health check"],
    ["POST", "/metrics", "the metrics path"],
    ["POST", "/v1/models/:predict", "an empty v1 model name"],
    ["POST", "/v1/models/mnist", "v1 without a verb"],
    ["POST", "/v1/models/mnist:infer", "v1 with an unknown verb"],
    ["POST", "/v1/models/mnist:predict/extra", "v1 with a segment too many"],
    ["POST", "/v1/mnist:predict", "v1 without models/"],
    ["POST", "/v2/models/mnist", "v2 without infer"],
    ["POST", "/v2/models//infer", "an empty v2 model name"],
    ["POST", "/v2/models/mnist/versions//infer", "an empty v2 version"],
    ["POST", "/v2/models/mnist/versions/infer", "v2 versions/ without a version"],
    ["POST", "/v2/models/mnist/ready", "v2 readiness"],
    ["POST", "/v2/models/mnist/v/2/infer", "v2 with something else than versions/"],
    ["POST", "/predictions/bad%ZZ", "bad percent-encoding"],
    ["POST", "/predictions/%E0%A4%A", "truncated UTF-8"],
  ];
  for (const [method, path, what] of refused) {
    it(`refuses ${what}: ${method} ${JSON.stringify(path)}`, () => {
      expect(parseInferencePath(method, path)).to.be.undefined;
    });
  }
});
