import { expect } from "chai";
import { isGone } from "../support/processes.js";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

import {
  ManagedWorker,
  workerName,
  type ManagedWorkerOptions,
  type WorkerExit,
  type WorkerReady,
} from "../../src/frontend/worker-process.js";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { request } from "../support/http.js";
import { REPO_ROOT } from "../support/cli.js";

const TEST_WORKER = fileURLToPath(new URL("../fixtures/workers/test-worker.js", import.meta.url));
const NODE_WORKER = `"${process.execPath}" "${TEST_WORKER}" --port {port}`;

async function waitFor(what: string, condition: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

interface StartRecord {
  pid: number;
  childPid?: number;
  port: number;
}

function readStarts(pidFile: string): StartRecord[] {
  if (!existsSync(pidFile)) return [];
  return readFileSync(pidFile, "utf8")
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => JSON.parse(l) as StartRecord);
}

interface Harness {
  worker: ManagedWorker;
  logger: MemoryLogger;
  readies: WorkerReady[];
  exits: (WorkerExit & { at: number })[];
  metrics: { line: string; workerName: string }[];
  /** `ready <name>` and `exit <name> <code> <signal>`, in order. */
  events: string[];
  /** Called at the end of onExit. */
  afterExit: () => void;
  pidFile: string;
}

let tmp: string;
let workers: ManagedWorker[];
let pidFiles: string[];

beforeEach(() => {
  tmp = mkdtempSync(path.join(os.tmpdir(), "worker-process-"));
  workers = [];
  pidFiles = [];
});

afterEach(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  // A safety net for a failing test: nothing the test worker started may outlive the test.
  for (const file of pidFiles) {
    for (const { pid, childPid } of readStarts(file)) {
      for (const p of [pid, childPid]) {
        try {
          if (p !== undefined) process.kill(p, "SIGKILL");
        } catch {
          // Already gone, as it should be.
        }
      }
    }
  }
  rmSync(tmp, { recursive: true, force: true });
});

function harness(env: Record<string, string> = {}, options: Partial<ManagedWorkerOptions> = {}): Harness {
  const logger = createMemoryLogger();
  const pidFile = path.join(tmp, `pids-${pidFiles.length}.jsonl`);
  pidFiles.push(pidFile);
  const readies: WorkerReady[] = [];
  const exits: Harness["exits"] = [];
  const metrics: Harness["metrics"] = [];
  const events: string[] = [];
  const worker = new ManagedWorker({
    model: "m",
    version: "1",
    command: NODE_WORKER,
    env: { ...process.env, TW_PID_FILE: pidFile, ...env },
    logger,
    onMetricLine: (line, name) => metrics.push({ line, workerName: name }),
    onReady: (ready) => {
      readies.push(ready);
      events.push(`ready ${ready.workerName}`);
    },
    onExit: (info) => {
      exits.push({ ...info, at: performance.now() });
      events.push(`exit ${info.workerName} ${String(info.code)} ${String(info.signal)}`);
      h.afterExit();
    },
    readyTimeoutMs: 10_000,
    pingIntervalMs: 20,
    backoff: { initialMs: 50, maxMs: 400 },
    stopGraceMs: 300,
    ...options,
  });
  const h: Harness = { worker, logger, readies, exits, metrics, events, afterExit: () => undefined, pidFile };
  workers.push(h.worker);
  return h;
}

const restartDelays = (exits: readonly WorkerExit[]): number[] => exits.map((e) => e.restartInMs);

describe("ManagedWorker", () => {
  it("becomes ready on a free port and measures WorkerLoadTime from spawn to the first 200 on /ping", async () => {
    const h = harness({ TW_PING_DELAY_MS: "300" });
    const ready = await h.worker.start();

    expect(ready.loadTimeMs).to.be.at.least(300).and.below(10_000);
    expect(ready.workerName).to.equal(workerName(ready.port, "m", "1"));
    expect(ready.workerName).to.equal(`W-${ready.port}-m_1`);
    expect(ready.url).to.equal(`http://127.0.0.1:${ready.port}`);
    expect(h.worker.url).to.equal(ready.url);
    expect(h.worker.workerName).to.equal(ready.workerName);
    expect(h.readies).to.deep.equal([ready]);
    expect(readStarts(h.pidFile).map((s) => s.port)).to.deep.equal([ready.port]);
    expect((await request(`${ready.url}/ping`)).status).to.equal(200);
    expect(await h.worker.whenReady()).to.equal(ready);
  });

  it("routes [METRICS] lines to onMetricLine and other lines to the log, with the worker name", async () => {
    const h = harness({ TW_METRIC_LINES: "3" });
    const { workerName: name, port } = await h.worker.start();
    await waitFor("3 metric lines", () => h.metrics.length === 3);
    await waitFor("the stderr line", () => h.logger.lines.some((l) => l.includes("test worker stderr line")));

    expect(h.metrics.map((m) => m.workerName)).to.deep.equal([name, name, name]);
    expect(h.metrics[0]!.line).to.match(/^\[METRICS\]PredictionTime\.Milliseconds:0\.5\|#ModelName:m,/);
    expect(h.logger.lines).to.include(`INFO [${name}] test worker listening on port ${port}`);
    expect(h.logger.lines).to.include(`INFO [${name}] test worker stderr line`);
    expect(h.logger.lines.filter((l) => l.includes("[METRICS]"))).to.deep.equal([]);
  });

  it("logs a last line that has no newline when the worker exits", async () => {
    const h = harness({ TW_EXIT_AFTER_MS: "0" });
    void h.worker.start().catch(() => undefined);
    await waitFor("the partial line", () =>
      h.logger.lines.some((l) => /^INFO \[W-\d+-m_1\] last words$/.test(l)),
    );
  });

  it("replaces every {port} in the command", async () => {
    const h = harness({}, { command: "echo {port} {port}; exit 3" });
    void h.worker.start().catch(() => undefined);
    await waitFor("the echo", () => h.logger.lines.some((l) => l.startsWith("INFO [W-")));
    const m = /^INFO \[W-(\d+)-m_1\] (\d+) (\d+)$/.exec(
      h.logger.lines.find((l) => l.startsWith("INFO [W-")) ?? "",
    );
    expect(m, h.logger.lines.join("\n")).to.not.equal(null);
    expect([m![2], m![3]]).to.deep.equal([m![1], m![1]]);
    // The start is logged with the command as run, not the template.
    const port = m![1]!;
    expect(h.logger.lines).to.include(
      `INFO starting worker of m 1 (W-${port}-m_1): echo ${port} ${port}; exit 3`,
    );
  });

  it("restarts a crashed worker on a new port: onExit, then onReady again, and kills its children", async () => {
    const h = harness({ TW_EXIT_AFTER_READY_MS: "100", TW_SPAWN_CHILD: "1" });
    const nextReady: Promise<WorkerReady>[] = [];
    h.afterExit = () => nextReady.push(h.worker.whenReady());

    const first = await h.worker.start();
    await waitFor("a second ready", () => h.readies.length >= 2);
    await h.worker.stop();

    const second = h.readies[1]!;
    expect(second.port).to.not.equal(first.port);
    expect(second.workerName).to.equal(`W-${second.port}-m_1`);
    expect(h.events.slice(0, 3)).to.deep.equal([
      `ready ${first.workerName}`,
      `exit ${first.workerName} 3 null`,
      `ready ${second.workerName}`,
    ]);
    expect(await nextReady[0]).to.equal(second);
    const deaths = h.logger.lines.filter((l) => l.startsWith(`WARN [${first.workerName}] exited`));
    expect(deaths).to.deep.equal([`WARN [${first.workerName}] exited with code 3; restarting in 50 ms`]);
    const [start1] = readStarts(h.pidFile);
    expect(start1!.port).to.equal(first.port);
    await waitFor("the crashed worker's child to be gone", () => isGone(start1!.childPid!), 2000);
  });

  it("backs off exponentially between quick crashes, up to the cap, warning once for the whole crash loop", async () => {
    const h = harness({}, { command: "exit 3" });
    void h.worker.start().catch(() => undefined);
    await waitFor("6 crashes", () => h.exits.length >= 6);
    await h.worker.stop();

    const delays = restartDelays(h.exits);
    expect(delays.slice(0, 6)).to.deep.equal([50, 100, 200, 400, 400, 400]);
    expect(h.logger.lines.filter((l) => l.startsWith("WARN"))).to.deep.equal([
      `WARN [${h.exits[0]!.workerName}] exited with code 3; restarting in 50 ms`,
    ]);
    expect(delays).to.have.length(h.exits.length);
    expect(h.exits.every((e) => e.code === 3 && e.signal === null)).to.equal(true);
    for (let i = 0; i + 1 < h.exits.length; i++) {
      // Timers may fire a millisecond early.
      expect(h.exits[i + 1]!.at - h.exits[i]!.at).to.be.at.least(delays[i]! - 2);
    }
    expect(h.logger.lines.filter((l) => l.includes("starting worker of m 1"))).to.have.length(1);
    expect(h.readies).to.deep.equal([]);
  });

  it("says once that a worker is ready again after a run of failed starts", async () => {
    const counter = path.join(tmp, "starts");
    // Fails twice, then starts the real worker.
    const command = `n=$(cat ${counter} 2>/dev/null || echo 0); echo $((n+1)) > ${counter}; [ "$n" -ge 2 ] || exit 3; ${NODE_WORKER}`;
    const h = harness({}, { command });
    const ready = await h.worker.start();
    expect(h.exits.map((e) => e.code)).to.deep.equal([3, 3]);
    expect(h.logger.lines.filter((l) => l.includes("exited with code"))).to.have.length(1);
    expect(h.logger.lines).to.include(
      `INFO [${ready.workerName}] ready in ${ready.loadTimeMs} ms (after 1 more failed starts)`,
    );
  });

  it("resets the backoff once a worker has stayed ready for 10 × initialMs", async () => {
    // initialMs 20: stable after 200 ms; each worker lives 300 ms after its first 200.
    const h = harness({ TW_EXIT_AFTER_READY_MS: "300" }, { backoff: { initialMs: 20, maxMs: 400 } });
    await h.worker.start();
    await waitFor("3 crashes", () => h.exits.length >= 3, 10_000);
    expect(restartDelays(h.exits).slice(0, 3)).to.deep.equal([20, 20, 20]);
  });

  it("stops and restarts a worker that is not ready within readyTimeoutMs", async () => {
    const h = harness({ TW_PING_DELAY_MS: "60000" }, { readyTimeoutMs: 500 });
    void h.worker.start().catch(() => undefined);
    await waitFor("2 timeouts", () => h.exits.length >= 2);

    // The second timeout continues the same failing state, so only the first is logged.
    const timeouts = h.logger.lines.filter((l) => l.includes("not ready"));
    expect(timeouts).to.have.length(1);
    expect(timeouts[0]).to.match(
      new RegExp(
        `^WARN \\[${h.exits[0]!.workerName}\\] not ready within 500 ms, so it was stopped ` +
          `\\((exited with code 0|killed by SIGTERM)\\); restarting in 50 ms$`,
      ),
    );
    expect(restartDelays(h.exits).slice(0, 2)).to.deep.equal([50, 100]);
    expect(h.exits[1]!.workerName).to.not.equal(h.exits[0]!.workerName);
    // Under load, sh may be killed before it has started the worker; most runs record both.
    const timedOut = new Set(h.exits.slice(0, 2).map((e) => e.workerName));
    const killed = readStarts(h.pidFile).filter((s) => timedOut.has(`W-${s.port}-m_1`));
    expect(killed, "no timed-out worker got as far as writing its pid").to.not.deep.equal([]);
    await waitFor("the timed-out workers to be gone", () => killed.every((s) => isGone(s.pid)), 2000);
    expect(h.readies).to.deep.equal([]);
  });

  it("stop() sends SIGTERM to the group, which a well-behaved worker honours at once", async () => {
    const h = harness({ TW_SPAWN_CHILD: "1" }, { stopGraceMs: 5000 });
    const ready = await h.worker.start();
    const t0 = performance.now();
    await Promise.all([h.worker.stop(), h.worker.stop()]);

    expect(performance.now() - t0).to.be.below(2500);
    await waitFor("the SIGTERM line", () =>
      h.logger.lines.includes(`INFO [${ready.workerName}] got SIGTERM, exiting`),
    );
    const [start] = readStarts(h.pidFile);
    await waitFor(
      "the worker and its child to be gone",
      () => isGone(start!.pid) && isGone(start!.childPid!),
      2000,
    );
    expect(h.worker.url).to.equal(undefined);
    expect(h.worker.workerName).to.equal(undefined);
    expect(h.exits).to.deep.equal([]);
    await h.worker.whenReady().then(
      () => expect.fail("whenReady() resolved after stop()"),
      (error: unknown) => expect(String(error)).to.match(/stopped/),
    );
    // No restart: three backoff periods later there is still one start.
    await new Promise((resolve) => setTimeout(resolve, 150));
    expect(readStarts(h.pidFile)).to.have.length(1);
  });

  it("SIGKILLs a worker and its child that ignore SIGTERM after stopGraceMs", async () => {
    const h = harness({ TW_IGNORE_SIGTERM: "1", TW_SPAWN_CHILD: "1" }, { stopGraceMs: 300 });
    const ready = await h.worker.start();
    const t0 = performance.now();
    await h.worker.stop();

    expect(performance.now() - t0)
      .to.be.at.least(295)
      .and.below(3000);
    await waitFor("the worker's answer", () =>
      h.logger.lines.includes(`INFO [${ready.workerName}] ignoring SIGTERM`),
    );
    const [start] = readStarts(h.pidFile);
    await waitFor(
      "the worker and its child to be gone",
      () => isGone(start!.pid) && isGone(start!.childPid!),
      2000,
    );
  });

  it("start() rejects when stop() comes first", async () => {
    const h = harness({ TW_PING_DELAY_MS: "60000" });
    const outcome = h.worker.start().then(
      () => "resolved",
      (error: unknown) => String(error),
    );
    await waitFor("the process", () => readStarts(h.pidFile).length === 1);
    await h.worker.stop();
    expect(await outcome).to.match(/worker of m 1 was stopped/);
    await waitFor("the worker to be gone", () => isGone(readStarts(h.pidFile)[0]!.pid), 2000);
  });

  it("kills the worker group when the service exits without stop()", async () => {
    const pidFile = path.join(tmp, "exit-hook.jsonl");
    pidFiles.push(pidFile);
    const script = `
      import { ManagedWorker } from ${JSON.stringify(pathToFileURL(path.join(REPO_ROOT, "src/frontend/worker-process.ts")).href)};
      const logger = { info() {}, warn() {}, error() {} };
      const worker = new ManagedWorker({
        model: "m", version: "1", command: process.env.HOOK_COMMAND, logger,
        onMetricLine() {}, onReady() {}, pingIntervalMs: 20,
      });
      await worker.start();
      process.exit(0);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: REPO_ROOT,
      env: { ...process.env, HOOK_COMMAND: NODE_WORKER, TW_PID_FILE: pidFile, TW_SPAWN_CHILD: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
    expect(code, stderr).to.equal(0);

    const [start] = readStarts(pidFile);
    expect(start, "the worker never started").to.not.equal(undefined);
    await waitFor(
      "the worker and its child to be gone",
      () => isGone(start!.pid) && isGone(start!.childPid!),
      2000,
    );
  });

  it("logs and retries a command that does not exist, without throwing", async () => {
    const h = harness({}, { command: "/nonexistent/bin --port {port}" });
    void h.worker.start().catch(() => undefined);
    await waitFor("2 failures", () => h.exits.length >= 2);

    expect(h.exits.slice(0, 2).map((e) => e.code)).to.deep.equal([127, 127]);
    expect(
      h.logger.lines.some((l) => /^INFO \[W-\d+-m_1\] .*\/nonexistent\/bin.*not found/.test(l)),
    ).to.equal(true);
    expect(restartDelays(h.exits).slice(0, 2)).to.deep.equal([50, 100]);
  });

  it("logs and retries when the process cannot be spawned at all (missing cwd)", async () => {
    const h = harness({}, { cwd: path.join(tmp, "missing") });
    void h.worker.start().catch(() => undefined);
    await waitFor("2 failures", () => h.exits.length >= 2);

    expect(h.exits.slice(0, 2).map((e) => [e.code, e.signal])).to.deep.equal([
      [null, null],
      [null, null],
    ]);
    const warning = h.logger.lines.find((l) => l.startsWith("WARN"));
    expect(warning).to.match(/could not start ".*" in .*missing: spawn sh ENOENT; restarting in 50 ms$/);
  });
});
