/**
 * The console that tslab's executor prints through. It writes to the cell's
 * streams, rewrites tslab's compiler diagnostics so they name the line and
 * column in words, and remembers the last error for the execute reply.
 */
import { format } from 'util';

import type { CellError } from './handler';

/** The format string tslab 1.0.22 prints each compiler diagnostic with: file, line, column, message. */
const TSLAB_DIAGNOSTIC_FORMAT = '%s%d:%d - %s';

/**
 * Formats one compiler diagnostic. `file` is empty for the cell itself and a
 * path followed by a space for a local file that the cell imports.
 */
export function formatDiagnostic(file: string, line: number, column: number, message: string): string {
  const where = file.trim() === '' ? `Line ${line}, column ${column}` : `${file.trim()}, line ${line}, column ${column}`;
  return `${where}: ${message}`;
}

export class CellConsole {
  private lastError: CellError | undefined;

  log(message?: unknown, ...rest: unknown[]): void {
    process.stdout.write(`${format(message, ...rest)}\n`);
  }

  error(message?: unknown, ...rest: unknown[]): void {
    if (message === TSLAB_DIAGNOSTIC_FORMAT && rest.length === 4) {
      const [file, line, column, text] = rest as [string, number, number, string];
      const formatted = formatDiagnostic(file, line, column, text);
      // A diagnostic chain prints its head first; keep the head as the error summary.
      if (this.lastError?.name !== 'CompileError') this.lastError = { name: 'CompileError', message: formatted };
      process.stderr.write(`${formatted}\n`);
      return;
    }
    if (message instanceof Error) {
      this.lastError = { name: message.name, message: message.message };
    } else {
      this.lastError = { name: 'Error', message: format(message, ...rest) };
    }
    process.stderr.write(`${format(message, ...rest)}\n`);
  }

  /** Returns the last recorded error and clears it. */
  takeError(): CellError | undefined {
    const error = this.lastError;
    this.lastError = undefined;
    return error;
  }
}
