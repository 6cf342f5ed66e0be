import { expect } from "chai";
import { acceptsGzip } from "../../src/server/accept-encoding.js";

describe("acceptsGzip", () => {
  const cases: [string | string[] | undefined, boolean][] = [
    [undefined, false],
    ["", false],
    ["gzip", true],
    ["GZIP", true],
    ["x-gzip", true],
    ["gzip, deflate, br", true],
    ["deflate, br", false],
    ["identity", false],
    ["*", true],
    ["gzip;q=0", false],
    ["gzip; q=0.000", false],
    ["gzip;q=0, *", false],
    ["*;q=0", false],
    ["gzip;q=0.001", true],
    ["gzip;q=0.5, identity;q=1", false],
    ["gzip;q=0.5, identity;q=0.5", true],
    ["gzip;q=1, identity;q=0.5", true],
    ["identity;q=0, *", true],
    ["*;q=0.5, identity", false],
    ["gzip;q=2", false],
    ["gzip;q=abc", false],
    ["gzip;q=0.5;level=1", true],
    [["deflate", "gzip"], true],
  ];
  for (const [header, expected] of cases) {
    it(`${JSON.stringify(header)}: ${expected ? "gzip" : "identity"}`, () => {
      expect(acceptsGzip(header)).to.equal(expected);
    });
  }
});
