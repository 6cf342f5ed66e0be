import { expect } from "chai";
import { negotiateFormat, type OfferedFormats } from "../../src/server/accept-format.js";

const PROTOBUF = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";
const OPENMETRICS = "application/openmetrics-text;version=1.0.0";

/** Prometheus v2.42.0's Accept, default flags (scrape/scrape.go, `scrapeAcceptHeader`). */
const PROMETHEUS_2_42 =
  "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
/** Prometheus v2.42.0's Accept with `--enable-feature=native-histograms` (`scrapeAcceptHeaderWithProtobuf`). */
const PROMETHEUS_2_42_NATIVE =
  "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited,application/openmetrics-text;version=1.0.0;q=0.8,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

const ALL: OfferedFormats = { protobuf: true, openMetrics: true };
const PROTOBUF_ONLY: OfferedFormats = { protobuf: true, openMetrics: false };
const OPENMETRICS_ONLY: OfferedFormats = { protobuf: false, openMetrics: true };
const TEXT_ONLY: OfferedFormats = { protobuf: false, openMetrics: false };

describe("negotiateFormat", () => {
  describe("with Prometheus 2.42's own Accept headers", () => {
    it("gives default-flag Prometheus OpenMetrics when offered, else text", () => {
      expect(negotiateFormat(PROMETHEUS_2_42, ALL)).to.equal("openmetrics");
      expect(negotiateFormat(PROMETHEUS_2_42, OPENMETRICS_ONLY)).to.equal("openmetrics");
      expect(negotiateFormat(PROMETHEUS_2_42, PROTOBUF_ONLY)).to.equal("text");
      expect(negotiateFormat(PROMETHEUS_2_42, TEXT_ONLY)).to.equal("text");
    });

    it("gives native-histogram Prometheus protobuf, else OpenMetrics when offered, else text", () => {
      expect(negotiateFormat(PROMETHEUS_2_42_NATIVE, ALL)).to.equal("protobuf");
      expect(negotiateFormat(PROMETHEUS_2_42_NATIVE, PROTOBUF_ONLY)).to.equal("protobuf");
      expect(negotiateFormat(PROMETHEUS_2_42_NATIVE, OPENMETRICS_ONLY)).to.equal("openmetrics");
      expect(negotiateFormat(PROMETHEUS_2_42_NATIVE, TEXT_ONLY)).to.equal("text");
    });
  });

  it("chooses protobuf when Accept names the delimited MetricFamily above text", () => {
    for (const header of [
      PROTOBUF,
      `${PROTOBUF},application/openmetrics-text;version=1.0.0;q=0.8,text/plain;version=0.0.4;q=0.5,*/*;q=0.1`,
      `text/plain;q=0.2,${PROTOBUF};q=0.9`,
      `application/vnd.google.protobuf; proto="io.prometheus.client.MetricFamily"; encoding=delimited`,
      [`text/plain;q=0.1`, PROTOBUF],
    ]) {
      expect(negotiateFormat(header, PROTOBUF_ONLY), String(header)).to.equal("protobuf");
      expect(negotiateFormat(header, ALL), String(header)).to.equal("protobuf");
    }
  });

  it("chooses OpenMetrics when Accept names version 1.0.0, 0.0.1 or none above text and protobuf", () => {
    for (const header of [
      OPENMETRICS,
      "application/openmetrics-text",
      "Application/OpenMetrics-Text; Version=0.0.1",
      'application/openmetrics-text; version="1.0.0"; charset=utf-8',
      `text/plain;q=0.5,${OPENMETRICS};q=0.6`,
      `${PROTOBUF};q=0.5,${OPENMETRICS};q=0.6,*/*;q=0.1`,
      `application/openmetrics-text;version=2.0.0,${OPENMETRICS};q=0.7,text/plain;q=0.6`,
      [`*/*;q=0.1`, OPENMETRICS],
    ]) {
      expect(negotiateFormat(header, ALL), String(header)).to.equal("openmetrics");
      expect(negotiateFormat(header, OPENMETRICS_ONLY), String(header)).to.equal("openmetrics");
    }
  });

  it("never chooses OpenMetrics when it is not offered (the setting is off)", () => {
    for (const header of [OPENMETRICS, PROMETHEUS_2_42, `${OPENMETRICS},${PROTOBUF};q=0.5`]) {
      expect(negotiateFormat(header, PROTOBUF_ONLY), header).not.to.equal("openmetrics");
      expect(negotiateFormat(header, TEXT_ONLY), header).to.equal("text");
    }
    expect(negotiateFormat(`${OPENMETRICS},${PROTOBUF};q=0.5`, PROTOBUF_ONLY)).to.equal("protobuf");
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
      `${OPENMETRICS};q=0`,
      `${OPENMETRICS};q=0.5,text/plain;q=0.5`,
      `${OPENMETRICS};q=0.5,*/*`,
      `${OPENMETRICS};q=1.5`,
      "application/openmetrics-text;version=2.0.0",
      "application/*",
    ]) {
      expect(negotiateFormat(header, ALL), String(header)).to.equal("text");
    }
  });

  it("prefers protobuf to OpenMetrics at the same q-value, and the higher q-value otherwise", () => {
    expect(negotiateFormat(`${OPENMETRICS},${PROTOBUF}`, ALL)).to.equal("protobuf");
    expect(negotiateFormat(`${OPENMETRICS};q=0.9,${PROTOBUF};q=0.8`, ALL)).to.equal("openmetrics");
    expect(negotiateFormat(`${OPENMETRICS};q=0.8,${PROTOBUF};q=0.9`, ALL)).to.equal("protobuf");
  });

  it("lets the most specific text range decide text's q-value", () => {
    expect(negotiateFormat(`${PROTOBUF};q=0.5,text/plain;q=0.1,*/*;q=0.9`, ALL)).to.equal("protobuf");
    expect(negotiateFormat(`${PROTOBUF};q=0.5,text/plain;q=0.9,*/*;q=0.1`, ALL)).to.equal("text");
    expect(negotiateFormat(`${OPENMETRICS};q=0.5,text/plain;q=0.1,*/*;q=0.9`, ALL)).to.equal("openmetrics");
    expect(negotiateFormat(`${OPENMETRICS};q=0.5,text/plain;q=0.9,*/*;q=0.1`, ALL)).to.equal("text");
  });
});
