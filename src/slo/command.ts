import { readFileSync } from "node:fs";
import { ConfigError } from "../config/errors.js";
import { parseObjectives } from "./objectives.js";
import { sloRulesYaml } from "./rules.js";

/** The usage line of `serve-metrics slo-rules`. */
export const SLO_RULES_USAGE = `Usage: serve-metrics slo-rules OBJECTIVES.yaml

Prints the Prometheus recording rules and multiwindow, multi-burn-rate alerts for the
service-level objectives in OBJECTIVES.yaml (see grafana/slo-objectives.yml), e.g.
  serve-metrics slo-rules grafana/slo-objectives.yml > grafana/slo-rules.yml
`;

/**
 * `serve-metrics slo-rules FILE`: the rule file for the objectives in FILE, as text to print.
 * Throws {@link ConfigError} (exit status 2) for a missing argument, an unreadable file or objectives
 * it cannot use; `-h`/`--help` gives the usage.
 */
export function sloRulesCommand(args: readonly string[]): string {
  if (args.length === 1 && (args[0] === "-h" || args[0] === "--help")) return SLO_RULES_USAGE;
  const [file] = args;
  if (args.length !== 1 || file === undefined || file.startsWith("-"))
    throw new ConfigError(`slo-rules takes one objectives file\n${SLO_RULES_USAGE}`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(
      `cannot read the objectives file: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      {
        file,
      },
    );
  }
  return sloRulesYaml(parseObjectives(text, file), file);
}
