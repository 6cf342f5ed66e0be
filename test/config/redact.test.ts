import { expect } from "chai";
import { redactUrl } from "../../src/config/redact.js";

describe("redactUrl", () => {
  const cases: [string, string][] = [
    ["http://user:hunter2@127.0.0.1:19070", "http://***@127.0.0.1:19070"],
    ["https://TOKEN@collector:4318/v1/metrics", "https://***@collector:4318/v1/metrics"],
    ["http://127.0.0.1:4318/v1/metrics?api_key=k", "http://127.0.0.1:4318/v1/metrics?***"],
    ["http://u:p@h/x?y=1#z", "http://***@h/x?***"],
    ["http://h/path#token", "http://h/path?***"],
    // Not valid URLs, masked all the same: an error message about them quotes them.
    ["http://user:pa/ss@host", "http://***@host"],
    ["http://user:hunter2@host:port?k=v", "http://***@host:port?***"],
    ["user:hunter2@collector:4317", "***@collector:4317"],
  ];
  for (const [url, shown] of cases) {
    it(`shows ${url} as ${shown}`, () => expect(redactUrl(url)).to.equal(shown));
  }

  it("leaves a URL without credentials as written, an @ in its path included", () => {
    for (const url of [
      "http://collector:4318",
      "https://h:4318/v1/metrics",
      "http://h/a@b",
      "collector:4317",
    ]) {
      expect(redactUrl(url)).to.equal(url);
    }
  });
});
