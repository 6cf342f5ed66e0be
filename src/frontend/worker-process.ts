import { spawn, type ChildProcess } from "node:child_process";
import { request, type ClientRequest } from "node:http";
import { createServer } from "node:net";
import type { Readable } from "node:stream";

import type { Logger } from "../log.js";
import { metricsPayload } from "../sources/metric-line.js";
import type { RestartReason, WorkerState } from "../telemetry/lifecycle-metrics.js";
import { workerName } from "../telemetry/recorder.js";
import { readCappedLines } from "./capped-lines.js";
import { unwatchGroup, watchGroup } from "./worker-guardian.js";
import type { WorkerFault } from "./worker-pool.js";

export { workerName };

/** A worker that answered 200 on `GET /ping`. */
export interface WorkerReady {
  /** `W-<port>-<model>_<version>`, see {@link workerName}. */
  workerName: string;
  port: number;
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** TorchServe's WorkerLoadTime: ms from spawn to the first 200 on `/ping`, rounded. */
  loadTimeMs: number;
}

/** A worker process that ended; code and signal are both null when it could not be started. */
export interface WorkerExit {
  workerName: string;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** When the next start comes, in ms (the backoff). */
  restartInMs: number;
  /** Why the process ended, in the words of serve_worker_restarts_total's `reason` label. */
  reason: RestartReason;
}

/** How to start and supervise one model worker. Times in milliseconds. */
export interface ManagedWorkerOptions {
  model: string;
  version: string;
  /** Shell command; every `{port}` is replaced by the port chosen for this start. */
  command: string;
  cwd?: string;
  /** The worker's whole environment, as in `spawn`; default: this process's. */
  env?: NodeJS.ProcessEnv;
  logger: Logger;
  /** Every stdout/stderr line that is a `[METRICS]` line, with the worker's name. */
  onMetricLine(line: string, workerName: string): void;
  /** Each time the worker (re)becomes ready: WorkerLoadTime = start → first 200 on GET /ping. */
  onReady(ready: WorkerReady): void;
  /** A worker reported by {@link ManagedWorker.fault} as unreachable answers `/ping` again. */
  onRecovered?(): void;
  /**
   * Each time a running or starting worker dies (code/signal), before a restart is scheduled.
   * Not called for the exit that stop() causes.
   */
  onExit?(info: WorkerExit): void;
  /**
   * Each change of state: `starting` at every spawn and after a fault (not lent requests until it
   * answers /ping), `ready`, `backing_off` while a restart waits, `stopped` after stop().
   */
  onState?(state: WorkerState | "stopped"): void;
  /**
   * TorchServe's startupTimeout, default 120_000: not ready by then → stopped (as by stop()) and
   * restarted. Also how long a worker reported unreachable may take to answer `/ping` again.
   */
  readyTimeoutMs?: number;
  /** Default 100: first pause between two `/ping` probes while starting; it grows to 1 s. */
  pingIntervalMs?: number;
  /**
   * Restart delays, default 1000 / 30_000, doubling from initialMs up to maxMs; back to initialMs
   * once a worker has stayed ready for 60 s or 10 × initialMs, whichever is smaller.
   */
  backoff?: { initialMs: number; maxMs: number };
  /** Default 5000: time between SIGTERM and SIGKILL when stopping. */
  stopGraceMs?: number;
}

const DEFAULT_READY_TIMEOUT_MS = 120_000;
const DEFAULT_PING_INTERVAL_MS = 100;
// A model that loads for minutes is asked less often; a fast one is still seen ready at once.
const MAX_PING_INTERVAL_MS = 1000;
/** Longest output line kept whole; the line parser refuses longer metric lines anyway. */
const MAX_OUTPUT_LINE_BYTES = 64 * 1024;
const DEFAULT_BACKOFF = { initialMs: 1000, maxMs: 30_000 };
const DEFAULT_STOP_GRACE_MS = 5000;
// A worker busy loading its model may answer slowly; one slow answer just means "not yet".
const PING_TIMEOUT_MS = 1000;
const MAX_STABLE_MS = 60_000;

/** Signals every process in the group led by `pid`; false when none is left. */
function signalGroup(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    // ESRCH: the whole group has already exited.
    return false;
  }
}

/** One spawn of the worker command, from spawn to exit. */
interface Attempt {
  readonly port: number;
  readonly name: string;
  readonly url: string;
  readonly child: ChildProcess;
  /** Leader of the worker's process group; undefined when spawn failed. */
  readonly pid: number | undefined;
  readonly spawnedAt: number;
  readyAt: number | undefined;
  /** The leader has exited (or was never started). */
  ended: boolean;
  /** Set once we have asked it to go: why, for the exit log. */
  killReason: string | undefined;
  /** The grace period after SIGTERM is over and the group has had SIGKILL. */
  graceOver: boolean;
  /** Nothing of the group is left to wait for; see finishGroup. */
  groupDone: boolean;
  pingTimer: NodeJS.Timeout | undefined;
  pingRequest: ClientRequest | undefined;
  readyTimer: NodeJS.Timeout | undefined;
  killTimer: NodeJS.Timeout | undefined;
  /** Resolves when groupDone becomes true. */
  readonly gone: Promise<void>;
  markGone(): void;
  /** Next pause between `/ping` probes. */
  pingDelayMs: number;
  /** Output lines cut at MAX_OUTPUT_LINE_BYTES. */
  cutLines: number;
}

interface Waiter {
  resolve(ready: WorkerReady): void;
  reject(error: Error): void;
}

/**
 * Starts a model worker from a shell command on a free port, routes its output, waits for it to
 * answer `/ping`, restarts it with capped exponential backoff when it dies or never gets ready,
 * and kills its whole process group on stop() or when this process exits.
 */
export class ManagedWorker {
  private readonly readyTimeoutMs: number;
  private readonly pingIntervalMs: number;
  private readonly backoff: { initialMs: number; maxMs: number };
  private readonly stableMs: number;
  private readonly stopGraceMs: number;
  private readonly label: string;

  private phase: "idle" | "running" | "stopped" = "idle";
  private attempt: Attempt | undefined;
  /** Attempts whose process group may still have members: the current one, and any still in grace. */
  private readonly unfinished = new Set<Attempt>();
  private ready: WorkerReady | undefined;
  private restartTimer: NodeJS.Timeout | undefined;
  private nextDelayMs: number;
  private lastPort: number | undefined;
  private waiters: Waiter[] = [];
  /** Deaths since a worker was last ready; 0 while healthy. */
  private failedStarts = 0;
  private firstReady: Promise<WorkerReady> | undefined;
  private stopping: Promise<void> | undefined;
  private startLogged = false;

  constructor(private readonly o: ManagedWorkerOptions) {
    this.readyTimeoutMs = o.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    this.pingIntervalMs = o.pingIntervalMs ?? DEFAULT_PING_INTERVAL_MS;
    this.backoff = o.backoff ?? DEFAULT_BACKOFF;
    this.stopGraceMs = o.stopGraceMs ?? DEFAULT_STOP_GRACE_MS;
    const { initialMs, maxMs } = this.backoff;
    // A zero delay would restart a crashing worker in a busy loop.
    if (!(initialMs > 0) || !(maxMs >= initialMs)) {
      throw new RangeError(`worker backoff: need 0 < initialMs <= maxMs, got ${initialMs} / ${maxMs}`);
    }
    this.stableMs = Math.min(MAX_STABLE_MS, 10 * initialMs);
    this.nextDelayMs = initialMs;
    this.label = `worker of ${o.model} ${o.version}`;
  }

  /** Base URL while ready (`http://127.0.0.1:<port>`), else undefined. */
  get url(): string | undefined {
    return this.ready?.url;
  }

  /** TorchServe's `W-<port>-<model>_<version>` of the current process (starting or ready), else undefined. */
  get workerName(): string | undefined {
    return this.attempt?.name;
  }

  /** Starts the process; resolves when it is first ready (rejects only if stop() is called first). */
  start(): Promise<WorkerReady> {
    if (this.firstReady) return this.firstReady;
    this.firstReady = this.whenReady();
    if (this.phase === "idle") {
      this.phase = "running";
      void this.launch();
    }
    return this.firstReady;
  }

  /**
   * Resolves with the worker's readiness: at once if it is ready now, else the next time it becomes
   * ready (e.g. after a crash); rejects when stop() is called first.
   */
  whenReady(): Promise<WorkerReady> {
    if (this.phase === "stopped") return Promise.reject(this.stoppedError());
    const ready = this.ready;
    if (ready) return Promise.resolve(ready);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** SIGTERM to the whole process group, SIGKILL after stopGraceMs; no restart afterwards. Idempotent. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    this.phase = "stopped";
    this.o.onState?.("stopped");
    clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    this.ready = undefined;
    for (const waiter of this.waiters.splice(0)) waiter.reject(this.stoppedError());
    await Promise.all(
      [...this.unfinished].map(async (attempt) => {
        await this.terminate(attempt, "stopped");
        this.o.logger.info(`[${attempt.name}] stopped`);
      }),
    );
  }

  private stoppedError(): Error {
    return new Error(`${this.label} was stopped`);
  }

  /** One start: port, spawn, output, readiness. Never throws; failures end in a restart. */
  private async launch(): Promise<void> {
    this.restartTimer = undefined;
    let port: number;
    try {
      port = await freePort(this.lastPort);
    } catch (error) {
      if (this.phase !== "running") return;
      const delay = this.takeDelay(undefined);
      this.o.onState?.("backing_off");
      this.o.logger.error(`${this.label}: no free port (${message(error)}); retrying in ${delay} ms`);
      this.restartTimer = setTimeout(() => void this.launch(), delay);
      return;
    }
    // stop() may have come while we looked for a port.
    if (this.phase !== "running") return;
    this.lastPort = port;

    const name = workerName(port, this.o.model, this.o.version);
    const command = this.o.command.replaceAll("{port}", String(port));
    // The command as run, with its port, at the first start (restarts say their new name when ready).
    if (!this.startLogged) {
      this.startLogged = true;
      this.o.logger.info(`starting ${this.label} (${name}): ${command}`);
    }
    const spawnedAt = performance.now();
    let child: ChildProcess;
    try {
      // detached: the worker leads its own process group, so its children die with it.
      child = spawn("sh", ["-c", command], {
        cwd: this.o.cwd,
        env: this.o.env ?? process.env,
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (error) {
      // Synchronous only for arguments Node refuses (e.g. a NUL byte); same outcome as a crash.
      const delay = this.takeDelay(undefined);
      if (this.failedStarts === 0) {
        this.o.logger.warn(
          `[${name}] could not start "${command}": ${message(error)}; retrying in ${delay} ms`,
        );
      }
      this.failedStarts++;
      this.o.onState?.("backing_off");
      this.notifyExit({
        workerName: name,
        code: null,
        signal: null,
        restartInMs: delay,
        reason: "start_failed",
      });
      this.restartTimer = setTimeout(() => void this.launch(), delay);
      return;
    }

    let markGone = (): void => undefined;
    const gone = new Promise<void>((resolve) => (markGone = resolve));
    const attempt: Attempt = {
      port,
      name,
      url: `http://127.0.0.1:${port}`,
      child,
      pid: child.pid,
      spawnedAt,
      readyAt: undefined,
      ended: false,
      killReason: undefined,
      graceOver: false,
      groupDone: false,
      pingTimer: undefined,
      pingRequest: undefined,
      readyTimer: undefined,
      killTimer: undefined,
      gone,
      markGone,
      pingDelayMs: this.pingIntervalMs,
      cutLines: 0,
    };
    this.attempt = attempt;
    this.unfinished.add(attempt);
    this.o.onState?.("starting");
    if (attempt.pid !== undefined) watchGroup(attempt.pid);

    this.readLines(child.stdout, attempt, "stdout");
    this.readLines(child.stderr, attempt, "stderr");
    child.on("exit", (code, signal) => this.ended(attempt, code, signal, undefined));
    // After "exit", once every process holding its stdout or stderr has exited too.
    child.on("close", () => this.finishGroup(attempt));
    // "error" may come more than once (a failed spawn, a failed kill); an unheard one would throw.
    child.on("error", (error) => {
      if (attempt.pid === undefined) {
        this.ended(
          attempt,
          null,
          null,
          `could not start "${command}" in ${this.o.cwd ?? process.cwd()}: ${error.message}`,
        );
      } else {
        this.o.logger.warn(`[${name}] ${error.message}`);
      }
    });

    if (attempt.pid === undefined) return;
    attempt.readyTimer = setTimeout(() => {
      if (attempt.readyAt === undefined) {
        void this.terminate(attempt, `not ready within ${this.readyTimeoutMs} ms`);
      }
    }, this.readyTimeoutMs);
    attempt.pingTimer = setTimeout(() => this.probe(attempt), this.pingIntervalMs);
  }

  private readLines(stream: Readable | null, attempt: Attempt, which: "stdout" | "stderr"): void {
    if (!stream) return;
    // Unheard, a stream error would throw.
    stream.on("error", (error: Error) =>
      this.o.logger.warn(`[${attempt.name}] reading ${which}: ${error.message}`),
    );
    readCappedLines(stream, MAX_OUTPUT_LINE_BYTES, {
      line: (line) => {
        if (metricsPayload(line) !== undefined) {
          try {
            this.o.onMetricLine(line, attempt.name);
          } catch (error) {
            this.o.logger.error(`[${attempt.name}] onMetricLine failed: ${message(error)}`);
          }
        } else {
          // Both streams at info, like TorchServe's worker log: Python logs everything to stderr.
          this.o.logger.info(`[${attempt.name}] ${line}`);
        }
      },
      cut: (head) => {
        attempt.cutLines++;
        if (attempt.cutLines > 1) return;
        this.o.logger.warn(
          `[${attempt.name}] ${which} line longer than ${MAX_OUTPUT_LINE_BYTES} bytes cut (further cut lines ` +
            `are counted, not logged): ${JSON.stringify(head.slice(0, 200))}…`,
        );
      },
    });
  }

  private isProbing(attempt: Attempt): boolean {
    return this.attempt === attempt && !attempt.ended && attempt.killReason === undefined;
  }

  private probe(attempt: Attempt): void {
    attempt.pingTimer = undefined;
    if (!this.isProbing(attempt)) return;
    attempt.pingRequest = ping(attempt.url, (ok) => {
      attempt.pingRequest = undefined;
      if (!this.isProbing(attempt)) return;
      if (ok) {
        this.becameReady(attempt);
        return;
      }
      attempt.pingTimer = setTimeout(() => this.probe(attempt), attempt.pingDelayMs);
      attempt.pingDelayMs = Math.min(
        Math.max(MAX_PING_INTERVAL_MS, this.pingIntervalMs),
        Math.ceil(attempt.pingDelayMs * 1.5),
      );
    });
  }

  /**
   * A request failed on this worker. Stuck (no answer in time): the process is stopped and
   * restarted. Unreachable (connection refused or cut): it is lent no request until it answers
   * `/ping` again within the ready timeout (else restarted); a worker that died is usually seen
   * exiting first. Either way it is not ready from now on, so requests wait for the others.
   */
  fault(kind: WorkerFault, detail: string): void {
    const attempt = this.attempt;
    if (this.phase !== "running" || attempt === undefined || this.ready?.url !== attempt.url) return;
    this.ready = undefined;
    this.o.onState?.("starting");
    if (kind === "stuck") {
      void this.terminate(attempt, `${detail} to a request`);
      return;
    }
    attempt.pingDelayMs = this.pingIntervalMs;
    attempt.readyTimer = setTimeout(() => {
      if (this.ready === undefined && this.attempt === attempt) {
        void this.terminate(
          attempt,
          `unreachable (${detail}) and not answering /ping within ${this.readyTimeoutMs} ms`,
        );
      }
    }, this.readyTimeoutMs);
    this.probe(attempt);
  }

  /**
   * Whether the process that served at `url` has exited, or does within `ms`. Each start gets a
   * new port, so a url names one process: one that is no longer the current one has ended.
   */
  exitedWithin(url: string, ms: number): Promise<boolean> {
    const attempt = this.attempt;
    if (attempt === undefined || attempt.url !== url || attempt.ended) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onExit = (): void => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        attempt.child.off("exit", onExit);
        resolve(attempt.ended);
      }, ms);
      attempt.child.once("exit", onExit);
    });
  }

  private becameReady(attempt: Attempt): void {
    clearTimeout(attempt.readyTimer);
    const recovered = attempt.readyAt !== undefined;
    attempt.readyAt ??= performance.now();
    const ready: WorkerReady = {
      workerName: attempt.name,
      port: attempt.port,
      url: attempt.url,
      loadTimeMs: Math.round(attempt.readyAt - attempt.spawnedAt),
    };
    this.ready = ready;
    this.o.onState?.("ready");
    if (recovered) {
      // Back from a fault: the same process, loaded once; nobody waits for it to start.
      this.o.logger.info(`[${attempt.name}] answers /ping again`);
      this.o.onRecovered?.();
      return;
    }
    const after = this.failedStarts > 1 ? ` (after ${this.failedStarts - 1} more failed starts)` : "";
    this.o.logger.info(`[${attempt.name}] ready in ${ready.loadTimeMs} ms${after}`);
    this.failedStarts = 0;
    try {
      this.o.onReady(ready);
    } catch (error) {
      this.o.logger.error(`[${attempt.name}] onReady failed: ${message(error)}`);
    }
    for (const waiter of this.waiters.splice(0)) waiter.resolve(ready);
  }

  /**
   * SIGTERM to the group, SIGKILL after the grace period. Resolves when the group is gone: the
   * leader may be a shell that dies at once while the worker it started is still shutting down.
   */
  private terminate(attempt: Attempt, reason: string): Promise<void> {
    if (attempt.groupDone || attempt.killReason !== undefined) return attempt.gone;
    attempt.killReason = reason;
    this.stopProbing(attempt);
    const pid = attempt.pid;
    // No pid: spawn failed and its "error" event, which ends the attempt, is on its way.
    if (pid === undefined) return attempt.gone;
    signalGroup(pid, "SIGTERM");
    attempt.killTimer = setTimeout(() => {
      attempt.graceOver = true;
      signalGroup(pid, "SIGKILL");
      // Otherwise the leader's "exit", which SIGKILL brings at once, finishes the group.
      if (attempt.ended) this.finishGroup(attempt);
    }, this.stopGraceMs);
    return attempt.gone;
  }

  /**
   * Kills whatever is left of the group and forgets it. Comes when the stdio pipes close (every
   * process of the group has exited, unless one closed them), or at once when the leader exits
   * unasked (its children are orphans nobody will shut down), or when the grace period ends.
   */
  private finishGroup(attempt: Attempt): void {
    if (attempt.groupDone) return;
    attempt.groupDone = true;
    this.unfinished.delete(attempt);
    clearTimeout(attempt.killTimer);
    if (attempt.pid !== undefined) {
      signalGroup(attempt.pid, "SIGKILL");
      unwatchGroup(attempt.pid);
    }
    if (attempt.cutLines > 1) {
      this.o.logger.warn(
        `[${attempt.name}] ${attempt.cutLines} output lines were cut at ${MAX_OUTPUT_LINE_BYTES} bytes`,
      );
    }
    attempt.markGone();
  }

  private stopProbing(attempt: Attempt): void {
    clearTimeout(attempt.pingTimer);
    attempt.pingTimer = undefined;
    attempt.pingRequest?.destroy();
    attempt.pingRequest = undefined;
  }

  /** The leader exited (or never started): clean up, then restart unless stop() asked for it. */
  private ended(
    attempt: Attempt,
    code: number | null,
    signal: NodeJS.Signals | null,
    failure: string | undefined,
  ): void {
    if (attempt.ended) return;
    attempt.ended = true;
    this.stopProbing(attempt);
    clearTimeout(attempt.readyTimer);
    // Asked to stop, the rest of the group keeps its grace period; see terminate.
    if (attempt.killReason === undefined || attempt.graceOver) this.finishGroup(attempt);
    const current = this.attempt === attempt;
    if (current) {
      this.attempt = undefined;
      this.ready = undefined;
    }
    if (this.phase !== "running" || !current) return;

    const delay = this.takeDelay(attempt.readyAt);
    const status = failure ?? (signal ? `killed by ${signal}` : `exited with code ${String(code)}`);
    const what =
      attempt.killReason === undefined ? status : `${attempt.killReason}, so it was stopped (${status})`;
    // A crash loop is one state: warn when it begins (a ready worker died, or the first start
    // failed), count the failed starts that follow, and say once when a worker is ready again.
    if (this.failedStarts === 0) this.o.logger.warn(`[${attempt.name}] ${what}; restarting in ${delay} ms`);
    this.failedStarts = attempt.readyAt === undefined ? this.failedStarts + 1 : 1;
    // Killed by us: never ready in time at startup, else it stopped answering.
    const reason: RestartReason =
      failure !== undefined
        ? "start_failed"
        : attempt.killReason !== undefined
          ? attempt.readyAt === undefined
            ? "startup_timeout"
            : "unresponsive"
          : signal !== null
            ? "signal"
            : "exit";
    this.o.onState?.("backing_off");
    this.notifyExit({ workerName: attempt.name, code, signal, restartInMs: delay, reason });
    this.restartTimer = setTimeout(() => void this.launch(), delay);
  }

  /** The delay before the next start, doubling up to the cap, reset after a stable run. */
  private takeDelay(readyAt: number | undefined): number {
    if (readyAt !== undefined && performance.now() - readyAt >= this.stableMs) {
      this.nextDelayMs = this.backoff.initialMs;
    }
    const delay = this.nextDelayMs;
    this.nextDelayMs = Math.min(delay * 2, this.backoff.maxMs);
    return delay;
  }

  private notifyExit(info: WorkerExit): void {
    try {
      this.o.onExit?.(info);
    } catch (error) {
      this.o.logger.error(`[${info.workerName}] onExit failed: ${message(error)}`);
    }
  }
}

/** `GET <url>/ping` with a short timeout; calls back once with whether it answered 200. */
function ping(url: string, done: (ok: boolean) => void): ClientRequest {
  let answered = false;
  const finish = (ok: boolean): void => {
    if (answered) return;
    answered = true;
    done(ok);
  };
  // agent: false, so no keep-alive socket outlives the probe.
  const req = request(`${url}/ping`, { agent: false, timeout: PING_TIMEOUT_MS }, (res) => {
    // A response cut off mid-body emits "error"; unheard, it would throw.
    res.on("error", () => undefined);
    res.resume();
    finish(res.statusCode === 200);
  });
  req.on("timeout", () => req.destroy());
  req.on("error", () => finish(false));
  req.end();
  return req;
}

/** A port free on 127.0.0.1 now, other than `avoid` (so a restart visibly gets a new name). */
async function freePort(avoid: number | undefined): Promise<number> {
  let port = await listenOnce();
  for (let tries = 0; port === avoid && tries < 5; tries++) port = await listenOnce();
  return port;
}

function listenOnce(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address !== null ? address.port : undefined;
      server.close(() => (port === undefined ? reject(new Error("listen gave no port")) : resolve(port)));
    });
  });
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
