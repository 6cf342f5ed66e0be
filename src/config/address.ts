import { isIPv6 } from "node:net";
import { ConfigError, type ConfigOrigin } from "./errors.js";
import { redactUrl } from "./redact.js";
import type { ListenAddress } from "./types.js";

/** Which listener an address is for; it decides the default ports. */
export type AddressKind = "metrics" | "inference";

const DEFAULT_PORTS: Record<AddressKind, Record<ListenAddress["protocol"], number>> = {
  metrics: { http: 8082, https: 8445 },
  inference: { http: 8080, https: 8443 },
};

// Parsed by hand rather than with `new URL`, which drops a port equal to the scheme's default
// (`http://h:80` would come back without a port and silently get ours) and accepts far more than a bind address.
const ADDRESS_PATTERN = /^(https?):\/\/(\[[^\]]*\]|[^/:[\]]*)(?::([^/:]*))?\/?$/i;
const HOST_NAME_PATTERN = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

/**
 * Parses a `metrics_address` / `inference_address` value: `http(s)://host[:port][/]`, host an IPv4
 * address, a name or a bracketed IPv6 address (returned without brackets, as `listen()` wants it).
 * A missing port gets the kind's default (metrics 8082/8445, inference 8080/8443); port 0 lets the OS choose.
 */
export function parseListenAddress(
  text: string,
  kind: AddressKind,
  origin: ConfigOrigin = {},
): ListenAddress {
  function fail(why: string): never {
    throw new ConfigError(
      `${why}; expected http://host[:port] or https://host[:port], e.g. ${example(kind)}`,
      {
        ...origin,
        key: origin.key ?? `${kind}_address`,
        // An address is no place for a password, but one written there is not printed back.
        value: redactUrl(text),
      },
    );
  }

  const trimmed = text.trim();
  const match = ADDRESS_PATTERN.exec(trimmed);
  if (match === null) {
    if (/^unix:/i.test(trimmed)) fail("unix domain sockets are not supported");
    if (!/^https?:\/\//i.test(trimmed)) fail("is not an http:// or https:// address");
    if (isBareIPv6(trimmed)) fail("has an IPv6 host without brackets; write it as http://[::1]:port");
    fail("has a path, user or stray character after the host (only a trailing / may follow the port)");
  }
  const [, scheme = "", rawHost = "", rawPort] = match;
  const protocol = scheme.toLowerCase() === "https" ? "https" : "http";

  let host = rawHost;
  if (rawHost.startsWith("[")) {
    host = rawHost.slice(1, -1);
    if (!isIPv6(host)) fail(`has "${host}" in brackets, which is not an IPv6 address`);
  } else if (rawHost === "") {
    fail("has no host");
  } else if (!HOST_NAME_PATTERN.test(rawHost)) {
    fail(`has "${rawHost}" as host, which is neither an IPv4 address nor a host name`);
  }

  let port = DEFAULT_PORTS[kind][protocol];
  if (rawPort !== undefined) {
    if (!/^\d{1,5}$/.test(rawPort) || Number(rawPort) > 65535) {
      fail(`has port "${rawPort}", which is not a number from 0 to 65535`);
    }
    port = Number(rawPort);
  }
  return { protocol, host, port };
}

/** True for `http://::1` or `http://::1:8082`, where brackets were forgotten around an IPv6 host. */
function isBareIPv6(text: string): boolean {
  const authority = text.replace(/^https?:\/\//i, "").split("/")[0] ?? "";
  return isIPv6(authority) || isIPv6(authority.replace(/:[^:]*$/, ""));
}

function example(kind: AddressKind): string {
  return `http://127.0.0.1:${DEFAULT_PORTS[kind].http}`;
}
