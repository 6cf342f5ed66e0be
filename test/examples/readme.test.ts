import { expect } from "chai";
import { execFile } from "node:child_process";
import { readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO_ROOT } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

/** The ```ts blocks of the README, in order. */
function typescriptBlocks(markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1] ?? "");
}

describe("the README's examples", function () {
  this.timeout(60_000);

  it("the middleware block (node:http, express, fastify) typechecks under the project's strict settings with fastify 5", async () => {
    const blocks = typescriptBlocks(readFileSync(join(REPO_ROOT, "README.md"), "utf8"));
    const fastify = blocks.filter((b) => b.includes("fastify"));
    expect(fastify).to.have.length(1);
    const dir = tempDir("readme-ts-");
    writeFileSync(join(dir, "example.ts"), fastify[0] ?? "");
    // An ES module, as a user's would be (the block uses top-level await), that imports
    // "serve-metrics" as published (its source here) and fastify from this repository's node_modules.
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
    symlinkSync(join(REPO_ROOT, "node_modules"), join(dir, "node_modules"), "dir");
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({
        extends: join(REPO_ROOT, "tsconfig.json"),
        compilerOptions: {
          types: ["node"],
          paths: { "serve-metrics": [join(REPO_ROOT, "src/index.ts")] },
        },
        include: [],
        files: ["example.ts"],
      }),
    );
    const tsc = join(REPO_ROOT, "node_modules/typescript/bin/tsc");
    // tsc prints its errors on stdout and exits non-zero.
    const result = await promisify(execFile)(process.execPath, [tsc, "-p", join(dir, "tsconfig.json")]).then(
      () => "",
      (err: unknown) => (err as { stdout?: string }).stdout ?? (err as Error).message,
    );
    expect(result).to.equal("");
  });
});
