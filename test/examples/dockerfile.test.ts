import { expect } from "chai";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { validate, ValidationSeverity, type ValidatorSettings } from "dockerfile-utils";
import { REPO_ROOT } from "../support/cli.js";
import { enginesAllowMajor, keyValues, readDockerfile } from "../support/dockerfile.js";

// The Dockerfile as a reviewer reads it. No container runtime runs here: test/e2e/image.test.ts
// runs its install and start steps without one.

/** Every check dockerfile-utils (the linter of VS Code's Docker support) has, as an error. */
const STRICT: ValidatorSettings = {
  deprecatedMaintainer: ValidationSeverity.ERROR,
  directiveCasing: ValidationSeverity.ERROR,
  emptyContinuationLine: ValidationSeverity.ERROR,
  instructionCasing: ValidationSeverity.ERROR,
  instructionCmdMultiple: ValidationSeverity.ERROR,
  instructionEntrypointMultiple: ValidationSeverity.ERROR,
  instructionHealthcheckMultiple: ValidationSeverity.ERROR,
  instructionJSONInSingleQuotes: ValidationSeverity.ERROR,
  instructionWorkdirRelative: ValidationSeverity.ERROR,
};

const IMAGE_CONFIG = "/etc/serve-metrics/config.properties";

describe("the Dockerfile", function () {
  const { text, instructions, argDefaults, stages } = readDockerfile();
  const pkg = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
    version: string;
    engines: { node: string };
    bin: Record<string, string>;
  };
  const runtime = stages.at(-1) ?? [];
  const ofRuntime = (op: string): string[] => runtime.filter((i) => i.op === op).map((i) => i.args);
  const runtimeRuns = (): string => ofRuntime("RUN").join("\n");

  it("passes dockerfile-utils' linter with every check an error", function () {
    const problems = validate(text, STRICT).map(
      (d) => `line ${d.range.start.line + 1}: ${typeof d.message === "string" ? d.message : d.message.value}`,
    );
    expect(problems).to.deep.equal([]);
  });

  it("the linter finds what it should (a broken HEALTHCHECK, a relative WORKDIR), so its silence means something", function () {
    const broken = text
      .replace(/^HEALTHCHECK [^\n]*\\\n[^\n]*\n/m, "HEALTHCHECK --interval=30 CMD\n")
      .replace("WORKDIR /home/node", "WORKDIR home/node");
    expect(broken).to.not.equal(text);
    expect(validate(broken, STRICT).length).to.be.greaterThanOrEqual(2);
  });

  it("builds and runs on one Node major that package.json's engines allow, 26 (the Active LTS) by default", function () {
    const images = instructions
      .filter((i) => i.op === "FROM")
      .map((i) =>
        (i.args.split(/\s+/)[0] ?? "").replace(
          /\$\{(\w+)\}/g,
          (_, name: string) => argDefaults.get(name) ?? "",
        ),
      );
    expect(images).to.have.length.greaterThan(1);
    const majors = images.map((image) => /^node:(\d+)(?:[-.]|$)/.exec(image)?.[1]);
    expect(
      majors.every((m) => m === majors[0]),
      images.join(", "),
    ).to.equal(true);
    expect(majors[0]).to.equal("26");
    expect(enginesAllowMajor(pkg.engines.node, Number(majors[0]))).to.equal(true);
  });

  it("installs production dependencies from the lockfile (npm ci --omit=dev), not the tarball's ranges", function () {
    expect(runtimeRuns()).to.match(/\bnpm ci\b[^\n]*--omit=dev/);
    expect(runtimeRuns()).to.not.match(/\bnpm (install|i)\b/);
    const copied = ofRuntime("COPY").join("\n");
    expect(stages[0]?.map((i) => i.args).join("\n")).to.include("package-lock.json /pkg/package/");
    expect(copied).to.include("--from=build /pkg/package/");
  });

  it("runs under tini, installed from Debian, which reaps orphans and forwards signals", function () {
    expect(runtimeRuns()).to.match(/apt-get install -y --no-install-recommends tini\b/);
    expect(runtimeRuns()).to.include("rm -rf /var/lib/apt/lists/*");
    expect(ofRuntime("ENTRYPOINT")).to.deep.equal(['["/usr/bin/tini", "--", "serve-metrics"]']);
    expect(Object.keys(pkg.bin)).to.include("serve-metrics");
    expect(runtimeRuns()).to.include("ln -s /opt/serve-metrics/dist/cli.js /usr/local/bin/serve-metrics");
  });

  it("has a HEALTHCHECK that needs no curl: node asks the metrics URL, with a timeout", function () {
    const [healthcheck] = ofRuntime("HEALTHCHECK");
    expect(healthcheck).to.be.a("string");
    const cmd = /\bCMD (\[.*\])$/.exec(healthcheck ?? "")?.[1];
    const argv = JSON.parse(cmd ?? "null") as string[];
    expect(argv.slice(0, 2)).to.deep.equal(["node", "-e"]);
    expect(argv[2])
      .to.include("process.env.SERVE_METRICS_HEALTHCHECK_URL")
      .and.include("AbortSignal.timeout(");
    expect(text).to.not.match(/\b(curl|wget)\b(?! in the image)/);
    expect(keyValues(ofRuntime("ENV").join(" ")).get("SERVE_METRICS_HEALTHCHECK_URL")).to.equal(
      "http://127.0.0.1:8082/metrics",
    );
  });

  it("runs as a fixed non-root uid and gid, by number (Kubernetes' runAsNonRoot can verify it)", function () {
    const users = ofRuntime("USER");
    expect(users).to.have.length(1);
    expect(users[0]).to.match(/^[1-9]\d*:[1-9]\d*$/);
  });

  it("sets NODE_ENV=production and the default config, which binds all interfaces", function () {
    const env = keyValues(ofRuntime("ENV").join(" "));
    expect(env.get("NODE_ENV")).to.equal("production");
    expect(env.get("TS_CONFIG_FILE")).to.equal(IMAGE_CONFIG);
    expect(runtimeRuns()).to.include(`'metrics_address=http://0.0.0.0:8082' > ${IMAGE_CONFIG}`);
  });

  it("carries the OCI labels, with package.json's version", function () {
    const labels = keyValues(ofRuntime("LABEL").join(" "));
    for (const key of ["title", "description", "licenses", "version", "revision"])
      expect(labels.get(`org.opencontainers.image.${key}`), key)
        .to.be.a("string")
        .and.not.equal("");
    expect(labels.get("org.opencontainers.image.licenses")).to.equal("Apache-2.0");
    expect(labels.get("org.opencontainers.image.version")).to.equal("${VERSION}");
    expect(ofRuntime("ARG")).to.include(`VERSION=${pkg.version}`);
  });

  it("copies from the build context only what .dockerignore lets in", function () {
    const ignore = readFileSync(join(REPO_ROOT, ".dockerignore"), "utf8").split("\n");
    const allowed = ignore
      .filter((line) => line.startsWith("!"))
      .map((line) => line.slice(1).replace(/\/$/, ""));
    expect(ignore).to.include("*");
    const sources = instructions
      .filter((i) => i.op === "COPY" && !i.args.startsWith("--from"))
      .flatMap((i) => i.args.split(/\s+/).slice(0, -1))
      .map((source) => source.replace(/^\.\//, "").replace(/\/$/, ""));
    expect(sources).to.have.length.greaterThan(0);
    expect(sources.filter((source) => !allowed.includes(source))).to.deep.equal([]);
  });
});
