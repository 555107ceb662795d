/**
 * The library's one logger. Library code never writes to the console directly:
 * it logs here, and the sink decides where lines go (stderr by default, the
 * notebook when the kernel installs its own sink).
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

export interface LogRecord {
  level: Exclude<LogLevel, 'silent'>;
  /** Dotted name of the emitting component, for example `backend` or `datasets.wfdb`. */
  scope: string;
  message: string;
  time: Date;
}

export type LogSink = (record: LogRecord) => void;

function parseLevel(value: string | undefined): LogLevel {
  if (value === undefined || value === '') return 'info';
  const level = value.toLowerCase();
  if (level in LEVEL_ORDER) return level as LogLevel;
  throw new Error(`Invalid MORE_TS_LOG_LEVEL "${value}": expected one of ${Object.keys(LEVEL_ORDER).join(', ')}`);
}

function stderrSink(record: LogRecord): void {
  process.stderr.write(`[more-ts] ${record.level.toUpperCase()} ${record.scope}: ${record.message}\n`);
}

let threshold: LogLevel = parseLevel(process.env.MORE_TS_LOG_LEVEL);
let sink: LogSink = stderrSink;

/** Sets the minimum level that reaches the sink. */
export function setLogLevel(level: LogLevel): void {
  if (!(level in LEVEL_ORDER)) {
    throw new Error(`Invalid log level "${level}": expected one of ${Object.keys(LEVEL_ORDER).join(', ')}`);
  }
  threshold = level;
}

export function getLogLevel(): LogLevel {
  return threshold;
}

/** Replaces the sink and returns the previous one, so callers can restore it. */
export function setLogSink(next: LogSink): LogSink {
  const previous = sink;
  sink = next;
  return previous;
}

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** Returns a logger whose records carry `scope`. */
export function getLogger(scope: string): Logger {
  const emit = (level: LogRecord['level'], message: string): void => {
    if (LEVEL_ORDER[level] < LEVEL_ORDER[threshold]) return;
    sink({ level, scope, message, time: new Date() });
  };
  return {
    debug: (message) => emit('debug', message),
    info: (message) => emit('info', message),
    warn: (message) => emit('warn', message),
    error: (message) => emit('error', message),
  };
}
