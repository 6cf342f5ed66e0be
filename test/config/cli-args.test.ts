import { expect } from "chai";
import { CLI_USAGE, parseCliArgs, type CliArgs } from "../../src/config/cli-args.js";
import { catchConfigError } from "./support.js";

describe("parseCliArgs", () => {
  const cases: [string[], NodeJS.ProcessEnv, CliArgs][] = [
    [[], {}, { configFile: undefined, help: false, version: false }],
    [["--ts-config", "a.properties"], {}, { configFile: "a.properties", help: false, version: false }],
    [["--ts-config=b.properties"], {}, { configFile: "b.properties", help: false, version: false }],
    [["--ts-config", "a", "--ts-config", "b"], {}, { configFile: "b", help: false, version: false }],
    [
      [],
      { TS_CONFIG_FILE: "/env/config.properties" },
      { configFile: "/env/config.properties", help: false, version: false },
    ],
    [
      ["--ts-config", "flag.properties"],
      { TS_CONFIG_FILE: "env.properties" },
      { configFile: "flag.properties", help: false, version: false },
    ],
    [[], { TS_CONFIG_FILE: "" }, { configFile: undefined, help: false, version: false }],
    [["-h"], {}, { configFile: undefined, help: true, version: false }],
    [["--help"], {}, { configFile: undefined, help: true, version: false }],
    [["-v"], {}, { configFile: undefined, help: false, version: true }],
    [["--version"], {}, { configFile: undefined, help: false, version: true }],
    [["--ts-config", "c", "-h"], {}, { configFile: "c", help: true, version: false }],
  ];
  for (const [argv, env, expected] of cases) {
    it(`reads ${JSON.stringify(argv)} with env ${JSON.stringify(env)}`, () => {
      expect(parseCliArgs(argv, env)).to.deep.equal(expected);
    });
  }

  const refused: [string[], RegExp][] = [
    [["--ts-config"], /--ts-config <value>' argument missing/],
    [["--ts-config="], /--ts-config needs a FILE/],
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

  it("documents every option and TS_CONFIG_FILE in the usage text", () => {
    for (const word of [
      "--ts-config FILE",
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
