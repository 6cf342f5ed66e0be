import { DEFAULT_CIPHERS, createSecureContext, type SecureContextOptions } from "node:tls";

/** TLS material for an https address, and the cipher list it is served with. */
export interface TlsFiles {
  cert: Buffer;
  key: Buffer;
  /** OpenSSL cipher list (`tls_ciphers`); default {@link FORWARD_SECRET_CIPHERS}. */
  ciphers?: string | undefined;
}

/**
 * Suites refused whatever `tls_ciphers` says: no encryption, no authentication, and the broken
 * ciphers and digests. TLS 1.0 and 1.1 are refused by Node's minimum version (TLS 1.2).
 */
export const ALWAYS_REFUSED = "!aNULL:!eNULL:!EXPORT:!LOW:!DES:!3DES:!RC4:!MD5:!PSK:!SRP";

/**
 * The default list: Node's own, less the suites whose key exchange is RSA key transport (`kRSA`,
 * e.g. AES128-SHA), which have no forward secrecy: whoever later gets the key reads every
 * recorded session. TLS 1.3 suites always have it.
 */
export const FORWARD_SECRET_CIPHERS = `${DEFAULT_CIPHERS}:!kRSA`;

/** The cipher list actually served for a `tls_ciphers` value (undefined: the default). */
export function effectiveCiphers(ciphers: string | undefined): string {
  return `${ciphers ?? FORWARD_SECRET_CIPHERS}:${ALWAYS_REFUSED}`;
}

/** Node's secure-context options for `files` (cert and key undefined when there are none). */
export function tlsContextOptions(files: TlsFiles | undefined): SecureContextOptions {
  return { cert: files?.cert, key: files?.key, ciphers: effectiveCiphers(files?.ciphers) };
}

/** Why OpenSSL refuses a `tls_ciphers` value, or undefined when it selects at least one suite. */
export function cipherListProblem(ciphers: string): string | undefined {
  try {
    createSecureContext({ ciphers: effectiveCiphers(ciphers) });
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}
