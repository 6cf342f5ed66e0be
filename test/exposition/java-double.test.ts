import { expect } from "chai";
import { formatJavaDouble } from "../../src/exposition/java-double.js";

describe("formatJavaDouble", () => {
  const cases: [number, string][] = [
    [0, "0.0"],
    [-0, "-0.0"],
    [3, "3.0"],
    [-3, "-3.0"],
    [0.001, "0.001"],
    [0.0009, "9.0E-4"],
    [0.0001, "1.0E-4"],
    [-0.00012, "-1.2E-4"],
    [1e7, "1.0E7"],
    [12345678.9, "1.23456789E7"],
    [9999999.5, "9999999.5"],
    [290371.129, "290371.129"],
    [20.054508209228516, "20.054508209228516"],
    [1e21, "1.0E21"],
    [1.5e300, "1.5E300"],
    [NaN, "NaN"],
    [Infinity, "+Inf"],
    [-Infinity, "-Inf"],
  ];
  for (const [value, text] of cases) {
    it(`prints ${String(value)} as ${text}`, () => {
      expect(formatJavaDouble(value)).to.equal(text);
    });
  }
});
