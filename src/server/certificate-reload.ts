import { readFile, stat } from "node:fs/promises";
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
  /** How often the files are looked at; default 5 s. A change is taken once it held for one look. */
  intervalMs?: number;
}

/** How often the certificate and key files are looked at unless told otherwise. */
export const DEFAULT_CERTIFICATE_POLL_MS = 5000;

/**
 * Watches the certificate and key files and puts a changed pair in service (cert-manager,
 * certbot and Kubernetes secrets all replace files in place or by rename, so a look at `stat`
 * sees each of them). A pair that cannot be read or served (deleted, corrupt, mismatched,
 * encrypted) leaves the old one in service and is logged once, until the files change again.
 */
export class CertificateReload {
  private readonly options: CertificateReloadOptions;
  private current: TlsFiles;
  private timer: NodeJS.Timeout | undefined;
  /** What the files looked like when last read (undefined before the first look). */
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

  /** One look: reads and applies the pair once a change has held still for one interval. */
  async look(): Promise<void> {
    if (this.looking) return;
    this.looking = true;
    try {
      const seen = await this.fingerprintFiles();
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
      this.take(await this.read());
    } finally {
      this.looking = false;
    }
  }

  private take(read: TlsFiles | string): void {
    const { logger } = this.options;
    if (typeof read === "string") return this.refuse(read);
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

  /** The pair as read now, or why it cannot be served. */
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
    const files: TlsFiles = { cert, key };
    const wrong = tlsFilesProblem(files, this.options.paths);
    if (wrong === undefined) return files;
    const path = wrong.key === "certificate_file" ? certificateFile : privateKeyFile;
    return `certificate reload: ${wrong.key} ${JSON.stringify(path)} ${wrong.problem}`;
  }

  /** What the two files look like to `stat` (a missing file included), as one string. */
  private async fingerprintFiles(): Promise<string> {
    const { certificateFile, privateKeyFile } = this.options.paths;
    const one = async (path: string): Promise<string> => {
      try {
        const s = await stat(path);
        return `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}:${s.ctimeMs}`;
      } catch (err) {
        return `error:${(err as NodeJS.ErrnoException).code ?? "?"}`;
      }
    };
    return `${await one(certificateFile)}|${await one(privateKeyFile)}`;
  }
}
