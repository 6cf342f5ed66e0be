import { expect } from "chai";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cleanEnv, spawnCli, waitForStderr, writeCliConfig } from "../support/cli.js";
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

function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"));
  return Number(line?.match(/\d+/)?.[0] ?? NaN);
}

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
    ]);
    // Node 24's V8 sizes the young generation by the machine's memory (tens of MiB, kept after
    // a burst); a small one lets the RSS below show what stays, as on Node 20.
    const child = spawnCli(["--ts-config", config], cleanEnv({ NODE_OPTIONS: "--max-semi-space-size=2" }));
    cli = child;
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    let lastWords = "";
    child.stderr?.on("data", (d: Buffer) => (lastWords = (lastWords + d.toString()).slice(-10_000)));
    // One pattern for both lines: they may arrive in one chunk, which a second wait would miss.
    const [, metricsUrl, inferenceUrl] = (await waitForStderr(
      child,
      /metrics API listening on (\S+)[^]*inference API listening on (\S+)/,
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
    const pid = child.pid ?? 0;
    const rssBefore = rssKiB(pid);
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

    // Some 20k requests went through: a leak of a few KiB each would show; typical growth is
    // 20-30 MiB (heap the GC has not handed back), with a flood's buffers now and then on top.
    expect(rssKiB(pid) - rssBefore, "RSS growth in KiB").to.be.below(96 * 1024);

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
