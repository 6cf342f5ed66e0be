import { expect } from "chai";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parseAllDocuments } from "yaml";
import { REPO_ROOT } from "../support/cli.js";

// docs/deploy.md against the files it walks a user through: every link resolves, and the sizing it
// states is what the manifests set.

const DOC = join(REPO_ROOT, "docs/deploy.md");
const text = readFileSync(DOC, "utf8");

interface Resources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

/** The serve-metrics container's resources in a manifest file. */
function serveMetricsResources(file: string): Resources {
  for (const doc of parseAllDocuments(readFileSync(join(REPO_ROOT, file), "utf8"))) {
    const json = doc.toJS() as {
      kind?: string;
      spec?: { containers?: unknown; template?: { spec?: { containers?: unknown } } };
    };
    const containers = (json.spec?.containers ?? json.spec?.template?.spec?.containers ?? []) as {
      image?: string;
      resources?: Resources;
    }[];
    const found = containers.find((c) => c.image?.startsWith("serve-metrics"));
    if (found?.resources !== undefined) return found.resources;
  }
  throw new Error(`${file} has no serve-metrics container with resources`);
}

describe("docs/deploy.md", function () {
  it("links only to files that exist", function () {
    const links = [...text.matchAll(/\]\((\.\.\/[^)#\s]+)(?:#[^)]*)?\)/g)].map((m) => m[1] ?? "");
    expect(links.length).to.be.greaterThan(5);
    expect(links.filter((link) => !existsSync(join(dirname(DOC), link)))).to.deep.equal([]);
  });

  it("states the requests and limits the manifests set", function () {
    const sizing = text.slice(text.indexOf("## Sizing"));
    const expectations: [string, string][] = [
      ["examples/torchserve-sidecar/pod.yaml", "**Sidecar**"],
      ["examples/kubernetes/frontend.yaml", "**Frontend**"],
    ];
    for (const [file, marker] of expectations) {
      const { requests, limits } = serveMetricsResources(file);
      const bullet = sizing.slice(sizing.indexOf(marker)).split("\n- ")[0] ?? "";
      const cpu = (q: string): string => (q === "1" ? "one core" : q);
      expect(bullet, file).to.include(`requests ${requests.cpu}`).and.include(requests.memory);
      expect(bullet, file)
        .to.include(`limits ${cpu(limits.cpu)}`)
        .and.include(limits.memory);
    }
  });
});
