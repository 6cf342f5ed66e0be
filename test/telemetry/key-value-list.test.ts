import { expect } from "chai";
import { checkHeaders, parseKeyValueList } from "../../src/telemetry/key-value-list.js";

describe("key=value lists", () => {
  it("parses %-encoded names and values, skipping empty items", () => {
    expect(parseKeyValueList(" a=1 ,, b%20c = x%2Cy=z ,", "header")).to.deep.equal({
      a: "1",
      "b c": "x,y=z",
    });
  });

  // Each malformed list holds the secret "hunter2"; no message may quote it.
  const refused: [string, RegExp][] = [
    [
      "authorization:Bearer hunter2",
      /^header "authorization" \(item 1 of 1\) is written name:value; write name=value/,
    ],
    [
      "a=1,Bearer hunter2",
      /^item 2 of 2 is not name=value; .*\(the item is not shown: it may hold a secret\)$/,
    ],
    ["=hunter2", /^item 1 of 1 has no name before its "="/],
    [
      "api-key=hunter2%zz",
      /^header "api-key" \(item 1 of 1\) has a broken %-escape in its value \(not shown\)$/,
    ],
    ["hunter2%zz=x", /^item 1 of 1 has a broken %-escape in its name/],
  ];
  for (const [text, reason] of refused) {
    it(`refuses ${JSON.stringify(text.replace("hunter2", "<secret>"))} without quoting the secret`, () => {
      const problem = parseKeyValueList(text, "header");
      expect(problem).to.be.a("string").and.to.match(reason).and.not.to.include("hunter2");
    });
  }

  it("checks header names and values for HTTP and gRPC, naming the header and never its value", () => {
    expect(checkHeaders({ authorization: "Bearer hunter2", "X-Tenant": "été" }, "http")).to.equal(undefined);
    expect(checkHeaders({ authorization: "Bearer hunter2" }, "grpc")).to.equal(undefined);
    const problems = [
      checkHeaders({ "bad name": "hunter2" }, "http"),
      checkHeaders({ authorization: "Bearer\r\nhunter2" }, "http"),
      checkHeaders({ authorization: "Bearer hunter2\u2028" }, "http"),
      checkHeaders({ authorization: "Bearer hunter2\u00e9" }, "grpc"),
      checkHeaders({ "auth!": "hunter2" }, "grpc"),
      checkHeaders({ "token-bin": "hunter2" }, "grpc"),
    ];
    expect(problems[0]).to.match(/^header name "bad name" is not a valid HTTP header name/);
    expect(problems[1]).to.match(
      /^header "authorization" has a character in its value that HTTP cannot carry/,
    );
    expect(problems[2]).to.match(/^header "authorization" has a character/);
    expect(problems[3]).to.match(
      /^header "authorization" has a character in its value that gRPC metadata cannot carry/,
    );
    expect(problems[4]).to.match(/^header name "auth!" is not valid gRPC metadata/);
    expect(problems[5]).to.match(/binary gRPC metadata/);
    for (const problem of problems) expect(problem).to.be.a("string").and.not.to.include("hunter2");
  });
});
