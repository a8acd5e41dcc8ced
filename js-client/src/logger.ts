/**
 * Logging. The package writes nothing anywhere unless a logger is given
 * (`logger: console` works).
 */
export interface Logger {
  debug?(...args: unknown[]): void;
  info?(...args: unknown[]): void;
  warn?(...args: unknown[]): void;
  error?(...args: unknown[]): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Calls the logger's method for `level` if there is one; never throws. */
export function log(logger: Logger | undefined, level: LogLevel, ...args: unknown[]): void {
  if (!logger) return;
  try {
    logger[level]?.(...args);
  } catch {
    // A broken logger must not break the connection.
  }
}
