import { expect } from "chai";
import { parseListenAddress, type AddressKind } from "../../src/config/address.js";
import type { ListenAddress } from "../../src/config/types.js";
import { redactUrl } from "../../src/config/redact.js";
import { catchConfigError } from "./support.js";

describe("parseListenAddress", () => {
  const accepted: [string, AddressKind, ListenAddress][] = [
    ["http://127.0.0.1:8082", "metrics", { protocol: "http", host: "127.0.0.1", port: 8082 }],
    ["http://0.0.0.0:9000", "metrics", { protocol: "http", host: "0.0.0.0", port: 9000 }],
    ["http://127.0.0.1", "metrics", { protocol: "http", host: "127.0.0.1", port: 8082 }],
    ["https://127.0.0.1", "metrics", { protocol: "https", host: "127.0.0.1", port: 8445 }],
    ["http://127.0.0.1", "inference", { protocol: "http", host: "127.0.0.1", port: 8080 }],
    ["https://127.0.0.1", "inference", { protocol: "https", host: "127.0.0.1", port: 8443 }],
    ["http://localhost:0", "metrics", { protocol: "http", host: "localhost", port: 0 }],
    [
      "http://metrics-host.example.com:80",
      "metrics",
      { protocol: "http", host: "metrics-host.example.com", port: 80 },
    ],
    ["https://node_1:443", "inference", { protocol: "https", host: "node_1", port: 443 }],
    ["http://[::1]:8082", "metrics", { protocol: "http", host: "::1", port: 8082 }],
    ["http://[::]", "metrics", { protocol: "http", host: "::", port: 8082 }],
    ["https://[fe80::1%25eth0]:0", "metrics", { protocol: "https", host: "fe80::1%25eth0", port: 0 }],
    ["http://[2001:db8::7]:65535", "inference", { protocol: "http", host: "2001:db8::7", port: 65535 }],
    ["HTTP://127.0.0.1:8082", "metrics", { protocol: "http", host: "127.0.0.1", port: 8082 }],
    ["http://127.0.0.1:8082/", "metrics", { protocol: "http", host: "127.0.0.1", port: 8082 }],
    ["  http://127.0.0.1:1  ", "metrics", { protocol: "http", host: "127.0.0.1", port: 1 }],
  ];
  for (const [text, kind, expected] of accepted) {
    it(`reads ${JSON.stringify(text)} as a ${kind} address ${JSON.stringify(expected)}`, () => {
      expect(parseListenAddress(text, kind)).to.deep.equal(expected);
    });
  }

  const refused: [string, RegExp][] = [
    ["127.0.0.1:8082", /is not an http:\/\/ or https:\/\/ address/],
    ["localhost", /is not an http:\/\/ or https:\/\/ address/],
    ["tcp://127.0.0.1:8082", /is not an http:\/\/ or https:\/\/ address/],
    ["", /is not an http:\/\/ or https:\/\/ address/],
    ["unix:/tmp/ts.sock", /unix domain sockets are not supported/],
    ["http://127.0.0.1:8082/metrics", /has a path/],
    ["http://user@127.0.0.1:8082", /neither an IPv4 address nor a host name/],
    ["http://127.0.0.1:65536", /port "65536", which is not a number from 0 to 65535/],
    ["http://127.0.0.1:-1", /port "-1"/],
    ["http://127.0.0.1:80a", /port "80a"/],
    ["http://127.0.0.1:", /port ""/],
    ["http://:8082", /has no host/],
    ["http://", /has no host/],
    ["http://::1:8082", /IPv6 host without brackets/],
    ["http://::1", /IPv6 host without brackets/],
    ["http://127.0.0.1:80:90", /stray character/],
    ["http://[not-ipv6]:8082", /"not-ipv6" in brackets, which is not an IPv6 address/],
    ["http://[]:8082", /"" in brackets/],
    ["http://-bad-:8082", /neither an IPv4 address nor a host name/],
  ];
  for (const [text, reason] of refused) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      const err = catchConfigError(() => parseListenAddress(text, "metrics"));
      expect(err.message).to.match(reason);
      expect(err.key).to.equal("metrics_address");
      expect(err.value).to.equal(redactUrl(text));
      expect(err.message).to.include(`metrics_address: ${JSON.stringify(redactUrl(text))}`);
      expect(err.message).to.include(
        "expected http://host[:port] or https://host[:port], e.g. http://127.0.0.1:8082",
      );
    });
  }

  it("never prints a password written into an address", () => {
    const err = catchConfigError(() => parseListenAddress("http://admin:hunter2@127.0.0.1:8082", "metrics"));
    expect(err.message).to.include('metrics_address: "http://***@127.0.0.1:8082"');
    expect([err.message, err.value, err.problem].join("\n")).not.to.include("hunter2");
  });

  it("names the origin it is given and the inference key by default", () => {
    const err = catchConfigError(() =>
      parseListenAddress("localhost:8080", "inference", { file: "/etc/config.properties", line: 4 }),
    );
    expect(err.message).to.match(/^\/etc\/config\.properties line 4: inference_address: "localhost:8080" /);
    expect(err.message).to.include("e.g. http://127.0.0.1:8080");
    expect(err).to.include({ file: "/etc/config.properties", line: 4, key: "inference_address" });
  });
});
