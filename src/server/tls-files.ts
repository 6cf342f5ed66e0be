import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { ConfigError } from "../config/errors.js";
import type { Settings } from "../config/types.js";
import type { TlsFiles } from "./tls-policy.js";

/** Which setting a TLS problem is about, and what is wrong with it. */
export interface TlsFileProblem {
  key: "certificate_file" | "private_key_file";
  problem: string;
}

/** Where the certificate and key are. */
export interface TlsPaths {
  certificateFile: string;
  privateKeyFile: string;
}

/**
 * Checks a certificate and a key read from `paths`, each alone and then as a pair, so that the
 * problem names the file that is wrong; undefined when OpenSSL can serve them.
 */
export function tlsFilesProblem(files: TlsFiles, paths: TlsPaths): TlsFileProblem | undefined {
  const failure = (options: { cert?: Buffer; key?: Buffer }): string | undefined => {
    try {
      createSecureContext(options);
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  };
  const keyText = files.key.toString("latin1");
  // OpenSSL would say only "bad decrypt"; there is no passphrase setting, so say what to do.
  if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|^Proc-Type: *4, *ENCRYPTED/m.test(keyText)) {
    return {
      key: "private_key_file",
      problem:
        "is an encrypted (passphrase-protected) private key, and encrypted keys are not supported: " +
        `store it decrypted (openssl pkey -in ${JSON.stringify(paths.privateKeyFile)} -out key.pem) ` +
        "in a file only the service's user can read",
    };
  }
  // A PEM file says what it holds; the most common mix-up is the two files given the other way round.
  const holdsKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(files.cert.toString("latin1"));
  const holdsCertificate = keyText.includes("-----BEGIN CERTIFICATE-----");
  const certProblem = failure({ cert: files.cert });
  if (certProblem !== undefined) {
    const hint = holdsKey
      ? " (it holds a private key: are certificate_file and private_key_file swapped?)"
      : "";
    return {
      key: "certificate_file",
      problem: `is not a PEM certificate OpenSSL can use: ${certProblem}${hint}`,
    };
  }
  const keyProblem = failure({ key: files.key });
  if (keyProblem !== undefined) {
    const hint = holdsCertificate ? " (it holds a certificate, not a private key)" : "";
    return {
      key: "private_key_file",
      problem: `is not a PEM private key OpenSSL can use: ${keyProblem}${hint}`,
    };
  }
  const pairProblem = failure({ cert: files.cert, key: files.key });
  if (pairProblem !== undefined) {
    return {
      key: "private_key_file",
      problem: `does not work with certificate_file ${JSON.stringify(paths.certificateFile)}: ${pairProblem}`,
    };
  }
  return undefined;
}

/**
 * Reads the certificate and key named in the settings and checks them before anything listens;
 * throws a ConfigError (exit status 2) naming the file that is wrong.
 */
export function readTlsSettings(settings: Settings): TlsFiles {
  const origin = (key: string, value: string | undefined) => ({ file: settings.sourceFile, key, value });
  const read = (key: string, path: string | undefined): Buffer => {
    if (path === undefined) throw new ConfigError("is required for an https address", origin(key, path));
    try {
      return readFileSync(path);
    } catch (err) {
      throw new ConfigError(`cannot be read: ${(err as Error).message}`, origin(key, path));
    }
  };
  const cert = read("certificate_file", settings.certificateFile);
  const key = read("private_key_file", settings.privateKeyFile);
  const files: TlsFiles = { cert, key, ciphers: settings.tlsCiphers };
  const paths = {
    certificateFile: settings.certificateFile ?? "",
    privateKeyFile: settings.privateKeyFile ?? "",
  };
  const wrong = tlsFilesProblem(files, paths);
  if (wrong !== undefined) {
    const path = wrong.key === "certificate_file" ? paths.certificateFile : paths.privateKeyFile;
    throw new ConfigError(wrong.problem, origin(wrong.key, path));
  }
  return files;
}

/** One line saying which certificate this is: subject, SHA-256 fingerprint, end of validity. */
export function describeCertificate(cert: Buffer): string {
  try {
    const x509 = new X509Certificate(cert);
    return `${x509.subject.replace(/\n/g, ", ")}, SHA-256 ${x509.fingerprint256}, valid until ${x509.validTo}`;
  } catch {
    return "an unreadable certificate";
  }
}
