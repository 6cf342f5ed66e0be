import { BlockList, isIP } from "node:net";

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
// ::ffff:127.0.0.1 (IPv4-mapped) is matched by the IPv4 rule.
LOOPBACK.addAddress("::1", "ipv6");

/**
 * Whether a bound IP address (as `server.address().address` reports it) takes connections from
 * this host only: 127.0.0.0/8 or ::1. `0.0.0.0`, `::` and every other address are reachable from
 * other hosts as far as the network allows.
 */
export function isLoopbackAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return LOOPBACK.check(address, family === 4 ? "ipv4" : "ipv6");
}
