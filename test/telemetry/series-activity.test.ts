import { expect } from "chai";
import { labelPairs } from "../../src/exposition/torchserve-text.js";
import { SeriesActivity } from "../../src/telemetry/series-activity.js";

describe("SeriesActivity", () => {
  const dims = ["ModelName", "Hostname"];
  const a = { ModelName: "a", Hostname: "h" };
  const b = { ModelName: "b", Hostname: "h" };
  /** Series are looked up by the label text the store shows them with. */
  const [la, lb] = [labelPairs(dims, a), labelPairs(dims, b)];

  it("keeps every series when expiry is off, tracking nothing", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(0, () => clock.t);
    activity.touch("M", dims, a);
    clock.t = 1e12;
    expect(activity.enabled).to.be.false;
    expect(activity.isLive("M", la)).to.be.true;
  });

  it("leaves out a series idle past the expiry, and brings it back when it is updated", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(1000, () => clock.t);
    activity.touch("M", dims, a);
    activity.touch("M", dims, b);
    clock.t = 900;
    activity.touch("M", dims, b);
    clock.t = 1500;
    expect([activity.isLive("M", la), activity.isLive("M", lb)]).to.deep.equal([false, true]);
    activity.touch("M", dims, a);
    expect(activity.isLive("M", la)).to.be.true;
    expect(activity.isLive("Other", la)).to.be.true; // never seen: shown
  });

  it("never expires a pinned series, and ages it from the moment it is unpinned", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(1000, () => clock.t);
    activity.touch("W", dims, a);
    activity.pin("W", dims, a);
    activity.touch("W", dims, a);
    clock.t = 10_000;
    expect(activity.isLive("W", la)).to.be.true;
    activity.unpin("W", dims, a);
    clock.t = 10_900;
    expect(activity.isLive("W", la)).to.be.true;
    clock.t = 11_100;
    expect(activity.isLive("W", la)).to.be.false;
  });
});
