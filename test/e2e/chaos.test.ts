import { expect } from "chai";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WebSocket } from "undici";
import { cleanEnv, REPO_ROOT, waitForStderr, writeCliConfig } from "../support/cli.js";
import { isGone } from "../support/processes.js";
import { until } from "../support/net.js";

/** How long clients and workers misbehave. */
const CHAOS_MS = 10_000;
const CLIENTS = 12;

const BEHAVIOURS = [
  ...Array<string>(16).fill("ok"),
  "drip",
  "hang",
  "stall",
  "stall-small",
  "die",
  "die-mid-body",
  "utf8-length",
  "extra-bytes",
  "no-content",
  "status-000",
  "switch",
  "early-hints",
  "flood",
];

type Klass = "2xx" | "4xx" | "5xx";

function klass(status: number): Klass {
  return status >= 200 && status < 300 ? "2xx" : status >= 400 && status < 500 ? "4xx" : "5xx";
}

/**
 * One client request. A client that sees the status knows the class the service must count: a
 * body cut short counts as 5xx (the service reports a cut answer as failed). A client that leaves
 * before the status arrives cannot know whether a response was sent: "unknown".
 */
function client(url: string, style: "patient" | "impatient" | "vanishing"): Promise<Klass | "unknown"> {
  return new Promise((resolve, reject) => {
    // Every request ends within its response timeouts (queue and worker, 1 s each) and then some.
    const guard = setTimeout(() => reject(new Error(`no end after 15 s: ${style} ${url}`)), 15_000);
    let status: number | undefined;
    let settled = false;
    const done = (k: Klass | "unknown"): void => {
      if (settled) return;
      settled = true;
      clearTimeout(guard);
      resolve(k);
    };
    const req = httpRequest(url, { method: "POST", agent: false }, (res) => {
      status = res.statusCode ?? 0;
      res.resume();
      res.on("end", () => done(klass(status ?? 0)));
      res.on("error", () => done(style === "patient" ? "5xx" : "unknown"));
    });
    req.on("error", () => done(status === undefined ? "unknown" : style === "patient" ? "5xx" : "unknown"));
    req.on("close", () => done(status === undefined ? "unknown" : "5xx"));
    if (style === "impatient") setTimeout(() => req.destroy(), 300);
    req.end("payload", () => {
      if (style === "vanishing") setTimeout(() => req.destroy(), 5);
    });
  });
}

function get(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`no answer after 15 s: GET ${url}`)), 15_000);
    httpRequest(url, { agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (d: string) => (body += d));
      res.on("end", () => {
        clearTimeout(guard);
        resolve({ status: res.statusCode ?? 0, body });
      });
      res.on("error", reject);
    })
      .on("error", reject)
      .end();
  });
}

/**
 * The service's V8 heap in use after full garbage collections, asked over its inspector: what
 * stays, whatever the GC had not yet handed back (RSS after a burst is no leak measure).
 */
async function heapAfterGc(inspectorUrl: string): Promise<number> {
  const ws = new WebSocket(inspectorUrl);
  await new Promise((resolve, reject) => {
    ws.addEventListener("open", resolve);
    ws.addEventListener("error", reject);
  });
  let id = 0;
  const answers = new Map<number, (result: unknown) => void>();
  ws.addEventListener("message", (event) => {
    const message = JSON.parse(String(event.data)) as { id?: number; result?: unknown };
    if (message.id !== undefined) answers.get(message.id)?.(message.result);
  });
  const call = (method: string): Promise<unknown> =>
    new Promise((resolve) => {
      answers.set(++id, resolve);
      ws.send(JSON.stringify({ id, method }));
    });
  try {
    // Twice: what the first collection frees may hold the last references to more.
    await call("HeapProfiler.collectGarbage");
    await call("HeapProfiler.collectGarbage");
    const usage = (await call("Runtime.getHeapUsage")) as { usedSize: number };
    return usage.usedSize;
  } finally {
    ws.close();
  }
}

/** The first `head` bytes a raw request got back, once its connection closed; `drive` sends it. */
function rawExchange(url: string, drive: (write: (text: string) => void) => Promise<void>): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error(`no end after 30 s: raw ${url}`)), 30_000);
    let text = "";
    const socket = connect(Number(port), "127.0.0.1", () => {
      drive((chunk) => socket.write(chunk)).catch(reject);
    });
    socket.setEncoding("latin1");
    socket.on("data", (d: string) => (text = (text + d).slice(0, 4096)));
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(guard);
      resolve(text);
    });
  });
}

/** A client that asks for a 64 MiB answer and reads none of it for 5 s; resolves with the bytes it then got. */
function slowReader(inferenceUrl: string): Promise<number> {
  const { port } = new URL(inferenceUrl);
  return new Promise((resolve, reject) => {
    const guard = setTimeout(() => reject(new Error("slow reader: no end after 30 s")), 30_000);
    let received = 0;
    const socket = connect(Number(port), "127.0.0.1", () => {
      socket.write("POST /predictions/c?do=big HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
      socket.pause();
      setTimeout(() => {
        socket.on("data", (d: Buffer) => (received += d.length));
        socket.resume();
      }, 5000);
    });
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(guard);
      resolve(received);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("chaos: impatient clients against workers that misbehave at random, with scrapes running", function () {
  this.timeout(120_000);
  let dir: string;
  let cli: ChildProcess | undefined;

  before(() => (dir = mkdtempSync(join(tmpdir(), "chaos-"))));
  after(() => {
    cli?.kill("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  it("stays up, leaks no slot or memory, counts every response once, and leaves no worker", async () => {
    const pidFile = join(dir, "pids");
    const command = `FW_FLOOD_BYTES=8388608 FW_PID_FILE=${pidFile} node test/fixtures/workers/faulty-worker.js --port {port}`;
    const config = writeCliConfig(dir, { c: { "1": { command, workers: 3, responseTimeout: 1 } } }, [
      "job_queue_size=8",
      "client_body_timeout=2",
      "client_read_timeout=2",
    ]);
    // The inspector (on a free loopback port) is how the test forces a GC and reads the heap.
    const child = spawn(
      process.execPath,
      ["--inspect=127.0.0.1:0", "--import", "tsx", "src/cli.ts", "--ts-config", config],
      { cwd: REPO_ROOT, env: cleanEnv() },
    );
    cli = child;
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    let lastWords = "";
    child.stderr.on("data", (d: Buffer) => (lastWords = (lastWords + d.toString()).slice(-10_000)));
    // One pattern for both lines: they may arrive in one chunk, which a second wait would miss.
    const [, inspectorUrl, metricsUrl, inferenceUrl] = (await waitForStderr(
      child,
      /Debugger listening on (ws:\S+)[^]*metrics API listening on (\S+)[^]*inference API listening on (\S+)/,
    )) as string[];
    const predict = (what: string): string => `${inferenceUrl}/predictions/c?do=${what}`;
    const seen = { "2xx": 0, "4xx": 0, "5xx": 0, unknown: 0 };
    const send = async (
      what: string,
      style: "patient" | "impatient" | "vanishing",
    ): Promise<Klass | "unknown"> => {
      const k = await client(predict(what), style);
      seen[k]++;
      return k;
    };
    const healthy = async (): Promise<boolean> => (await send("ok", "patient")) === "2xx";
    await until(healthy, "the model to answer", 30_000);
    // Every path once before the baseline, so what it compiles and caches is in both measures.
    for (const what of new Set(BEHAVIOURS)) await send(what, "patient");
    await until(healthy, "the model to answer after the warm-up", 30_000);
    const heapBefore = await heapAfterGc(inspectorUrl ?? "");
    const responses = async (): Promise<Record<Klass, number>> => {
      const text = (await get(`${metricsUrl ?? ""}?name[]=Requests2XX&name[]=Requests4XX&name[]=Requests5XX`))
        .body;
      const counted = (name: string): number => {
        const line = text.split("\n").find((l) => l.startsWith(`${name}{`));
        return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
      };
      return { "2xx": counted("Requests2XX"), "4xx": counted("Requests4XX"), "5xx": counted("Requests5XX") };
    };
    // A scrape is counted once it is rendered: each shows the scrapes before it, not itself.
    const baseline = await responses();
    for (const k of Object.keys(seen) as (keyof typeof seen)[]) seen[k] = 0;
    let scrapes = 1;

    const stopAt = Date.now() + CHAOS_MS;
    const clients = Array.from({ length: CLIENTS }, async (_, i) => {
      const style = (["patient", "impatient", "vanishing"] as const)[i % 3] ?? "patient";
      while (Date.now() < stopAt) {
        await send(BEHAVIOURS[Math.floor(Math.random() * BEHAVIOURS.length)] ?? "ok", style);
      }
    });
    const scraper = (async () => {
      while (Date.now() < stopAt) {
        expect((await get(metricsUrl ?? "")).status).to.equal(200);
        scrapes++;
      }
    })();
    await Promise.all([...clients, scraper]);
    expect(seen["2xx"], "healthy requests got through during the chaos").to.be.above(0);

    // Afterwards: a burst of healthy requests all succeed, without waiting out a timeout.
    await until(healthy, "the model to answer again", 30_000);
    // Rounds of as many as one ready worker and the queue hold (1 + job_queue_size 8): the other
    // workers may still be in their restart backoff. A leaked queue place or slot fails a round.
    for (let round = 0; round < 3; round++) {
      const burst = await Promise.all(Array.from({ length: 9 }, () => send("ok", "patient")));
      expect(burst.filter((k) => k !== "2xx")).to.deep.equal([]);
    }

    const final = await responses();
    const got = {
      "2xx": final["2xx"] - baseline["2xx"] - scrapes,
      "4xx": final["4xx"] - baseline["4xx"],
      "5xx": final["5xx"] - baseline["5xx"],
    };
    for (const k of ["2xx", "4xx", "5xx"] as const) {
      expect(got[k], `${k}: counted ${got[k]}, seen ${seen[k]}, unknown ${seen.unknown}`).to.be.within(
        seen[k],
        seen[k] + seen.unknown,
      );
    }
    expect(got["2xx"] + got["4xx"] + got["5xx"], "responses counted").to.be.at.most(
      seen["2xx"] + seen["4xx"] + seen["5xx"] + seen.unknown,
    );

    // Slow clients next, against healthy workers: each waits out its own timeout (2 s) while the
    // workers' responseTimeout is 1 s, and no worker may be restarted or blamed for it.
    const scrapeText = async (name: string): Promise<string> =>
      (await get(`${metricsUrl ?? ""}?name[]=${name}`)).body;
    const sum = (text: string, name: string, filter = ""): number =>
      text
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`) && l.includes(filter))
        .reduce((total, l) => total + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
    const ready = async (): Promise<boolean> =>
      sum(await scrapeText("serve_workers"), "serve_workers", 'state="ready"') === 3;
    await until(ready, "all three workers ready", 30_000);
    const restartsBefore = sum(
      await scrapeText("serve_worker_restarts_total"),
      "serve_worker_restarts_total",
    );
    const post = (size: number): string =>
      `POST /predictions/c?do=ok HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: ${size}\r\n\r\n`;
    for (const size of [100, 100 * 1024]) {
      // Three at once, one per worker: a reader that stops, an uploader that stops mid-body, and
      // one that uploads a byte every 0.5 s (slower than responseTimeout allows a worker, in all).
      const [readBytes, stopped, trickled] = await Promise.all([
        slowReader(inferenceUrl ?? ""),
        rawExchange(inferenceUrl ?? "", (write) => {
          write(`${post(size)}${"h".repeat(10)}`);
          return Promise.resolve();
        }),
        rawExchange(inferenceUrl ?? "", async (write) => {
          write(post(10));
          for (let i = 0; i < 10; i++) {
            await sleep(500);
            write("t");
          }
        }),
      ]);
      expect(readBytes, "the slow reader's answer was cut").to.be.below(64 * 1024 * 1024);
      expect(stopped, "the stopped upload").to.match(/^HTTP\/1\.1 408 /);
      expect(trickled, "the trickled upload").to.match(/^HTTP\/1\.1 200 /);
    }
    const restartsAfter = sum(await scrapeText("serve_worker_restarts_total"), "serve_worker_restarts_total");
    expect(restartsAfter, "serve_worker_restarts_total after slow clients").to.equal(restartsBefore);
    // And the model answers a healthy request at once: no worker is in a backoff.
    expect(await ready(), "all three workers still ready").to.equal(true);
    expect(await send("ok", "patient")).to.equal("2xx");

    // Some 20k requests went through: a leak of even 1 KiB each would be 20 MiB of heap that a
    // full GC cannot free. What legitimately stays (a WorkerLoadTime series per restarted worker,
    // code compiled late) is far below that.
    const heapGrowth = (await heapAfterGc(inspectorUrl ?? "")) - heapBefore;
    expect(heapGrowth, "heap growth after a full GC, in bytes").to.be.below(16 * 1024 * 1024);

    child.kill("SIGTERM");
    const stopped = await Promise.race([
      exited,
      new Promise((r) => setTimeout(() => r("still running"), 30_000)),
    ]);
    expect(stopped, `SIGTERM; the service's last words:\n${lastWords.slice(-3000)}`).to.equal(0);
    const pids = readFileSync(pidFile, "utf8").trim().split("\n").map(Number);
    expect(pids.length, "worker starts (restarts included)").to.be.above(3);
    await until(() => pids.every(isGone), "every worker to be gone", 5000);
  });
});
