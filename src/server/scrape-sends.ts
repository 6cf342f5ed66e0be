/**
 * Bytes that unfinished scrapes may hold together whatever the bodies' size: below it, no scrape
 * is closed for the sake of memory (expositions of a few MiB go out at once into the kernel's
 * socket buffers anyway, and are never held for long).
 */
export const SCRAPE_HOLD_FLOOR_BYTES = 16 * 1024 * 1024;

/** One scrape being sent: what it holds and how to end it. */
export interface ScrapeSend {
  /** The body's pieces, held by reference until the send ends. */
  readonly chunks: readonly Uint8Array[];
  /** Closes the scrape's connection (a response's `destroy`). */
  readonly close: () => void;
}

/** Options of {@link ScrapeSends}. */
export interface ScrapeSendsOptions {
  /** Bytes unfinished scrapes may hold whatever the bodies' size; {@link SCRAPE_HOLD_FLOOR_BYTES}. */
  floorBytes?: number;
  /** Hears how many unfinished scrapes were closed to keep the bound, each time some are. */
  onClosed?: (count: number) => void;
}

/**
 * The scrapes being sent, and the bodies they hold. A scrape holds its body until the last byte
 * is handed to the socket, so N scrapers that stop reading would hold N bodies for as long as
 * their connections live. Bodies are counted by their pieces' identity: scrapes that share a
 * rendered body (or the unchanged families and gzip segments of an older one) count it once. When
 * a new scrape begins and the held bytes pass twice the largest body being sent (and at least
 * `floorBytes`), the oldest unfinished scrapes are closed until they no longer do, so N stalled
 * scrapers hold at most about two bodies, never N.
 */
export class ScrapeSends {
  /** The unfinished sends, oldest first, with their bodies' length. */
  private readonly sends = new Map<ScrapeSend, number>();
  /** Every piece held, with the number of unfinished sends that hold it. */
  private readonly holders = new Map<Uint8Array, number>();
  private held = 0;
  private closedCount = 0;
  private readonly floorBytes: number;

  constructor(private readonly options: ScrapeSendsOptions = {}) {
    this.floorBytes = options.floorBytes ?? SCRAPE_HOLD_FLOOR_BYTES;
  }

  /** Bytes the unfinished scrapes hold together, each shared piece once. */
  get heldBytes(): number {
    return this.held;
  }

  /** How many unfinished scrapes were closed to keep the bound, since the start. */
  get closed(): number {
    return this.closedCount;
  }

  /** How many scrapes are being sent. */
  get size(): number {
    return this.sends.size;
  }

  /**
   * Registers a send that is about to start, closing older unfinished ones if the bodies held
   * would pass the bound; the caller calls {@link end} once the send is over, however it ends.
   */
  begin(send: ScrapeSend): void {
    let bytes = 0;
    for (const piece of send.chunks) bytes += piece.length;
    this.sends.set(send, bytes);
    for (const piece of distinct(send.chunks)) {
      const count = this.holders.get(piece) ?? 0;
      this.holders.set(piece, count + 1);
      if (count === 0) this.held += piece.length;
    }
    const bound = Math.max(this.floorBytes, 2 * this.largestBody());
    let closed = 0;
    // A Map iterates in insertion order: the oldest sends first.
    for (const older of [...this.sends.keys()]) {
      if (this.held <= bound) break;
      if (older === send) continue;
      this.end(older);
      older.close();
      closed++;
    }
    this.closedCount += closed;
    if (closed > 0) this.options.onClosed?.(closed);
  }

  /** Forgets a send (finished, failed or closed); a second call does nothing. */
  end(send: ScrapeSend): void {
    if (!this.sends.delete(send)) return;
    for (const piece of distinct(send.chunks)) {
      const count = this.holders.get(piece) ?? 0;
      if (count > 1) {
        this.holders.set(piece, count - 1);
      } else {
        this.holders.delete(piece);
        this.held -= piece.length;
      }
    }
  }

  private largestBody(): number {
    let largest = 0;
    for (const bytes of this.sends.values()) largest = Math.max(largest, bytes);
    return largest;
  }
}

/** The pieces, each once (a body may repeat a piece, such as a shared gzip header). */
function distinct(chunks: readonly Uint8Array[]): Set<Uint8Array> {
  return new Set(chunks);
}
