import { expect } from "chai";
import { ConfigError } from "../../src/config/errors.js";
import { parseModels } from "../../src/config/models.js";

const origin = { file: "/c/config.properties", line: 4, key: "models", value: "…" };

function parse(value: unknown): { models: ReturnType<typeof parseModels>; warnings: string[] } {
  const warnings: string[] = [];
  const models = parseModels(typeof value === "string" ? value : JSON.stringify(value), origin, (m) =>
    warnings.push(m),
  );
  return { models, warnings };
}

describe("parseModels (the models= key)", () => {
  it("reads url and command entries, with workers defaulting to 1", () => {
    const { models } = parse({
      demo: { "1.0": { command: "node w.js --port {port}", workers: 2 } },
      remote: { "2": { url: "http://10.0.0.5:9000/" } },
    });
    expect(models).to.deep.equal([
      {
        model: "demo",
        version: "1.0",
        isDefault: true,
        workers: 2,
        url: undefined,
        command: "node w.js --port {port}",
        responseTimeoutSeconds: undefined,
        startupTimeoutSeconds: undefined,
      },
      {
        model: "remote",
        version: "2",
        isDefault: true,
        workers: 1,
        url: "http://10.0.0.5:9000",
        command: undefined,
        responseTimeoutSeconds: undefined,
        startupTimeoutSeconds: undefined,
      },
    ]);
  });

  it("makes the version marked defaultVersion the default, else the first listed", () => {
    const marked = parse({
      m: { "1": { url: "http://a" }, "2": { url: "http://b", defaultVersion: true } },
    }).models;
    expect(marked.map((m) => [m.version, m.isDefault])).to.deep.equal([
      ["1", false],
      ["2", true],
    ]);
    const first = parse({ m: { b: { url: "http://a" }, a: { url: "http://b" } } }).models;
    expect(first.map((m) => [m.version, m.isDefault])).to.deep.equal([
      ["b", true],
      ["a", false],
    ]);
  });

  it("skips TorchServe .mar entries with a warning instead of refusing the file", () => {
    const { models, warnings } = parse({ mnist: { "1.0": { marName: "mnist.mar", minWorkers: 1 } } });
    expect(models).to.deep.equal([]);
    expect(warnings).to.deep.equal([
      'model mnist version 1.0: a TorchServe model archive entry without "url" or "command" is not served',
    ]);
  });

  it("reads TorchServe's responseTimeout and startupTimeout, in seconds", () => {
    const [m] = parse({ m: { "1": { command: "c", responseTimeout: 5, startupTimeout: 0.5 } } }).models;
    expect([m?.responseTimeoutSeconds, m?.startupTimeoutSeconds]).to.deep.equal([5, 0.5]);
  });

  it("reads an empty value as no models", () => {
    expect(parse("  ").models).to.deep.equal([]);
  });

  const refusals: [string, unknown, RegExp][] = [
    [
      "a zero responseTimeout",
      { m: { "1": { url: "http://x", responseTimeout: 0 } } },
      /model m version 1: responseTimeout must be a number of seconds/,
    ],
    [
      "a startupTimeout given as text",
      { m: { "1": { url: "http://x", startupTimeout: "60" } } },
      /model m version 1: startupTimeout must be a number of seconds .*got "60"/,
    ],
    ["invalid JSON", "{demo:", /is not valid JSON/],
    ["a list", "[]", /must be a JSON object/],
    [
      "a model name with a slash",
      { "a/b": { "1": { url: "http://x" } } },
      /model name "a\/b" cannot be used in a URL path/,
    ],
    ["a model without versions", { m: {} }, /model m: has no versions/],
    [
      "both url and command",
      { m: { "1": { url: "http://x", command: "c" } } },
      /model m version 1: give exactly one of "url" and "command"/,
    ],
    ["neither url nor command", { m: { "1": { workers: 2 } } }, /give exactly one of "url" and "command"/],
    [
      "a url without a scheme",
      { m: { "1": { url: "localhost:9000" } } },
      /url must be an http:\/\/ or https:\/\/ base URL/,
    ],
    [
      "zero workers",
      { m: { "1": { url: "http://x", workers: 0 } } },
      /workers must be an integer from 1 to 1024/,
    ],
    ["fractional workers", { m: { "1": { url: "http://x", workers: 1.5 } } }, /workers must be an integer/],
    ["a misspelled key", { m: { "1": { url: "http://x", worker: 2 } } }, /unknown key "worker"/],
    [
      "two defaults",
      {
        m: { "1": { url: "http://a", defaultVersion: true }, "2": { url: "http://b", defaultVersion: true } },
      },
      /versions 1, 2 are all marked defaultVersion/,
    ],
    ["an empty command", { m: { "1": { command: " " } } }, /command must be a non-empty shell command/],
  ];
  for (const [what, value, message] of refusals) {
    it(`refuses ${what}, naming file, line and key`, () => {
      let caught: unknown;
      try {
        parse(value);
      } catch (err) {
        caught = err;
      }
      expect(caught).to.be.instanceOf(ConfigError);
      expect((caught as ConfigError).message)
        .to.match(/^\/c\/config\.properties line 4: models: /)
        .and.to.match(message);
    });
  }
});
