/** What a {@link SilenceWatch} watches and what it does when the source goes quiet. */
export interface SilenceWatchOptions {
  /** How long without anything heard counts as silence, in milliseconds. */
  afterMs: number;
  /** When the source was last heard (epoch milliseconds), or undefined if never. */
  lastHeard(): number | undefined;
  /** Called once per silence: again only after something was heard in between. */
  onSilence(silentMs: number): void;
}

/**
 * Notices that a source has gone quiet: calls onSilence once when nothing was heard for `afterMs`
 * (from start, or from the last thing heard), and again only after the source spoke in between.
 * It asks the source when it last spoke, so the source's lines pay nothing for it. Its timer does
 * not keep the process alive.
 */
export class SilenceWatch {
  private startedAt = 0;
  // The last-heard time a silence was reported for; undefined: none reported since it spoke.
  private reported: number | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SilenceWatchOptions) {
    if (!(options.afterMs > 0)) throw new RangeError(`afterMs must be positive, got ${options.afterMs}`);
  }

  /** Starts watching; silence is counted from now, or from the last time heard if later. */
  start(): void {
    this.startedAt = Date.now();
    this.arm(this.options.afterMs);
  }

  /** Stops watching. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.check(), delayMs);
    this.timer.unref();
  }

  private check(): void {
    const last = Math.max(this.options.lastHeard() ?? 0, this.startedAt);
    const silentMs = Date.now() - last;
    const left = this.options.afterMs - silentMs;
    if (left > 0) {
      this.arm(left);
      return;
    }
    if (this.reported !== last) {
      this.reported = last;
      this.options.onSilence(silentMs);
    }
    this.arm(this.options.afterMs);
  }
}
