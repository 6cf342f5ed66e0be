/** What a {@link SilenceWatch} watches and what it does when the source goes quiet. */
export interface SilenceWatchOptions {
  /**
   * How long without anything heard counts as silence, in milliseconds; a function is asked at
   * every check (the source's own cadence may be learned while it is watched).
   */
  afterMs: number | (() => number);
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
    const afterMs = this.afterMs();
    if (!(afterMs > 0)) throw new RangeError(`afterMs must be positive, got ${afterMs}`);
  }

  private afterMs(): number {
    const { afterMs } = this.options;
    return typeof afterMs === "number" ? afterMs : afterMs();
  }

  /** Starts watching; silence is counted from now, or from the last time heard if later. */
  start(): void {
    this.startedAt = Date.now();
    this.arm(this.afterMs());
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
    const afterMs = this.afterMs();
    const left = afterMs - silentMs;
    if (left > 0) {
      this.arm(left);
      return;
    }
    if (this.reported !== last) {
      this.reported = last;
      this.options.onSilence(silentMs);
    }
    this.arm(afterMs);
  }
}

/** What a TorchServe follower has seen, for {@link describeTorchServeSilence}. */
export interface TorchServeSilence {
  silentMs: number;
  /** The directory followed. */
  logDir: string;
  /** Whether any metric line came since start. */
  sawMetricLines: boolean;
  /** Access-log lines read since start. */
  accessLines: number;
  /** TorchServe's metric interval as its lines' cadence showed it, if they did. */
  intervalMs: number | undefined;
}

/**
 * The warning for a TorchServe whose metric lines do not come, in words that fit what was seen:
 * lines that stopped (TorchServe stopped or is stuck: it writes host metrics every interval in
 * log mode), an access log without metric lines (metrics_mode=prometheus), or nothing at all.
 */
export function describeTorchServeSilence(s: TorchServeSilence): string {
  const seconds = Math.round(s.silentMs / 1000);
  const where = `torchserve_log_dir=${s.logDir}`;
  if (s.sawMetricLines) {
    const every =
      s.intervalMs === undefined
        ? "every metric_time_interval"
        : `every ${Math.round(s.intervalMs / 1000)} s`;
    return (
      `TorchServe's metric lines stopped ${seconds} s ago (${where}); it writes host metrics ${every} ` +
      "in metrics_mode=log or legacy, so it has probably stopped, hung, or moved its logs " +
      "(a restart goes on in the same files and is followed)"
    );
  }
  if (s.accessLines > 0) {
    return (
      `TorchServe answered ${s.accessLines} requests in its access log but wrote no metric line in ${seconds} s ` +
      `(${where}): it runs with metrics_mode=prometheus, which writes none. Set metrics_mode=log in TorchServe's ` +
      "config.properties (and enable_metrics_api=false, or another metrics_address, so that its port 8082 is free)"
    );
  }
  return (
    `nothing from TorchServe in ${seconds} s (${where}): is it running, and is this its LOG_LOCATION ` +
    "(the official image: /home/model-server/logs)? With metrics_mode=prometheus it writes no metric line; " +
    "set metrics_mode=log in TorchServe's config.properties"
  );
}
