import { expect } from "chai";
import { labelPairs } from "../../src/exposition/torchserve-text.js";
import { SeriesActivity } from "../../src/telemetry/series-activity.js";

describe("SeriesActivity", () => {
  const dims = ["ModelName", "Hostname"];
  const a = { ModelName: "a", Hostname: "h" };
  const b = { ModelName: "b", Hostname: "h" };
  /** Series are known by the label text the store keeps them with. */
  const [la, lb] = [labelPairs(dims, a), labelPairs(dims, b)];

  /** The series `expire` evicts now, as `metric labels`. */
  function expired(activity: SeriesActivity): string[] {
    const out: string[] = [];
    activity.expire((metric, labels) => out.push(`${metric} ${labels}`));
    return out;
  }

  it("tracks nothing and evicts nothing when expiry is off", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(0, () => clock.t);
    activity.touch("M", la);
    clock.t = 1e12;
    expect(activity.enabled).to.equal(false);
    expect(activity.size).to.equal(0);
    expect(expired(activity)).to.deep.equal([]);
  });

  it("evicts a series idle past the expiry, once, and forgets it until it is updated again", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(1000, () => clock.t);
    activity.touch("M", la);
    activity.touch("M", lb);
    clock.t = 900;
    activity.touch("M", lb);
    clock.t = 1000;
    expect(expired(activity)).to.deep.equal([]); // idle for exactly the expiry: still kept
    clock.t = 1500;
    expect(expired(activity)).to.deep.equal([`M ${la}`]);
    expect(activity.size).to.equal(1);
    expect(expired(activity)).to.deep.equal([]);
    activity.touch("M", la);
    clock.t = 2000;
    expect(expired(activity)).to.deep.equal([`M ${lb}`]);
    clock.t = 2600;
    expect(expired(activity)).to.deep.equal([`M ${la}`]);
    expect(activity.size).to.equal(0);
  });

  it("never evicts a pinned series, and ages it from the moment it is unpinned", () => {
    const clock = { t: 0 };
    const activity = new SeriesActivity(1000, () => clock.t);
    activity.pin("W", dims, a);
    activity.touch("W", la);
    clock.t = 10_000;
    expect(expired(activity)).to.deep.equal([]);
    activity.unpin("W", dims, a);
    clock.t = 10_900;
    expect(expired(activity)).to.deep.equal([]);
    clock.t = 11_100;
    expect(expired(activity)).to.deep.equal([`W ${la}`]);
  });

  it("does not track a series that was only pinned, nor keep anything for an unpinned one never seen", () => {
    const activity = new SeriesActivity(1000, () => 0);
    activity.pin("W", dims, b);
    activity.unpin("W", dims, b);
    expect(activity.size).to.equal(0);
  });
});
