import { expect } from "chai";
import { CLI_USAGE, parseCliArgs, type CliArgs } from "../../src/config/cli-args.js";
import { catchConfigError } from "./support.js";

describe("parseCliArgs", () => {
  const none: CliArgs = {
    configFile: undefined,
    otelConfigFile: undefined,
    stdin: false,
    help: false,
    version: false,
  };
  const cases: [string[], NodeJS.ProcessEnv, CliArgs][] = [
    [[], {}, none],
    [["--ts-config", "a.properties"], {}, { ...none, configFile: "a.properties" }],
    [["--ts-config=b.properties"], {}, { ...none, configFile: "b.properties" }],
    [["--ts-config", "a", "--ts-config", "b"], {}, { ...none, configFile: "b" }],
    [[], { TS_CONFIG_FILE: "/env/config.properties" }, { ...none, configFile: "/env/config.properties" }],
    [
      ["--ts-config", "flag.properties"],
      { TS_CONFIG_FILE: "env.properties" },
      { ...none, configFile: "flag.properties" },
    ],
    [[], { TS_CONFIG_FILE: "" }, none],
    [["-h"], {}, { ...none, help: true }],
    [["--help"], {}, { ...none, help: true }],
    [["-v"], {}, { ...none, version: true }],
    [["--version"], {}, { ...none, version: true }],
    [["--ts-config", "c", "-h"], {}, { ...none, configFile: "c", help: true }],
    [["--otel-config", "otel-config.yaml"], {}, { ...none, otelConfigFile: "otel-config.yaml" }],
    [
      ["--otel-config=o.yaml", "--ts-config", "c"],
      {},
      { ...none, configFile: "c", otelConfigFile: "o.yaml" },
    ],
    [[], { OTEL_CONFIG_FILE: "/env/otel.yaml" }, { ...none, otelConfigFile: "/env/otel.yaml" }],
    [
      ["--otel-config", "flag.yaml"],
      { OTEL_CONFIG_FILE: "env.yaml" },
      { ...none, otelConfigFile: "flag.yaml" },
    ],
    [[], { OTEL_CONFIG_FILE: " " }, none],
    // Each flag has its own variable: OTEL_CONFIG_FILE never stands in for --ts-config, nor the reverse.
    [
      [],
      { OTEL_CONFIG_FILE: "o.yaml", TS_CONFIG_FILE: "c" },
      { ...none, configFile: "c", otelConfigFile: "o.yaml" },
    ],
  ];
  for (const [argv, env, expected] of cases) {
    it(`reads ${JSON.stringify(argv)} with env ${JSON.stringify(env)}`, () => {
      expect(parseCliArgs(argv, env)).to.deep.equal(expected);
    });
  }

  const refused: [string[], RegExp][] = [
    [["--ts-config"], /--ts-config <value>' argument missing/],
    [["--ts-config="], /--ts-config needs a FILE/],
    [["--otel-config"], /--otel-config <value>' argument missing/],
    [["--otel-config="], /--otel-config needs a FILE/],
    [["--ts-config", "--help"], /'--ts-config' argument is ambiguous/],
    [["--model-store", "/models"], /Unknown option '--model-store'/],
    [["-x"], /Unknown option '-x'/],
    [["config.properties"], /Unexpected argument 'config.properties'/],
    [["--help=yes"], /does not take an argument/],
  ];
  for (const [argv, reason] of refused) {
    it(`refuses ${JSON.stringify(argv)} with exit code 2`, () => {
      const err = catchConfigError(() => parseCliArgs(argv, {}));
      expect(err.message).to.match(reason);
      expect(err.message).not.to.include("\n");
    });
  }

  it("points to --help after a parse error", () => {
    expect(catchConfigError(() => parseCliArgs(["-x"], {})).message).to.match(
      /; run serve-metrics --help for usage$/,
    );
  });

  it("documents every option and environment variable in the usage text", () => {
    for (const word of [
      "--ts-config FILE",
      "--otel-config FILE",
      "OTEL_CONFIG_FILE",
      "OTEL_METRICS_EXPORTER",
      "OTEL_EXPORTER_OTLP_*",
      "-h, --help",
      "-v, --version",
      "TS_CONFIG_FILE",
      "TS_ENABLE_ENVVARS_CONFIG",
    ]) {
      expect(CLI_USAGE).to.include(word);
    }
    expect(CLI_USAGE.endsWith("\n")).to.be.true;
  });
});
