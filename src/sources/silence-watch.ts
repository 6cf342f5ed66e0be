/** What a {@link SilenceWatch} waits for and what it does when it does not come. */
export interface SilenceWatchOptions {
  /** How long without a {@link SilenceWatch.heard} call counts as silence, in milliseconds. */
  afterMs: number;
  /** Called once per silence: again only after something was heard in between. */
  onSilence(silentMs: number): void;
}

/**
 * Notices that a source has gone quiet: calls onSilence once when nothing was heard for `afterMs`
 * (from start, or from the last thing heard), and again only after the source spoke in between.
 * Its timer does not keep the process alive.
 */
export class SilenceWatch {
  private lastHeard = 0;
  private reported = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SilenceWatchOptions) {
    if (!(options.afterMs > 0)) throw new RangeError(`afterMs must be positive, got ${options.afterMs}`);
  }

  /** Starts watching; silence is counted from now. */
  start(): void {
    this.lastHeard = Date.now();
    this.arm(this.options.afterMs);
  }

  /** Something arrived: the silence, if any, is over. Cheap enough to call for every line. */
  heard(): void {
    this.lastHeard = Date.now();
    this.reported = false;
  }

  /** Stops watching. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  // One timer, re-armed for the rest of the period: heard() itself never touches timers.
  private arm(delayMs: number): void {
    this.timer = setTimeout(() => this.check(), delayMs);
    this.timer.unref();
  }

  private check(): void {
    const silentMs = Date.now() - this.lastHeard;
    const left = this.options.afterMs - silentMs;
    if (left > 0) {
      this.arm(left);
      return;
    }
    if (!this.reported) {
      this.reported = true;
      this.options.onSilence(silentMs);
    }
    this.arm(this.options.afterMs);
  }
}
