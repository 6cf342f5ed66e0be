import { CertificateReload, type CertificateReloadOptions } from "../server/certificate-reload.js";
import type { ServicePart } from "./part.js";

/** Certificate rotation as a part: reads the TLS files every interval while the service runs. */
export class CertificateReloadPart implements ServicePart {
  readonly name = "certificate reload";
  private readonly reload: CertificateReload;

  constructor(options: CertificateReloadOptions) {
    this.reload = new CertificateReload(options);
  }

  activity(): undefined {
    return undefined;
  }

  start(): Promise<void> {
    this.reload.start();
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.reload.stop();
    return Promise.resolve();
  }
}
