import type { Logger } from "../log.js";
import { readLineStream, type LineStreamOptions, type LineStreamReader } from "../sources/line-stream.js";
import type { ServicePart } from "./part.js";

/** A stream of TorchServe's log lines (`--stdin`) as a part, read until it ends or the service stops. */
export class LineStreamPart implements ServicePart {
  readonly name: string;
  private reader: LineStreamReader | undefined;

  constructor(private readonly options: LineStreamOptions & { logger: Logger }) {
    this.name = `reader of ${options.name}`;
  }

  activity(): string {
    return "reading TorchServe's log lines from standard input";
  }

  start(): Promise<void> {
    const { name, logger } = this.options;
    const reader = readLineStream(this.options);
    this.reader = reader;
    void reader.ended.then((end) => {
      if (end.reason === "stopped") return;
      logger.info(
        `${name} ${end.reason === "end" ? "ended" : `failed (${end.error ?? "read error"})`} after ` +
          `${end.lines} lines; /metrics keeps serving what they wrote`,
      );
    });
    return Promise.resolve();
  }

  stop(): Promise<void> {
    this.reader?.stop();
    return Promise.resolve();
  }
}
