/** Why a request gave up on a worker: it did not answer in time, or could not be reached. */
export type WorkerFault = "stuck" | "unreachable";

/** One worker slot, serving one request at a time. */
export interface WorkerSlot {
  /** The worker's base URL while it is ready; undefined while it starts, restarts or is suspect. */
  url(): string | undefined;
  /** Hears that a request failed on this worker, before the slot is given back. */
  fault(kind: WorkerFault, detail: string): void;
  /**
   * Whether the worker process that served `url` has exited, or does within `ms`; false where
   * that cannot be seen (a `url` worker this service does not run).
   */
  exitedWithin?(url: string, ms: number): Promise<boolean>;
}

/** A slot lent to one request; give it back with `release()` (later calls do nothing). */
export interface Lease {
  url: string;
  /** Gives the slot back; with a fault, the worker hears it first, so it is not lent again while suspect. */
  release(fault?: { kind: WorkerFault; detail: string }): void;
  /** Whether this slot's worker process has exited, or does within `ms` (see WorkerSlot.exitedWithin). */
  exitedWithin(ms: number): Promise<boolean>;
}

/** A request waiting for a slot: granted one, or refused when the pool closes. */
export interface PoolWaiter {
  grant(lease: Lease): void;
  refuse(reason: Error): void;
}

/** The queue is full: the request is refused (503), as TorchServe does past job_queue_size. */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the job queue is full (job_queue_size=${limit})`);
    this.name = "QueueFullError";
  }
}

/** The pool is closed: the service is stopping. */
export class PoolClosedError extends Error {
  constructor() {
    super("the service is stopping");
    this.name = "PoolClosedError";
  }
}

/**
 * The workers of one model version: each slot serves one request at a time; requests beyond the
 * free ready slots wait in FIFO order, at most `queueLimit` of them, until granted a slot, cancelled
 * (their client left, their time ran out) or refused (the pool closed). `onDepth` hears every
 * queue change.
 *
 * A slot given back goes to the next waiter only after a turn of the event loop: a worker that
 * exits right after its answer is usually seen exiting by then (its exit and the end of its
 * connections are already on their way), and is not lent again.
 */
export class WorkerPool {
  private readonly free: number[] = [];
  private readonly waiting: PoolWaiter[] = [];
  private closed = false;
  private lending: NodeJS.Immediate | undefined;
  /** Heard once every slot is back (see {@link idle}). */
  private readonly idleWaiters: (() => void)[] = [];

  constructor(
    private readonly slots: readonly WorkerSlot[],
    private readonly queueLimit: number,
    private readonly onDepth: (depth: number) => void = () => undefined,
  ) {
    for (let i = 0; i < slots.length; i++) this.free.push(i);
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.waiting.length;
  }

  /** Slots lent to requests now. */
  lent(): number {
    return this.slots.length - this.free.length;
  }

  /** Slots whose worker is ready now, busy or not. */
  readyCount(): number {
    let ready = 0;
    for (const slot of this.slots) if (slot.url() !== undefined) ready++;
    return ready;
  }

  /**
   * A ready free slot now, else undefined after queueing `waiter` (granted later, or refused).
   * Throws QueueFullError when the queue is full and PoolClosedError once the pool is closed.
   * `again`: a request sent back after its worker failed before seeing it; it goes to the head
   * of the queue, whatever its length, since it already had its turn.
   */
  acquire(waiter: PoolWaiter, again = false): Lease | undefined {
    if (this.closed) throw new PoolClosedError();
    // Those already waiting go first (a slot given back reaches them a turn later).
    const lease = this.waiting.length === 0 || again ? this.takeReady() : undefined;
    if (lease !== undefined) return lease;
    if (again) this.waiting.unshift(waiter);
    else if (this.waiting.length >= this.queueLimit) throw new QueueFullError(this.queueLimit);
    else this.waiting.push(waiter);
    this.onDepth(this.waiting.length);
    return undefined;
  }

  /** Takes a waiter out of the queue; false when it is not queued (granted, refused, never queued). */
  cancel(waiter: PoolWaiter): boolean {
    const at = this.waiting.indexOf(waiter);
    if (at < 0) return false;
    this.waiting.splice(at, 1);
    this.onDepth(this.waiting.length);
    return true;
  }

  /** Hands ready free slots to waiting requests; call when a worker becomes ready again. */
  dispatch(): void {
    while (this.waiting.length > 0) {
      const lease = this.takeReady();
      if (lease === undefined) return;
      const waiter = this.waiting.shift();
      this.onDepth(this.waiting.length);
      waiter?.grant(lease);
    }
  }

  /** Refuses everything still waiting with PoolClosedError (returns how many); later acquire() calls throw it. */
  close(): number {
    this.closed = true;
    clearImmediate(this.lending);
    this.lending = undefined;
    const refused = this.waiting.splice(0);
    for (const waiter of refused) waiter.refuse(new PoolClosedError());
    this.onDepth(0);
    return refused.length;
  }

  /** Resolves once no slot is lent, i.e. no request is with a worker (at once when none is). */
  idle(): Promise<void> {
    if (this.free.length === this.slots.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private takeReady(): Lease | undefined {
    let url: string | undefined;
    const at = this.free.findIndex((i) => (url = this.slots[i]?.url()) !== undefined);
    if (at === -1 || url === undefined) return undefined;
    const [slot = 0] = this.free.splice(at, 1);
    const leased = url;
    let released = false;
    return {
      url,
      release: (fault) => {
        if (released) return;
        released = true;
        if (fault !== undefined) this.slots[slot]?.fault(fault.kind, fault.detail);
        this.free.push(slot);
        if (this.waiting.length > 0)
          this.lending ??= setImmediate(() => {
            this.lending = undefined;
            this.dispatch();
          });
        if (this.free.length === this.slots.length) for (const heard of this.idleWaiters.splice(0)) heard();
      },
      exitedWithin: (ms) => this.slots[slot]?.exitedWithin?.(leased, ms) ?? Promise.resolve(false),
    };
  }
}
