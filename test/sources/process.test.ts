import { expect } from "chai";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseMaxOpenFiles, readProcess } from "../../src/sources/process.js";

/** The head of a real /proc/<pid>/limits. */
const LIMITS = `Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max file size             unlimited            unlimited            bytes
Max open files            1024                 524288               files
Max locked memory         8388608              8388608              bytes
`;

describe("process readings", () => {
  describe("parseMaxOpenFiles", () => {
    it("takes the soft limit of the Max open files row", () => {
      expect(parseMaxOpenFiles(LIMITS)).to.equal(1024);
    });

    it("gives undefined for an unlimited or missing row", () => {
      expect(parseMaxOpenFiles(LIMITS.replace("1024 ", "unlimited"))).to.equal(undefined);
      expect(parseMaxOpenFiles(LIMITS.replace(/^Max open files.*$/m, ""))).to.equal(undefined);
    });
  });

  describe("readProcess", () => {
    let dir: string;
    beforeEach(() => {
      dir = mkdtempSync(join(tmpdir(), "process-"));
    });
    afterEach(() => rmSync(dir, { recursive: true, force: true }));

    it("counts the entries of the fd directory and reads the limit from the limits file", async () => {
      mkdirSync(join(dir, "fd"));
      for (const fd of ["0", "1", "2", "7"]) writeFileSync(join(dir, "fd", fd), "");
      writeFileSync(join(dir, "limits"), LIMITS);
      const sample = await readProcess({ fdDirectory: join(dir, "fd"), limitsFile: join(dir, "limits") });
      expect(sample.openFds).to.equal(4);
      expect(sample.maxFds).to.equal(1024);
    });

    it("leaves the descriptor figures undefined without /proc, and still reads CPU and memory", async () => {
      const sample = await readProcess({ fdDirectory: join(dir, "none"), limitsFile: join(dir, "none") });
      expect(sample.openFds).to.equal(undefined);
      expect(sample.maxFds).to.equal(undefined);
      expect(sample.cpuSeconds).to.be.above(0);
      expect(sample.residentBytes).to.be.above(0);
    });

    it("reads this process: its start before now, descriptors within the limit", async () => {
      const sample = await readProcess();
      const now = Date.now() / 1000;
      expect(sample.startTimeSeconds).to.be.within(now - process.uptime() - 1, now);
      expect(sample.openFds).to.be.above(2);
      expect(sample.openFds).to.be.at.most(sample.maxFds ?? Infinity);
    });
  });
});
