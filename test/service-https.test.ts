import { expect } from "chai";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { join } from "node:path";
import {
  encryptKey,
  fingerprintOf,
  makeCertificate,
  servedFingerprint,
  type CertificateFiles,
} from "./support/certificates.js";
import { spawnCli, cleanEnv, waitForStderr } from "./support/cli.js";
import { request } from "./support/http.js";
import { until } from "./support/net.js";
import { startTestService } from "./support/service.js";
import { tempDir } from "./support/temp.js";
import { requireTool } from "./support/tools.js";

/** Raw TCP connections to `port` that never start a TLS handshake; `ended` when the server let go. */
async function silentClients(
  port: number,
  count: number,
): Promise<{ sockets: Socket[]; ended: () => number }> {
  let ended = 0;
  const sockets = Array.from({ length: count }, () => {
    const socket = connect({ port, host: "127.0.0.1", allowHalfOpen: true });
    socket.on("error", () => undefined);
    let counted = false;
    const end = (): void => {
      if (!counted) ended += 1;
      counted = true;
    };
    socket.on("end", end);
    socket.on("close", end);
    return socket;
  });
  await until(() => sockets.every((s) => !s.connecting), "the silent clients to connect");
  return { sockets, ended: () => ended };
}

describe("the service on https", function () {
  this.timeout(40_000);
  let made: string;
  let first: CertificateFiles;
  let second: CertificateFiles;

  before(function () {
    requireTool(this, "openssl");
    made = tempDir("service-tls-");
    first = makeCertificate(made, "first");
    second = makeCertificate(made, "second");
  });

  const https = { protocol: "https", host: "127.0.0.1", port: 0 } as const;

  it("refuses an encrypted key at start with exit status 2, saying encrypted keys are not supported", async () => {
    const encrypted = join(made, "encrypted.key");
    encryptKey(first.key, encrypted);
    const err = await startTestService({
      metricsAddress: https,
      certificateFile: first.cert,
      privateKeyFile: encrypted,
    }).then(
      () => undefined,
      (e: unknown) => e as { exitCode: number; key: string; message: string },
    );
    expect(err?.exitCode).to.equal(2);
    expect(err?.key).to.equal("private_key_file");
    expect(err?.message).to.include("encrypted keys are not supported");
  });

  it("serves a certificate rotated under the running service on both ports", async () => {
    const dir = tempDir("service-tls-live-");
    const live = { cert: join(dir, "tls.crt"), key: join(dir, "tls.key") };
    copyFileSync(first.cert, live.cert);
    copyFileSync(first.key, live.key);
    const { service, logger } = await startTestService({
      metricsAddress: https,
      enableInferenceApi: true,
      inferenceAddress: https,
      certificateFile: live.cert,
      privateKeyFile: live.key,
    });
    try {
      const ports = [service.metricsUrl, service.inferenceUrl].map((url) => Number(new URL(url ?? "").port));
      for (const port of ports) expect(await servedFingerprint(port)).to.equal(fingerprintOf(first.cert));
      copyFileSync(second.cert, live.cert);
      copyFileSync(second.key, live.key);
      // The service reads the files every 2 s and takes a pair two reads agree on.
      for (const port of ports) {
        await until(
          async () => (await servedFingerprint(port)) === fingerprintOf(second.cert),
          `port ${port} to serve the new certificate`,
          20_000,
        );
      }
      expect(logger.lines.filter((l) => l.includes("reloaded"))).to.have.length(1);
    } finally {
      await service.stop();
    }
  });

  it("closes silent pre-handshake clients on both ports at the handshake deadline, counting nothing", async () => {
    const { service, url } = await startTestService({
      metricsAddress: https,
      enableInferenceApi: true,
      inferenceAddress: https,
      certificateFile: first.cert,
      privateKeyFile: first.key,
      tlsHandshakeTimeoutMs: 300,
    });
    const ca = { ca: readFileSync(first.cert) };
    try {
      for (const base of [url, `${service.inferenceUrl ?? ""}/ping`]) {
        const port = Number(new URL(base).port);
        // 1,030 would exhaust a test machine's descriptors; the cap is the same mechanism at any size.
        const silent = await silentClients(port, 40);
        await until(() => silent.ended() === 40, "the server to close every silent client");
        const res = await request(base, ca);
        expect(res.status).to.equal(200);
        for (const s of silent.sockets) s.destroy();
      }
      // Nothing was answered to them, so nothing was counted: only the two requests above.
      const text = await service.scrape(["Requests2XX", "Requests4XX"]);
      expect(text).to.match(/^Requests2XX\{[^}]*\} 2\.0$/m);
      expect(text).not.to.match(/^Requests4XX\{/m);
    } finally {
      await service.stop();
    }
  });

  it("ends a connection still before its handshake when stop() returns, without waiting for the drain", async () => {
    const { service } = await startTestService({
      metricsAddress: https,
      certificateFile: first.cert,
      privateKeyFile: first.key,
      tlsHandshakeTimeoutMs: 600_000,
      drainTimeoutSeconds: 600,
    });
    const held = await silentClients(Number(new URL(service.metricsUrl ?? "").port), 1);
    await new Promise((r) => setTimeout(r, 200)); // let the server accept it
    await service.stop();
    // The client hears its end a moment after the server closed its side.
    await until(() => held.ended() === 1, "the held client to be closed", 2000);
  });

  it("stops on SIGTERM without waiting for a client that holds a connection and never starts TLS", async function () {
    const dir = tempDir("service-tls-cli-");
    const config = join(dir, "config.properties");
    writeFileSync(
      config,
      [
        "metrics_address=https://127.0.0.1:0",
        `certificate_file=${first.cert}`,
        `private_key_file=${first.key}`,
        "number_of_gpu=0",
        // Far beyond the test's timeout: the stop must not wait for the handshake or the drain.
        "tls_handshake_timeout_ms=600000",
        "drain_timeout=600",
      ].join("\n"),
    );
    const child = spawnCli(["--ts-config", config], cleanEnv());
    try {
      const [, port] = await waitForStderr(child, /listening on https:\/\/127\.0\.0\.1:(\d+)\/metrics/);
      const held = await silentClients(Number(port), 1);
      await new Promise((r) => setTimeout(r, 200)); // let the server accept it
      const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      expect(await exited).to.equal(0);
      await until(() => held.ended() === 1, "the held client to be closed");
    } finally {
      child.kill("SIGKILL");
    }
  });
});
