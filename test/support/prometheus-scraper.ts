import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { apiGet, startPrometheus, type RunningPrometheus } from "./prometheus.js";

/** What a scrape asked for and what it got. */
export interface Seen {
  accept: string;
  contentType: string;
}

/**
 * A pass-through proxy in front of `upstream` that notes each scrape's Accept and Content-Type;
 * with `accept`, it sends that Accept upstream instead of the scraper's (Prometheus 2.42 has no
 * setting for it), which makes a default-flag Prometheus a text 0.0.4 scraper.
 */
async function startNotingProxy(upstream: string, seen: Seen[], accept?: string): Promise<Server> {
  const origin = new URL(upstream).origin;
  const server = createServer((req, res) => {
    const headers = accept === undefined ? req.headers : { ...req.headers, accept };
    const forward = httpRequest(`${origin}${req.url ?? "/"}`, { method: req.method, headers }, (up) => {
      seen.push({ accept: req.headers.accept ?? "", contentType: up.headers["content-type"] ?? "" });
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    forward.on("error", () => res.destroy());
    forward.end();
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return server;
}

/** One Prometheus scraping a service through its own noting proxy, with `flags`. */
export interface Scraper {
  prometheus: RunningPrometheus;
  proxy: Server;
  seen: Seen[];
  dir: string;
}

export async function startScraper(
  binary: string,
  metricsUrl: string,
  flags: string[],
  accept?: string,
): Promise<Scraper> {
  const seen: Seen[] = [];
  const proxy = await startNotingProxy(metricsUrl, seen, accept);
  const dir = mkdtempSync(join(tmpdir(), "prom-scraper-"));
  const target = `127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  writeFileSync(
    join(dir, "prometheus.yml"),
    `global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: serve-metrics\n    static_configs:\n      - targets: ["${target}"]\n`,
  );
  const prometheus = await startPrometheus(binary, join(dir, "prometheus.yml"), dir, flags);
  return { prometheus, proxy, seen, dir };
}

export async function stopScraper(s: Scraper | undefined): Promise<void> {
  if (s === undefined) return;
  await s.prometheus.stop();
  s.proxy.closeAllConnections();
  await new Promise((resolve) => s.proxy.close(resolve));
  rmSync(s.dir, { recursive: true, force: true });
}

/** The job's stored series as sorted `name{labels}` strings, without job and instance. */
export async function storedSeries(api: string): Promise<string[]> {
  const end = Date.now() / 1000;
  const series = await apiGet<Record<string, string>[]>(
    api,
    `/series?match[]=${encodeURIComponent('{job="serve-metrics"}')}&start=${end - 600}&end=${end}`,
  );
  return series.map((labels) => seriesKey(labels)).sort();
}

export function seriesKey(labels: Record<string, string>): string {
  const pairs = Object.entries(labels)
    .filter(([k]) => k !== "__name__" && k !== "job" && k !== "instance")
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  return `${labels.__name__ ?? ""}{${pairs.join(",")}}`;
}
