import { expect } from "chai";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "../support/cli.js";
import { parseUnit } from "../support/systemd-unit.js";
import { tempDir } from "../support/temp.js";

// examples/serve-metrics.service as systemd reads it: `systemd-analyze verify` and the exposure
// rating of `systemd-analyze security --offline=true` (no systemd needs to run), and the sandbox
// settings checked against what the service needs. test/e2e/package.test.ts verifies it again
// with the real installed command at ExecStart.

const UNIT_TEXT = readFileSync(join(REPO_ROOT, "examples/serve-metrics.service"), "utf8");

/** Skips (fails under CI=true) unless systemd-analyze runs here. */
function requireSystemdAnalyze(ctx: Mocha.Context): void {
  if (spawnSync("systemd-analyze", ["--version"]).error === undefined) return;
  if (process.env.CI === "true")
    throw new Error("systemd-analyze is missing (Debian's systemd); CI=true forbids skipping");
  ctx.skip();
}

/** The unit written to a temp dir, with its ExecStart and WorkingDirectory on a stand-in install there. */
function unitHere(): string {
  const dir = tempDir("unit-");
  const install = join(dir, "opt/serve-metrics");
  mkdirSync(join(install, "node_modules/.bin"), { recursive: true });
  const bin = join(install, "node_modules/.bin/serve-metrics");
  writeFileSync(bin, "#!/bin/sh\nexit 0\n");
  chmodSync(bin, 0o755);
  const file = join(dir, "serve-metrics.service");
  writeFileSync(file, UNIT_TEXT.replaceAll("/opt/serve-metrics", install));
  return file;
}

describe("examples/serve-metrics.service under systemd-analyze", function () {
  const service = parseUnit(UNIT_TEXT).get("Service") ?? new Map<string, string[]>();
  const value = (key: string): string | undefined => service.get(key)?.at(-1);
  const values = (key: string): string[] => service.get(key) ?? [];

  it("passes systemd-analyze verify", function () {
    requireSystemdAnalyze(this);
    const result = spawnSync("systemd-analyze", ["verify", unitHere()], { encoding: "utf8" });
    expect(`${result.stdout}${result.stderr}`).to.equal("");
    expect(result.status).to.equal(0);
  });

  it('is rated "OK" or better by systemd-analyze security --offline=true', function () {
    requireSystemdAnalyze(this);
    const result = spawnSync("systemd-analyze", ["security", "--offline=true", "--no-pager", unitHere()], {
      encoding: "utf8",
    });
    const rating = /Overall exposure level for \S+: (\d+\.\d+) (\w+)/.exec(result.stdout);
    expect(rating, result.stdout + result.stderr).to.not.equal(null);
    const [, level = "", word = ""] = rating ?? [];
    expect(["SAFE", "OK"], `exposure ${level} ${word}`).to.include(word);
    expect(Number(level)).to.be.below(2);
  });

  it("keeps what the service needs: JIT, network, /proc/stat and /proc/meminfo, reading /home, spawning workers", function () {
    expect(value("MemoryDenyWriteExecute") ?? "false").to.equal("false"); // V8 writes executable memory
    expect(value("ProcSubset") ?? "all").to.equal("all"); // host metrics read /proc/stat, /proc/meminfo
    expect(value("PrivateNetwork") ?? "false").to.equal("false");
    expect(value("ProtectHome")).to.be.oneOf(["read-only", undefined]); // TorchServe logs may be under /home
    expect(value("RestrictAddressFamilies")?.split(/\s+/)).to.include.members(["AF_INET", "AF_INET6"]);
    expect(values("SystemCallFilter")).to.include("@system-service"); // fork, exec, kill, pipes
    expect(values("SystemCallFilter").join(" ")).to.not.match(/~[^\n]*@(process|signal|network-io|ipc)\b/);
  });

  it("gives log mode one writable directory and points METRICS_LOCATION there", function () {
    expect(value("ProtectSystem")).to.equal("strict");
    const logs = value("LogsDirectory");
    expect(logs).to.be.a("string");
    expect(values("Environment")).to.include(`METRICS_LOCATION=/var/log/${logs ?? ""}`);
  });
});
