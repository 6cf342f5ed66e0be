import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { request } from "./http.js";
import { freePort } from "./net.js";

/** One series of an instant query's answer. */
export interface InstantSample {
  metric: Record<string, string>;
  value: [number, string];
}

/** A real Prometheus server started by a test, with its HTTP API. */
export interface RunningPrometheus {
  /** `http://127.0.0.1:<port>/api/v1` */
  api: string;
  /** What the server wrote to stderr so far (its log), for failure messages. */
  log: () => string;
  /** SIGTERM, then waits for the process to exit (SIGKILL after 5 s). */
  stop: () => Promise<void>;
}

/**
 * Starts `binary` on a free loopback port with `configFile` and a TSDB under `dataDir`; `flags`
 * are added (e.g. `--enable-feature=native-histograms`).
 */
export async function startPrometheus(
  binary: string,
  configFile: string,
  dataDir: string,
  flags: readonly string[] = [],
): Promise<RunningPrometheus> {
  const port = await freePort();
  const child: ChildProcess = spawn(
    binary,
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dataDir, "data")}`,
      `--web.listen-address=127.0.0.1:${port}`,
      ...flags,
    ],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr?.on("data", (d: Buffer) => {
    // Keep the tail only: a failure message needs the last lines, not a minute of logs.
    log = (log + d.toString()).slice(-20_000);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  return {
    api: `http://127.0.0.1:${port}/api/v1`,
    log: () => log,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** GETs `path` (e.g. `/query?query=up`) from the API and returns `data`; throws unless status is success. */
export async function apiGet<T>(api: string, path: string): Promise<T> {
  const res = await request(`${api}${path}`);
  const parsed = JSON.parse(res.body) as { status: string; data: T; error?: string };
  if (parsed.status !== "success") throw new Error(`${path}: ${parsed.error ?? res.body}`);
  return parsed.data;
}

/** Runs an instant PromQL query at `time` (seconds since the epoch; default now). */
export async function instantQuery(
  api: string,
  promql: string,
  time = Date.now() / 1000,
): Promise<InstantSample[]> {
  const data = await apiGet<{ resultType: string; result: InstantSample[] }>(
    api,
    `/query?query=${encodeURIComponent(promql)}&time=${time}`,
  );
  if (data.resultType !== "vector") throw new Error(`${promql}: a ${data.resultType}, not a vector`);
  return data.result;
}

/** How many scrapes of `job` succeeded in the last minute (0 while Prometheus starts). */
export async function successfulScrapes(api: string, job: string): Promise<number> {
  try {
    const result = await instantQuery(api, `sum_over_time(up{job="${job}"}[1m])`);
    return Number(result[0]?.value[1] ?? 0);
  } catch {
    return 0; // not listening yet
  }
}

/** Waits until Prometheus has scraped `job` successfully at least `count` times in the last minute. */
export async function waitForScrapes(
  prometheus: RunningPrometheus,
  job: string,
  count: number,
  ms = 30_000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while ((await successfulScrapes(prometheus.api, job)) < count) {
    if (Date.now() > deadline)
      throw new Error(
        `Prometheus did not scrape ${job} ${count} times within ${ms} ms; its log:\n${prometheus.log()}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One alert of `GET /api/v1/alerts`. */
export interface PrometheusAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  state: "pending" | "firing" | "inactive";
}

/** The alerts Prometheus holds now (pending and firing). */
export async function activeAlerts(api: string): Promise<PrometheusAlert[]> {
  return (await apiGet<{ alerts: PrometheusAlert[] }>(api, "/alerts")).alerts;
}
