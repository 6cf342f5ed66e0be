import { execFileSync } from "node:child_process";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { connect, type PeerCertificate } from "node:tls";

/** Paths of a self-signed certificate for 127.0.0.1 and its key. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

/**
 * Makes `<name>.crt` and `<name>.key` in `dir` with openssl (a self-signed RSA certificate for
 * 127.0.0.1, valid one day). Call after requireTool(this, "openssl").
 */
export function makeCertificate(dir: string, name: string): CertificateFiles {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=127.0.0.1/O=${name}`,
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      files.key,
      "-out",
      files.cert,
    ],
    { stdio: "ignore" },
  );
  return files;
}

/** Writes `key` encrypted with a passphrase (PKCS#8, AES-256) to `out`. */
export function encryptKey(key: string, out: string): void {
  execFileSync("openssl", ["pkey", "-in", key, "-aes256", "-passout", "pass:secret", "-out", out], {
    stdio: "ignore",
  });
}

/** The SHA-256 fingerprint of a PEM certificate file, as Node prints it. */
export function fingerprintOf(certFile: string): string {
  return new X509Certificate(readFileSync(certFile)).fingerprint256;
}

/**
 * Completes a TLS handshake with the server at `port` (trusting any certificate) and returns the
 * fingerprint of the certificate it served; rejects when the handshake fails.
 */
export function servedFingerprint(port: number, options: { ciphers?: string } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(
      {
        port,
        host: "127.0.0.1",
        rejectUnauthorized: false,
        ciphers: options.ciphers,
        maxVersion: options.ciphers === undefined ? undefined : "TLSv1.2",
      },
      () => {
        const peer: PeerCertificate = socket.getPeerCertificate();
        socket.destroy();
        resolve(peer.fingerprint256);
      },
    );
    socket.on("error", reject);
  });
}
