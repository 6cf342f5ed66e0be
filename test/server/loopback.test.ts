import { expect } from "chai";
import { isLoopbackAddress } from "../../src/server/loopback.js";

describe("isLoopbackAddress", () => {
  for (const address of ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"]) {
    it(`${address} is loopback`, () => expect(isLoopbackAddress(address)).to.equal(true));
  }
  for (const address of [
    "0.0.0.0",
    "::",
    "10.0.0.1",
    "192.168.1.5",
    "::ffff:10.0.0.1",
    "fe80::1",
    "localhost",
  ]) {
    it(`${address} is not`, () => expect(isLoopbackAddress(address)).to.equal(false));
  }
});
