import { expect } from "chai";
import { ScrapeSends, type ScrapeSend } from "../../src/server/scrape-sends.js";

/** A send of `chunks` that notes when it is closed. */
function send(chunks: Uint8Array[], closed: ScrapeSend[]): ScrapeSend {
  const s: ScrapeSend = { chunks, close: () => closed.push(s) };
  return s;
}

const MiB = 1024 * 1024;

describe("ScrapeSends", () => {
  it("counts a piece that several sends share once, and releases it with the last of them", () => {
    const sends = new ScrapeSends({ floorBytes: 0 });
    const shared = Buffer.alloc(MiB);
    const closed: ScrapeSend[] = [];
    const a = send([shared, shared], closed);
    const b = send([shared, Buffer.alloc(10)], closed);
    sends.begin(a);
    sends.begin(b);
    expect(sends.heldBytes).to.equal(MiB + 10);
    sends.end(a);
    expect(sends.heldBytes).to.equal(MiB + 10);
    sends.end(b);
    sends.end(b);
    expect(sends.heldBytes).to.equal(0);
    expect(sends.size).to.equal(0);
    expect(closed).to.deep.equal([]);
  });

  it("closes the oldest unfinished sends once distinct bodies pass twice the largest one", () => {
    const sends = new ScrapeSends({ floorBytes: 0 });
    const closed: ScrapeSend[] = [];
    const all = Array.from({ length: 10 }, () => send([Buffer.alloc(MiB)], closed));
    for (const s of all) {
      sends.begin(s);
      expect(sends.heldBytes).to.be.at.most(2 * MiB);
    }
    expect(closed).to.deep.equal(all.slice(0, 8));
    expect(sends.size).to.equal(2);
  });

  it("keeps any number of sends of one shared body, and closes nothing below the floor", () => {
    const closed: ScrapeSend[] = [];
    const body = [Buffer.alloc(MiB), Buffer.alloc(MiB)];
    const shared = new ScrapeSends({ floorBytes: 0 });
    for (let i = 0; i < 100; i++) shared.begin(send([...body], closed));
    expect(shared.heldBytes).to.equal(2 * MiB);
    const floored = new ScrapeSends({ floorBytes: 8 * MiB });
    for (let i = 0; i < 8; i++) floored.begin(send([Buffer.alloc(MiB)], closed));
    expect(closed).to.deep.equal([]);
    floored.begin(send([Buffer.alloc(MiB)], closed));
    expect(closed).to.have.length(1);
  });

  it("tells how many it closed", () => {
    const counts: number[] = [];
    const sends = new ScrapeSends({ floorBytes: 0, onClosed: (n) => counts.push(n) });
    for (let i = 0; i < 3; i++) sends.begin(send([Buffer.alloc(100)], []));
    expect(counts).to.deep.equal([1]);
    // Three of 30 under a floor of 100; one of 45 makes 135, and two must go to be under 100.
    const more = new ScrapeSends({ floorBytes: 100, onClosed: (n) => counts.push(n) });
    for (let i = 0; i < 3; i++) more.begin(send([Buffer.alloc(30)], []));
    more.begin(send([Buffer.alloc(45)], []));
    expect(more.heldBytes).to.equal(75);
    expect(counts).to.deep.equal([1, 2]);
  });
});
