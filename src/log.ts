/** Where the service writes its own messages; plain strings, one line each. */
export interface Logger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** A logger writing `<ISO time> <LEVEL> <message>` lines to stderr. */
export function createConsoleLogger(stream: NodeJS.WritableStream = process.stderr): Logger {
  const write = (level: string, message: string): void => {
    stream.write(`${new Date().toISOString()} ${level} ${message}\n`);
  };
  return {
    info: (m) => write("INFO", m),
    warn: (m) => write("WARN", m),
    error: (m) => write("ERROR", m),
  };
}

/** A logger that keeps every line in memory; for embedders who route messages themselves, and tests. */
export interface MemoryLogger extends Logger {
  readonly lines: string[];
}

/** Creates a {@link MemoryLogger}. */
export function createMemoryLogger(): MemoryLogger {
  const lines: string[] = [];
  return {
    lines,
    info: (m) => lines.push(`INFO ${m}`),
    warn: (m) => lines.push(`WARN ${m}`),
    error: (m) => lines.push(`ERROR ${m}`),
  };
}
