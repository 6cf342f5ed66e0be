import { cpus, loadavg, totalmem } from "node:os";
import { relative } from "node:path";

/** Where and how a run happened, for the head of RESULTS.md. */
export interface RunContext {
  cpu: string;
  cores: number;
  memory: string;
  node: string;
  date: string;
  /** The command as typed (`npm run bench`) and what it ran. */
  command: string;
  /** 1-minute load average when the run started: a busy machine explains wide spreads. */
  load: string;
}

/** Describes this machine and this run. */
export function runContext(): RunContext {
  const info = cpus();
  const script = process.argv.slice(1).map((arg, i) => (i === 0 ? relative(process.cwd(), arg) : arg));
  const ran = ["node", ...process.execArgv, ...script].join(" ");
  const npm = process.env.npm_lifecycle_event;
  return {
    cpu: info[0]?.model.trim() ?? "unknown",
    cores: info.length,
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    date: new Date().toISOString(),
    command: npm?.startsWith("bench") === true ? `npm run ${npm} (${ran})` : ran,
    load: loadavg()
      .map((l) => l.toFixed(2))
      .join(", "),
  };
}
