import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./cli.js";

/** One Dockerfile instruction: its keyword in capitals and the rest of it, continuations joined. */
export interface DockerInstruction {
  op: string;
  args: string;
}

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
export function dockerInstructions(text: string): DockerInstruction[] {
  const joined = text.replace(/\\\n/g, " ");
  return joined
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const space = line.search(/\s/);
      return { op: line.slice(0, space).toUpperCase(), args: line.slice(space + 1).trim() };
    });
}

/** The repository's Dockerfile, read and split into stages (each starting with its FROM). */
export function readDockerfile(): {
  text: string;
  instructions: DockerInstruction[];
  argDefaults: Map<string, string>;
  stages: DockerInstruction[][];
} {
  const text = readFileSync(join(REPO_ROOT, "Dockerfile"), "utf8");
  const instructions = dockerInstructions(text);
  const argDefaults = new Map(
    instructions
      .filter((i) => i.op === "ARG" && i.args.includes("="))
      .map((i) => i.args.split("=", 2) as [string, string]),
  );
  const stages: DockerInstruction[][] = [];
  for (const instruction of instructions) {
    if (instruction.op === "FROM") stages.push([]);
    stages.at(-1)?.push(instruction);
  }
  return { text, instructions, argDefaults, stages };
}

/** `KEY=value` pairs of ENV or LABEL arguments (values may be double-quoted; no spaces unquoted). */
export function keyValues(args: string): Map<string, string> {
  const pairs = new Map<string, string>();
  for (const m of args.matchAll(/([\w.-]+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    const [, key = "", raw = ""] = m;
    pairs.set(key, raw.startsWith('"') ? (JSON.parse(raw) as string) : raw);
  }
  return pairs;
}

/** Whether a `node:<major>-…` image satisfies an engines.node range made of `^X.Y.Z` and `>=X` parts. */
export function enginesAllowMajor(engines: string, major: number): boolean {
  return engines.split("||").some((part) => {
    const range = part.trim();
    const caret = /^\^(\d+)\.\d+\.\d+$/.exec(range);
    if (caret) return Number(caret[1]) === major;
    const atLeast = /^>=(\d+)(?:\.\d+){0,2}$/.exec(range);
    if (atLeast) return major >= Number(atLeast[1]);
    throw new Error(`engines.node part "${range}" is neither ^X.Y.Z nor >=X: teach this test to read it`);
  });
}
