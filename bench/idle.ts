import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { builtIsFresh } from "./lib/built.js";
import { startChild, TSX, type Child } from "./lib/child.js";
import { KeepAliveClient } from "./lib/http-client.js";
import { cpuPercent, procSample, type ProcSample } from "./lib/proc.js";
import { bytes, fmt, type Scenario } from "./lib/report.js";

/** Seconds the service runs before measuring starts: startup work (module loading, first sample) is not idle. */
const SETTLE_S = { quick: 2, full: 5 };

/**
 * CPU and RSS of the service's own process, started by its CLI as users start it (default host
 * sampling every 60 s, GPU probing included), left alone or scraped once a second. Both run at
 * once, as separate processes, over the same window; each one's CPU comes from /proc/<pid>/stat.
 */
export const idle: Scenario = async ({ quick, log }) => {
  const windowS = quick ? 10 : 60;
  const settleS = quick ? SETTLE_S.quick : SETTLE_S.full;
  const dir = mkdtempSync(join(tmpdir(), "serve-metrics-bench-"));
  const config = join(dir, "config.properties");
  writeFileSync(config, "metrics_address=http://127.0.0.1:0\n");
  const entry = cliEntry();
  const children: Child<string>[] = [];
  const client = new KeepAliveClient();
  try {
    const start = (): Promise<Child<string>> =>
      startChild<string>(entry.nodeArgs, entry.script, ["--ts-config", config], {
        // The CLI logs where it listens; the URL is all the scraper needs.
        readyWhen: (line) => /metrics API listening on (\S+)/.exec(line)?.[1],
      });
    const started = await Promise.allSettled([start(), start()]);
    for (const s of started) if (s.status === "fulfilled") children.push(s.value);
    for (const s of started) if (s.status === "rejected") throw s.reason;
    const [quiet, scraped] = children as [Child<string>, Child<string>];
    log(`idle: settling ${settleS} s, then measuring ${windowS} s`);
    await sleep(settleS * 1000);
    const first = [procSample(quiet.pid), procSample(scraped.pid)] as const;
    const deadline = performance.now() + windowS * 1000;
    let scrapes = 0;
    while (performance.now() < deadline) {
      const next = performance.now() + 1000;
      const { status } = await client.get(scraped.ready);
      if (status !== 200) throw new Error(`scrape answered ${status}`);
      scrapes++;
      await sleep(Math.max(0, Math.min(next, deadline) - performance.now()));
    }
    const last = [procSample(quiet.pid), procSample(scraped.pid)] as const;
    const row = (name: string, a: ProcSample, b: ProcSample): string[] => [
      name,
      fmt(cpuPercent(a, b), 2),
      fmt(b.cpuS - a.cpuS, 3),
      bytes(b.rssBytes),
      bytes(b.rssBytes - a.rssBytes),
    ];
    const idleCpu = cpuPercent(first[0], last[0]);
    return {
      title: "Idle: the service's own CPU and memory",
      notes: [
        `\`node ${[...entry.nodeArgs, entry.script].join(" ")} --ts-config <config with metrics_address port 0>\`, ` +
          `defaults otherwise (host sample every 60 s, nvidia-smi probed). Measured over ${windowS} s after ` +
          `${settleS} s of settling, from /proc/<pid>/stat (all threads) and VmRSS; the scraped one got ` +
          `${scrapes} scrapes, one a second.`,
      ],
      tables: [
        {
          header: ["process", "CPU % of one core", "CPU s", "RSS at end", "RSS change"],
          rows: [row("idle", first[0], last[0]), row("scraped every second", first[1], last[1])],
        },
      ],
      checks: [
        { target: "idle CPU ≤ 0.5% of one core", measured: `${fmt(idleCpu, 2)}%`, pass: idleCpu <= 0.5 },
      ],
    };
  } finally {
    client.close();
    await Promise.all(children.map((c) => c.stop()));
    rmSync(dir, { recursive: true, force: true });
  }
};

/** The built CLI when it is at least as new as every source file, else the sources through tsx. */
function cliEntry(): { nodeArgs: readonly string[]; script: string } {
  return builtIsFresh("dist/cli.js")
    ? { nodeArgs: [], script: "dist/cli.js" }
    : { nodeArgs: TSX, script: "src/cli.ts" };
}
