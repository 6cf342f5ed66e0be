import { expect } from "chai";
import { ConfigError, describeOrigin } from "../../src/config/errors.js";

describe("ConfigError", () => {
  it("names file, line, key and value before the problem", () => {
    const err = new ConfigError("is not one of prometheus, log, legacy", {
      file: "/etc/ts/config.properties",
      line: 3,
      key: "metrics_mode",
      value: "promethus",
    });
    expect(err.message).to.equal(
      '/etc/ts/config.properties line 3: metrics_mode: "promethus" is not one of prometheus, log, legacy',
    );
    expect(err).to.include({
      file: "/etc/ts/config.properties",
      line: 3,
      key: "metrics_mode",
      value: "promethus",
      envVar: undefined,
      problem: "is not one of prometheus, log, legacy",
      exitCode: 2,
      name: "ConfigError",
    });
    expect(err).to.be.instanceOf(Error);
  });

  it("names the env var instead of a line when the value came from the environment", () => {
    const err = new ConfigError("is not one of prometheus, log, legacy", {
      envVar: "TS_METRICS_MODE",
      key: "metrics_mode",
      value: "promethus",
    });
    expect(err.message).to.equal(
      'TS_METRICS_MODE (environment): metrics_mode: "promethus" is not one of prometheus, log, legacy',
    );
  });

  it("quotes the value so that stray spaces show", () => {
    const err = new ConfigError("is bad", { key: "k", value: "a b\t" });
    expect(err.message).to.equal('k: "a b\\t" is bad');
  });

  it("is just the problem when nothing else is known", () => {
    expect(new ConfigError("Unknown option '-x'").message).to.equal("Unknown option '-x'");
  });

  it("names a file without a line", () => {
    expect(new ConfigError("cannot read it", { file: "/x/config.properties" }).message).to.equal(
      "/x/config.properties: cannot read it",
    );
  });
});

describe("describeOrigin", () => {
  it("prefers the env var, then file and line, then the file", () => {
    expect(describeOrigin({ envVar: "TS_X", file: "/f", line: 2 })).to.equal("TS_X (environment)");
    expect(describeOrigin({ file: "/f", line: 2 })).to.equal("/f line 2");
    expect(describeOrigin({ file: "/f" })).to.equal("/f");
    expect(describeOrigin({})).to.equal("");
  });
});
