import { expect } from "chai";
import { negotiateFormat } from "../../src/server/accept-format.js";

const PROTOBUF = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

describe("negotiateFormat", () => {
  it("chooses protobuf when Accept names the delimited MetricFamily above text", () => {
    for (const header of [
      PROTOBUF,
      `${PROTOBUF},application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`,
      `text/plain;q=0.2,${PROTOBUF};q=0.9`,
      `application/vnd.google.protobuf; proto="io.prometheus.client.MetricFamily"; encoding=delimited`,
      [`text/plain;q=0.1`, PROTOBUF],
    ]) {
      expect(negotiateFormat(header), String(header)).to.equal("protobuf");
    }
  });

  it("chooses text otherwise: no header, a tie, q=0, other protobuf messages or encodings, junk", () => {
    for (const header of [
      undefined,
      "",
      "*/*",
      `${PROTOBUF};q=0`,
      `${PROTOBUF};q=0.5,text/plain;q=0.5`,
      `${PROTOBUF};q=0.5,*/*`,
      `${PROTOBUF};q=0.5,text/*`,
      "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=text",
      "application/vnd.google.protobuf;proto=other.Message;encoding=delimited",
      "application/vnd.google.protobuf",
      `${PROTOBUF};q=2`,
      `${PROTOBUF};q=banana`,
    ]) {
      expect(negotiateFormat(header), String(header)).to.equal("text");
    }
  });

  it("lets the most specific text range decide text's q-value", () => {
    expect(negotiateFormat(`${PROTOBUF};q=0.5,text/plain;q=0.1,*/*;q=0.9`)).to.equal("protobuf");
    expect(negotiateFormat(`${PROTOBUF};q=0.5,text/plain;q=0.9,*/*;q=0.1`)).to.equal("text");
  });
});
