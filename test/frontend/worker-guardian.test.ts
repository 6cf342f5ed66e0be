import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, spawnCli, waitForStderr, writeCliConfig } from "../support/cli.js";
import { isGone } from "../support/processes.js";
import { until } from "../support/net.js";

interface Start {
  pid: number;
  childPid: number;
}

/** The CLI serving one model of two test workers, each with a child of its own. */
async function startService(
  dir: string,
  workerEnv: string,
): Promise<{ cli: ChildProcess; starts: Start[]; exited: Promise<number | null> }> {
  const pidFile = join(dir, `pids-${Math.random().toString(36).slice(2)}.jsonl`);
  const command = `${workerEnv} TW_SPAWN_CHILD=1 TW_PID_FILE=${pidFile} node test/fixtures/workers/test-worker.js --port {port}`;
  const config = writeCliConfig(dir, { m: { "1": { command, workers: 2 } } });
  const cli = spawnCli(["--ts-config", config], cleanEnv());
  const exited = new Promise<number | null>((resolve) => cli.on("exit", (code) => resolve(code)));
  let ready = 0;
  await waitForStderr(cli, /ready in \d+ ms[^]*ready in \d+ ms/);
  await until(() => {
    ready = readFileSync(pidFile, "utf8").trim().split("\n").length;
    return ready >= 2;
  }, "both workers' pids");
  const starts = readFileSync(pidFile, "utf8")
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l) as Start);
  return { cli, starts, exited };
}

function allGone(starts: Start[]): boolean {
  return starts.every((s) => isGone(s.pid) && isGone(s.childPid));
}

describe("no worker outlives the service", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => (dir = mkdtempSync(join(tmpdir(), "guardian-"))));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("SIGKILL of the service (as by the OOM killer): the guardian stops the workers and their children", async () => {
    const { cli, starts, exited } = await startService(dir, "");
    expect(
      starts.some((s) => isGone(s.pid) || isGone(s.childPid)),
      "a worker gone before the kill",
    ).to.equal(false);
    cli.kill("SIGKILL");
    await exited;
    await until(() => allGone(starts), "the workers to be gone", 15_000);
  });

  it("SIGKILL while the workers ignore SIGTERM: the guardian follows up with SIGKILL", async () => {
    const { cli, starts, exited } = await startService(dir, "TW_IGNORE_SIGTERM=1");
    cli.kill("SIGKILL");
    await exited;
    await until(() => allGone(starts), "the workers to be gone", 20_000);
  });

  for (const signal of ["SIGHUP", "SIGQUIT", "SIGUSR2", "SIGTERM", "SIGINT"] as const) {
    it(`${signal}: stops gracefully (exit 0) and leaves no worker`, async () => {
      const { cli, starts, exited } = await startService(dir, "");
      cli.kill(signal);
      expect(await exited).to.equal(0);
      await until(() => allGone(starts), "the workers to be gone", 5000);
    });
  }

  it("a second Ctrl-C during the graceful stop: exits at once, killing the workers", async () => {
    // Workers that ignore SIGTERM make the graceful stop wait its whole grace period (5 s).
    const { cli, starts, exited } = await startService(dir, "TW_IGNORE_SIGTERM=1");
    cli.kill("SIGINT");
    await waitForStderr(cli, /SIGINT: stopping/);
    cli.kill("SIGINT");
    expect(await exited).to.equal(1);
    await until(() => allGone(starts), "the workers to be gone", 2000);
  });
});
