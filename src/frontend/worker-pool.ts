/** A worker slot's current target; undefined while its worker is not ready (starting, restarting). */
export type SlotTarget = () => string | undefined;

/** A slot lent to one request; give it back with `release()` (later calls do nothing). */
export interface Lease {
  url: string;
  release(): void;
}

/** The queue is full: the request is refused (503), as TorchServe does past job_queue_size. */
export class QueueFullError extends Error {
  constructor(readonly limit: number) {
    super(`the job queue is full (job_queue_size=${limit})`);
    this.name = "QueueFullError";
  }
}

interface Waiter {
  resolve(lease: Lease): void;
  reject(err: Error): void;
}

/**
 * The workers of one model version: each slot serves one request at a time; requests beyond the
 * free slots wait in FIFO order, at most `queueLimit` of them. `onDepth` hears every queue change.
 */
export class WorkerPool {
  private readonly free: number[] = [];
  private readonly waiting: Waiter[] = [];
  private closed = false;

  constructor(
    private readonly slots: readonly SlotTarget[],
    private readonly queueLimit: number,
    private readonly onDepth: (depth: number) => void = () => undefined,
  ) {
    for (let i = 0; i < slots.length; i++) this.free.push(i);
  }

  /** Requests waiting for a slot. */
  get depth(): number {
    return this.waiting.length;
  }

  /** A ready slot now, or a place in the queue; rejects with QueueFullError when the queue is full. */
  acquire(): Promise<Lease> {
    if (this.closed) return Promise.reject(new Error("the model is shutting down"));
    const lease = this.takeReady();
    if (lease !== undefined) return Promise.resolve(lease);
    if (this.waiting.length >= this.queueLimit) return Promise.reject(new QueueFullError(this.queueLimit));
    return new Promise<Lease>((resolve, reject) => {
      this.waiting.push({ resolve, reject });
      this.onDepth(this.waiting.length);
    });
  }

  /** Hands ready free slots to waiting requests; call when a worker becomes ready again. */
  dispatch(): void {
    while (this.waiting.length > 0) {
      const lease = this.takeReady();
      if (lease === undefined) return;
      const waiter = this.waiting.shift();
      this.onDepth(this.waiting.length);
      waiter?.resolve(lease);
    }
  }

  /** Refuses everything still waiting; later acquire() calls reject too. */
  close(reason: Error): void {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(reason);
    this.onDepth(0);
  }

  private takeReady(): Lease | undefined {
    const at = this.free.findIndex((i) => this.slots[i]?.() !== undefined);
    if (at === -1) return undefined;
    const [slot = 0] = this.free.splice(at, 1);
    const url = this.slots[slot]?.() ?? "";
    let released = false;
    return {
      url,
      release: () => {
        if (released) return;
        released = true;
        this.free.push(slot);
        this.dispatch();
      },
    };
  }
}
