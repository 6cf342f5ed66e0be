import type { FileFollower } from "../sources/file-follower.js";
import type { ServicePart } from "./part.js";

/** A followed `metric_log_files` entry: start() looks at the file once (from its end), stop() closes it. */
export class FileFollowerPart implements ServicePart {
  readonly name: string;

  constructor(
    private readonly path: string,
    private readonly follower: FileFollower,
  ) {
    this.name = `follower of ${path}`;
  }

  activity(): string {
    return `following ${this.path}`;
  }

  start(): Promise<void> {
    return this.follower.start();
  }

  stop(): Promise<void> {
    return this.follower.stop();
  }
}
