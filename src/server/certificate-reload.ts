import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { Logger } from "../log.js";
import { describeCertificate, tlsFilesProblem, type TlsPaths } from "./tls-files.js";
import type { TlsFiles } from "./tls-policy.js";

/** How to follow a certificate and key pair. */
export interface CertificateReloadOptions {
  paths: TlsPaths;
  /** The pair in service now (read and checked at start). */
  loaded: TlsFiles;
  logger: Logger;
  /** Puts a new, checked pair in service; may throw, and then the old pair stays. */
  apply(files: TlsFiles): void;
  /** How often the files are read; default 2 s. A change is taken once two looks in a row agree. */
  intervalMs?: number;
}

/** How often the certificate and key files are looked at unless told otherwise. */
export const DEFAULT_CERTIFICATE_POLL_MS = 2000;

/**
 * Reads the certificate and key files every interval and puts a changed pair in service. Reading
 * (a few KiB) rather than watching or comparing `stat` sees every way of replacing them: in
 * place, by rename, a Kubernetes secret's symlink swap, on file systems with coarse times; only a
 * change is checked with OpenSSL. A pair that cannot be read or served (deleted, corrupt,
 * mismatched, encrypted) leaves the old one in service and is logged once, until the files change.
 */
export class CertificateReload {
  private readonly options: CertificateReloadOptions;
  private current: TlsFiles;
  private timer: NodeJS.Timeout | undefined;
  /** What the files held when last taken, as a digest or a problem (undefined before the first look). */
  private examined: string | undefined;
  /** A look that differed from `examined`: taken once the next look finds the same. */
  private settling: string | undefined;
  private lastProblem: string | undefined;
  private looking = false;

  constructor(options: CertificateReloadOptions) {
    this.options = options;
    this.current = options.loaded;
  }

  /** Starts looking at the files; the timer does not hold the process. */
  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => void this.look(), this.options.intervalMs ?? DEFAULT_CERTIFICATE_POLL_MS);
    this.timer.unref();
  }

  /** Stops looking. Safe to call twice. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look: reads the pair, and takes it once two looks in a row read the same. */
  async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      const read = await this.read();
      const seen = typeof read === "string" ? `problem:${read}` : digest(read);
      if (seen === this.examined) {
        this.settling = undefined;
        return;
      }
      // A writer may be between the certificate and the key, or halfway through a file.
      if (seen !== this.settling) {
        this.settling = seen;
        return;
      }
      this.settling = undefined;
      this.examined = seen;
      this.take(read);
    } finally {
      this.looking = false;
    }
  }

  private take(read: TlsFiles | string): void {
    const { logger } = this.options;
    if (typeof read === "string") return this.refuse(read);
    const wrong = tlsFilesProblem(read, this.options.paths);
    if (wrong !== undefined) {
      const { certificateFile, privateKeyFile } = this.options.paths;
      const path = wrong.key === "certificate_file" ? certificateFile : privateKeyFile;
      return this.refuse(`certificate reload: ${wrong.key} ${JSON.stringify(path)} ${wrong.problem}`);
    }
    if (read.cert.equals(this.current.cert) && read.key.equals(this.current.key)) {
      if (this.lastProblem !== undefined) {
        logger.info(
          `certificate_file and private_key_file are usable again, and unchanged: ${this.serving()}`,
        );
        this.lastProblem = undefined;
      }
      return;
    }
    const files: TlsFiles = { ...read, ciphers: this.current.ciphers };
    try {
      this.options.apply(files);
    } catch (err) {
      return this.refuse(`cannot be served: ${(err as Error).message}`);
    }
    this.current = files;
    this.lastProblem = undefined;
    logger.info(`certificate_file and private_key_file reloaded: serving ${this.serving()}`);
  }

  private refuse(problem: string): void {
    if (problem === this.lastProblem) return;
    this.lastProblem = problem;
    this.options.logger.warn(`${problem}; still serving the previous certificate (${this.serving()})`);
  }

  private serving(): string {
    return describeCertificate(this.current.cert);
  }

  /** The pair as read now, or why it cannot be read. */
  private async read(): Promise<TlsFiles | string> {
    const { certificateFile, privateKeyFile } = this.options.paths;
    const readOne = async (key: string, path: string): Promise<Buffer | string> => {
      try {
        return await readFile(path);
      } catch (err) {
        return `certificate reload: ${key} ${JSON.stringify(path)} cannot be read: ${(err as Error).message}`;
      }
    };
    const cert = await readOne("certificate_file", certificateFile);
    if (typeof cert === "string") return cert;
    const key = await readOne("private_key_file", privateKeyFile);
    if (typeof key === "string") return key;
    return { cert, key };
  }
}

/** Stands for the contents of a pair (what changed is compared, not remembered). */
function digest(files: TlsFiles): string {
  return createHash("sha256").update(files.cert).update("\0").update(files.key).digest("hex");
}
