import { expect } from "chai";
import { parseProperties } from "../../src/config/properties.js";

describe("parseProperties", () => {
  it("reads key=value pairs with their 1-based lines", () => {
    expect(parseProperties("a=1\nb=2\n")).to.deep.equal([
      { key: "a", value: "1", line: 1 },
      { key: "b", value: "2", line: 2 },
    ]);
  });

  it("accepts ':' and whitespace as separators, with spaces around them", () => {
    expect(parseProperties("a : 1\nb 2\nc\t=  3\n")).to.deep.equal([
      { key: "a", value: "1", line: 1 },
      { key: "b", value: "2", line: 2 },
      { key: "c", value: "3", line: 3 },
    ]);
  });

  it("skips '#' and '!' comments and blank lines, and counts them as lines", () => {
    const text = "# comment\n! also a comment\n\n   \nmetrics_mode=log\n";
    expect(parseProperties(text)).to.deep.equal([{ key: "metrics_mode", value: "log", line: 5 }]);
  });

  it("does not treat '#' inside a value as a comment", () => {
    expect(parseProperties("a=x # y\n")).to.deep.equal([{ key: "a", value: "x # y", line: 1 }]);
  });

  it("joins continuation lines and strips the next line's indentation", () => {
    const text = "models=a,\\\n    b,\\\n    c\nnext=1\n";
    expect(parseProperties(text)).to.deep.equal([
      { key: "models", value: "a,b,c", line: 1 },
      { key: "next", value: "1", line: 4 },
    ]);
  });

  it("does not continue a comment that ends with a backslash", () => {
    expect(parseProperties("# note \\\na=1\n")).to.deep.equal([{ key: "a", value: "1", line: 2 }]);
  });

  it("counts CRLF and lone CR as one line break each", () => {
    expect(parseProperties("a=1\r\nb=2\rc=3\r\n\r\nd=4")).to.deep.equal([
      { key: "a", value: "1", line: 1 },
      { key: "b", value: "2", line: 2 },
      { key: "c", value: "3", line: 3 },
      { key: "d", value: "4", line: 5 },
    ]);
  });

  it("resolves escapes in keys and values", () => {
    expect(parseProperties("a\\ b=\\u0041\\tz\n")).to.deep.equal([{ key: "a b", value: "A\tz", line: 1 }]);
  });

  it("gives a key without a value the empty string", () => {
    expect(parseProperties("lonely\nempty=\n")).to.deep.equal([
      { key: "lonely", value: "", line: 1 },
      { key: "empty", value: "", line: 2 },
    ]);
  });

  it("keeps the last value and line of a repeated key, like java.util.Properties", () => {
    expect(parseProperties("a=1\nb=2\na=3\n")).to.deep.equal([
      { key: "b", value: "2", line: 2 },
      { key: "a", value: "3", line: 3 },
    ]);
  });

  it("ignores a UTF-8 byte order mark", () => {
    expect(parseProperties("\uFEFFa=1\n")).to.deep.equal([{ key: "a", value: "1", line: 1 }]);
  });

  it("returns nothing for an empty file", () => {
    expect(parseProperties("")).to.deep.equal([]);
  });
});
