import { expect } from "chai";
import { parseNameFilter } from "../../src/exposition/name-filter.js";

describe("parseNameFilter", () => {
  const cases: [string, string[] | undefined][] = [
    ["", undefined],
    ["?name=Requests2XX", undefined],
    ["?name[]=Requests2XX", ["Requests2XX"]],
    ["?name%5B%5D=Requests2XX", ["Requests2XX"]],
    ["?name%5b%5d=Requests2XX", ["Requests2XX"]],
    ["?name[]=A&name[]=B&name[]=A", ["A", "B"]],
    ["?name[]=A&name=B", ["A"]],
    ["?name[]=", [""]],
    ["?name[]=a%20b", ["a b"]],
    ["?other=1", undefined],
  ];
  for (const [query, names] of cases) {
    it(`reads ${JSON.stringify(query)} as ${JSON.stringify(names)}`, () => {
      const got = parseNameFilter(query);
      expect(got === undefined ? undefined : [...got]).to.deep.equal(names);
    });
  }
});
