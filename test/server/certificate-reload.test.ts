import { expect } from "chai";
import { copyFileSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createMemoryLogger, type MemoryLogger } from "../../src/log.js";
import { CertificateReload } from "../../src/server/certificate-reload.js";
import { listen, type ListeningServer } from "../../src/server/listen.js";
import {
  encryptKey,
  fingerprintOf,
  makeCertificate,
  servedFingerprint,
  type CertificateFiles,
} from "../support/certificates.js";
import { until } from "../support/net.js";
import { tempDir } from "../support/temp.js";
import { requireTool } from "../support/tools.js";

describe("certificate reload under a running https server", function () {
  this.timeout(30_000);
  let made: string;
  let first: CertificateFiles;
  let second: CertificateFiles;
  let live: CertificateFiles;
  let server: ListeningServer;
  let reload: CertificateReload;
  let logger: MemoryLogger;

  before(function () {
    requireTool(this, "openssl");
    made = tempDir("reload-made-");
    first = makeCertificate(made, "first");
    second = makeCertificate(made, "second");
  });

  beforeEach(async () => {
    const dir = tempDir("reload-live-");
    live = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key") };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const loaded = { cert: readFileSync(live.cert), key: readFileSync(live.key) };
    server = await listen({ protocol: "https", host: "127.0.0.1", port: 0 }, (_q, r) => r.end("ok"), loaded);
    logger = createMemoryLogger();
    // Looks are taken by hand (look()), so that the test counts them rather than timing them.
    reload = new CertificateReload({
      paths: { certificateFile: live.cert, privateKeyFile: live.key },
      loaded,
      logger,
      apply: (files) => server.replaceTls(files),
    });
  });
  afterEach(() => server.close(0));

  /** Enough looks for any change to be taken (two agreeing looks), and then some. */
  const looks = async (n = 4): Promise<void> => {
    for (let i = 0; i < n; i++) await reload.look();
  };
  const served = (): Promise<string> => servedFingerprint(server.port);
  const warnings = (): string[] => logger.lines.filter((l) => l.startsWith("WARN"));

  it("serves a rotated pair to new connections, and logs the new certificate once", async () => {
    await looks();
    expect(logger.lines).to.deep.equal([]);
    copyFileSync(second.cert, live.cert);
    copyFileSync(second.key, live.key);
    await looks();
    expect(await served()).to.equal(fingerprintOf(second.cert));
    expect(logger.lines).to.have.length(1);
    expect(logger.lines[0])
      .to.match(/^INFO certificate_file and private_key_file reloaded/)
      .and.to.include(fingerprintOf(second.cert));
  });

  it("takes a pair swapped in by rename (as a Kubernetes secret or certbot does)", async () => {
    await looks();
    const staging = tempDir("reload-staging-");
    copyFileSync(second.cert, join(staging, "c"));
    copyFileSync(second.key, join(staging, "k"));
    renameSync(join(staging, "c"), live.cert);
    renameSync(join(staging, "k"), live.key);
    await looks();
    expect(await served()).to.equal(fingerprintOf(second.cert));
  });

  it("waits for the key when only the certificate was replaced so far, without a warning", async () => {
    await looks();
    copyFileSync(second.cert, live.cert);
    await reload.look(); // the writer is between its two files
    copyFileSync(second.key, live.key);
    await looks();
    expect(await served()).to.equal(fingerprintOf(second.cert));
    expect(warnings()).to.deep.equal([]);
  });

  it("keeps serving the old pair when the certificate is corrupted, and says so once", async () => {
    await looks();
    writeFileSync(live.cert, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
    await looks(8);
    expect(await served()).to.equal(fingerprintOf(first.cert));
    expect(warnings()).to.have.length(1);
    expect(warnings()[0])
      .to.include("certificate_file")
      .and.to.include(live.cert)
      .and.to.include("still serving the previous certificate")
      .and.to.include(fingerprintOf(first.cert));
    copyFileSync(second.cert, live.cert);
    copyFileSync(second.key, live.key);
    await looks();
    expect(await served()).to.equal(fingerprintOf(second.cert));
  });

  it("keeps serving the old pair when the files are deleted, and says so once; back when restored", async () => {
    await looks();
    rmSync(live.cert);
    rmSync(live.key);
    await looks(8);
    expect(await served()).to.equal(fingerprintOf(first.cert));
    expect(warnings()).to.have.length(1);
    expect(warnings()[0]).to.include("cannot be read").and.to.include("ENOENT");
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    await looks();
    expect(logger.lines.at(-1)).to.match(/^INFO .*usable again, and unchanged/);
    expect(await served()).to.equal(fingerprintOf(first.cert));
  });

  it("keeps the old pair for a mismatched key, naming both files", async () => {
    await looks();
    copyFileSync(second.key, live.key);
    await looks(8);
    expect(await served()).to.equal(fingerprintOf(first.cert));
    expect(warnings()).to.have.length(1);
    expect(warnings()[0]).to.include("private_key_file").and.to.include(live.key).and.to.include(live.cert);
  });

  it("keeps the old pair for an encrypted key, saying encrypted keys are not supported", async () => {
    await looks();
    copyFileSync(second.cert, live.cert);
    encryptKey(second.key, live.key);
    await looks(8);
    expect(await served()).to.equal(fingerprintOf(first.cert));
    expect(warnings()).to.have.length(1);
    expect(warnings()[0]).to.include("encrypted keys are not supported");
  });

  it("looks on its own once started", async () => {
    const timed = new CertificateReload({
      paths: { certificateFile: live.cert, privateKeyFile: live.key },
      loaded: { cert: readFileSync(live.cert), key: readFileSync(live.key) },
      logger,
      apply: (files) => server.replaceTls(files),
      intervalMs: 50,
    });
    timed.start();
    try {
      copyFileSync(second.cert, live.cert);
      copyFileSync(second.key, live.key);
      await until(async () => (await served()) === fingerprintOf(second.cert), "the new certificate");
    } finally {
      timed.stop();
    }
  });
});
