import { AsyncLocalStorage } from "node:async_hooks";
import { Agent as HttpAgent, type ClientRequest } from "node:http";
import { Agent as HttpsAgent, type AgentOptions } from "node:https";

/**
 * The HTTP requests of one OTLP export (its retries included) and what became of their answers.
 * It lets the export's deadline end them, which the OTLP HTTP transport cannot: its timeout is
 * an idle timer that every byte from the collector restarts, so a collector dripping a byte a
 * second would hold the export, its socket and a place in the exporter's queue for ever.
 */
export class ExportRequests {
  private readonly open = new Set<ClientRequest>();
  private abortedWith: Error | undefined;
  private cut = false;

  /**
   * Whether an answer ended before its body was complete: the transport counts a 200 whose body
   * the collector cut off as a success, so the export's owner turns it into a failure.
   */
  get answerCut(): boolean {
    return this.cut;
  }

  /** Ends every open request of this export, and any it starts later, with `error`. */
  abort(error: Error): void {
    this.abortedWith = error;
    for (const request of this.open) request.destroy(error);
    this.open.clear();
  }

  /** Takes a request the export's agent is about to send. */
  adopt(request: ClientRequest): void {
    if (this.abortedWith !== undefined) {
      // A retry scheduled just before the deadline: it ends before it starts.
      request.destroy(this.abortedWith);
      return;
    }
    this.open.add(request);
    request.once("close", () => this.open.delete(request));
    request.once("response", (response) => {
      // 'close' comes right after the transport saw the response end or fail, before its
      // promise settles, so the flag is set by the time the export's result arrives.
      response.once("close", () => {
        if (!response.complete) this.cut = true;
      });
    });
  }
}

/** Node's hook that every request made with an agent goes through (not in @types/node). */
interface RequestHook {
  addRequest(request: ClientRequest, options: unknown): void;
}

/** Agent options the HTTP exporter may need: keep-alive and a custom CA or client certificate. */
export type ExportAgentOptions = Pick<AgentOptions, "keepAlive" | "ca" | "cert" | "key">;

/**
 * Ties the requests of an OTLP HTTP exporter to the export that made them: {@link run} an export
 * with its {@link ExportRequests}, and every request the agent from {@link agentFactory} sends
 * meanwhile, retries included, is adopted by it (the export's async context follows the
 * transport's awaits and retry timers).
 */
export class ExportRequestTracker {
  private readonly current = new AsyncLocalStorage<ExportRequests>();

  /** Runs `exportFn` so that the requests it makes, now or later, belong to `requests`. */
  run<T>(requests: ExportRequests, exportFn: () => T): T {
    return this.current.run(requests, exportFn);
  }

  /**
   * The exporter's `httpAgentOptions`: a factory of one keep-alive agent per protocol whose
   * requests are adopted by the export running when they are made.
   */
  agentFactory(options: ExportAgentOptions): (protocol: string) => HttpAgent {
    return (protocol) => {
      // Certificates mean nothing to a plain http agent, as in the exporter's own factory.
      const { ca, cert, key, ...plain } = options;
      const agent = protocol === "http:" ? new HttpAgent(plain) : new HttpsAgent({ ...plain, ca, cert, key });
      // ClientRequest calls addRequest synchronously in its constructor, inside the export's
      // context; it is the one place that sees each request, new socket or reused one alike.
      const hook = agent as unknown as RequestHook;
      const addRequest = hook.addRequest.bind(agent);
      hook.addRequest = (request, requestOptions) => {
        this.current.getStore()?.adopt(request);
        addRequest(request, requestOptions);
      };
      return agent;
    };
  }
}
