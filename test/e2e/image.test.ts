import { expect } from "chai";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT, cleanEnv, waitForStderr } from "../support/cli.js";
import { keyValues, readDockerfile, type DockerInstruction } from "../support/dockerfile.js";
import { tempDir } from "../support/temp.js";

// The Dockerfile's steps, run as written but without Docker (there is no container runtime here):
// its build stage's RUN in the repository, its runtime stage's COPY, RUN and ENV into a directory
// that stands for the image's root, then its ENTRYPOINT and HEALTHCHECK. What cannot run here is
// said where it is skipped: the base image's `npm ci` of dev dependencies (the repository's own
// node_modules is its result), apt-get (tini comes from Debian here too, and must be installed),
// and `npm cache clean --force`, which would empty this machine's npm cache.

/** An environment for npm without the variables `npm test` sets, which would point it at this repository. */
function npmEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(cleanEnv()).filter(([key]) => !/^npm_/i.test(key)));
}

/** Runs a Dockerfile RUN command with `sh -c`, as the shell form does; fails naming it. */
function runShell(command: string, cwd: string, env: NodeJS.ProcessEnv): void {
  const result = spawnSync("sh", ["-c", command], {
    cwd,
    env,
    encoding: "utf8",
    maxBuffer: 64 * 1024 * 1024,
  });
  expect(result.status, `RUN ${command}\n${result.stdout}\n${result.stderr}`).to.equal(0);
}

/** Sends SIGTERM (unless the child has exited) and resolves with its exit code. */
function stopped(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  return exited;
}

/** Runs the HEALTHCHECK command as Docker would (exec form), against `url`; resolves with its exit code. */
function healthcheck(argv: string[], url: string): Promise<number | null> {
  const [command = "", ...args] = argv;
  const child = spawn(command, args, {
    env: cleanEnv({ SERVE_METRICS_HEALTHCHECK_URL: url }),
    stdio: "ignore",
  });
  return new Promise((resolve) => child.once("exit", resolve));
}

describe("the image's install and start steps, without Docker", function () {
  const { stages } = readDockerfile();
  const [build = [], runtime = []] = [stages.at(0), stages.at(-1)];
  const work = tempDir("image-");
  /** Where the image's absolute paths land here. */
  const paths: [string, string][] = [
    ["/opt/serve-metrics", join(work, "root/opt/serve-metrics")],
    ["/usr/local/bin", join(work, "root/usr/local/bin")],
    ["/etc/serve-metrics", join(work, "root/etc/serve-metrics")],
    ["/home/node", join(work, "root/home/node")],
    ["/pkg", join(work, "pkg")],
  ];
  const here = (text: string): string =>
    paths.reduce((t, [image, local]) => t.replaceAll(image, local), text);
  const appDir = here("/opt/serve-metrics");
  const imageEnv: NodeJS.ProcessEnv = {};
  const children: ChildProcess[] = [];

  const runsOf = (stage: DockerInstruction[]): string[] =>
    stage.filter((i) => i.op === "RUN").map((i) => i.args);
  const json = (stage: DockerInstruction[], op: string): string[] => {
    const args = stage.find((i) => i.op === op)?.args ?? "";
    return JSON.parse(/(\[.*\])$/.exec(args)?.[1] ?? "null") as string[];
  };

  before(function () {
    this.timeout(300_000);
    // What the base image and WORKDIR make; the Dockerfile's RUNs make /pkg and /etc/serve-metrics.
    for (const dir of ["/opt/serve-metrics", "/usr/local/bin", "/home/node"])
      mkdirSync(here(dir), { recursive: true });
    // Build stage. Its first RUN (`npm ci --ignore-scripts`) made the repository's node_modules.
    const [install, buildAndPack] = runsOf(build);
    expect(install).to.match(/^npm ci --ignore-scripts\b/);
    runShell(here(buildAndPack ?? ""), REPO_ROOT, npmEnv());
    // Runtime stage, instruction by instruction.
    for (const { op, args } of runtime) {
      if (op === "COPY") {
        const [, from = "", to = ""] = /^--from=build (\S+) (\S+)$/.exec(args) ?? [];
        expect(from, `COPY ${args}`).to.not.equal("");
        cpSync(here(from), join(appDir, to), { recursive: true });
      } else if (op === "RUN" && args.startsWith("apt-get ")) {
        continue; // tini from Debian: checked below, where the entrypoint starts it
      } else if (op === "RUN") {
        expect(args).to.include("npm cache clean --force");
        const command = here(args.replace("npm cache clean --force", "true"));
        // The cache npm ci filled first, then the registry for what it lacks, as package.test.ts.
        runShell(command, appDir, { ...npmEnv(), npm_config_prefer_offline: "true" });
      } else if (op === "ENV") {
        for (const [key, value] of keyValues(args)) imageEnv[key] = here(value);
      }
    }
  });

  afterEach(async function () {
    await Promise.all(children.splice(0).map(stopped));
  });

  it("installs exactly the lockfile's versions of the production dependencies, and no dev dependency", function () {
    type Lock = { packages: Record<string, { version?: string; dev?: boolean }> };
    const lock = JSON.parse(readFileSync(join(REPO_ROOT, "package-lock.json"), "utf8")) as Lock;
    const installed = JSON.parse(
      readFileSync(join(appDir, "node_modules/.package-lock.json"), "utf8"),
    ) as Lock;
    const entries = Object.entries(installed.packages);
    expect(entries.length).to.be.greaterThan(20);
    const drifted = entries
      .filter(([path, entry]) => lock.packages[path]?.version !== entry.version)
      .map(
        ([path, entry]) => `${path} ${String(entry.version)} (lock: ${String(lock.packages[path]?.version)})`,
      );
    expect(drifted).to.deep.equal([]);
    expect(entries.filter(([path]) => lock.packages[path]?.dev === true).map(([path]) => path)).to.deep.equal(
      [],
    );
    for (const tool of ["typescript", "tsx", "mocha"])
      expect(existsSync(join(appDir, "node_modules", tool))).to.equal(false);
  });

  it("puts serve-metrics on PATH and writes the default config, which binds all interfaces", function () {
    const result = spawnSync(join(here("/usr/local/bin"), "serve-metrics"), ["--version"], {
      env: cleanEnv(),
      encoding: "utf8",
    });
    const { version } = JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as {
      version: string;
    };
    expect(result.stdout).to.equal(`serve-metrics ${version}\n`);
    expect(readFileSync(imageEnv.TS_CONFIG_FILE ?? "", "utf8")).to.equal(
      "metrics_address=http://0.0.0.0:8082\n",
    );
    expect(imageEnv.NODE_ENV).to.equal("production");
  });

  it("starts as its ENTRYPOINT says, under tini; the HEALTHCHECK passes while it serves and fails once SIGTERM stopped it (status 0)", async function () {
    this.timeout(60_000);
    const tini = spawnSync("tini", ["--version"]);
    if (tini.error !== undefined) {
      if (process.env.CI === "true") throw new Error("tini is missing (Debian's tini; .ci/run installs it)");
      this.skip();
    }
    const [init = "", ...entrypoint] = json(runtime, "ENTRYPOINT");
    expect(init).to.equal("/usr/bin/tini");
    // The default config's 0.0.0.0:8082 may be taken on a shared machine: the same file, on a free loopback port.
    writeFileSync(imageEnv.TS_CONFIG_FILE ?? "", "metrics_address=http://127.0.0.1:0\nnumber_of_gpu=0\n");
    const child = spawn("tini", entrypoint, {
      cwd: here("/home/node"),
      env: cleanEnv({
        ...imageEnv,
        PATH: `${here("/usr/local/bin")}:${process.env.PATH ?? ""}`,
        // Not PID 1 here: as a subreaper, orphans are re-parented to tini as in the container.
        TINI_SUBREAPER: "1",
      }),
    });
    children.push(child);
    const [, url = ""] = await waitForStderr(child, /metrics API listening on (\S+)\n/);
    const check = json(runtime, "HEALTHCHECK");
    expect(await healthcheck(check, url)).to.equal(0);
    expect(await stopped(child)).to.equal(0);
    expect(await healthcheck(check, url)).to.equal(1);
  });
});
