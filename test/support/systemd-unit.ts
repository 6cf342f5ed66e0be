import { expect } from "chai";

/** `[Section]` → key → values (a key may repeat) of a systemd unit file. */
export function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let current: Map<string, string[]> | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = new Map();
      sections.set(header[1] ?? "", current);
      continue;
    }
    const eq = line.indexOf("=");
    expect(eq, `a key=value line in a section: ${line}`).to.be.greaterThan(0);
    expect(current, `a section before ${line}`).to.not.equal(undefined);
    const key = line.slice(0, eq).trim();
    current?.set(key, [...(current.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return sections;
}
