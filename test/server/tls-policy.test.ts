import { expect } from "chai";
import { execFileSync } from "node:child_process";
import { effectiveCiphers } from "../../src/server/tls-policy.js";
import { requireTool } from "../support/tools.js";

/** The suites OpenSSL selects for a cipher list: `name kx enc mac` per suite. */
function suites(list: string): string[] {
  return execFileSync("openssl", ["ciphers", "-v", list], { encoding: "utf8" })
    .trim()
    .split("\n")
    .map((line) => line.trim().split(/\s+/).join(" "));
}

describe("the TLS cipher policy", () => {
  before(function () {
    requireTool(this, "openssl");
  });

  it("has forward secrecy in every default suite (no RSA key transport such as AES128-SHA)", () => {
    const selected = suites(effectiveCiphers(undefined));
    expect(selected.length).to.be.above(5);
    expect(selected.filter((s) => / Kx=RSA /.test(s))).to.deep.equal([]);
    expect(selected.map((s) => s.split(" ")[0]))
      .to.include("ECDHE-RSA-AES128-GCM-SHA256")
      .and.not.include("AES128-SHA");
  });

  it("lets tls_ciphers restore suites without forward secrecy, but never NULL, RC4, 3DES, DES or MD5", () => {
    const selected = suites(effectiveCiphers("ALL:COMPLEMENTOFALL:@SECLEVEL=0"));
    expect(selected.map((s) => s.split(" ")[0])).to.include("AES128-SHA");
    const weak = selected.filter((s) =>
      /Enc=None|Enc=RC4|Enc=3DES|Enc=DES\(|Mac=MD5|Au=None|Kx=PSK|Kx=SRP/.test(s),
    );
    expect(weak).to.deep.equal([]);
  });
});
