/**
 * Progress of long work (training, embedding a dataset). Library code reports
 * through this interface; the terminal reporter writes one updating line to
 * stderr, and the notebook kernel supplies a reporter that updates one output
 * in place.
 */

export interface ProgressUpdate {
  /** Units done so far (steps, samples, records). */
  done: number;
  /** Named figures shown beside the bar, for example `{ loss: 0.42, lr: 3e-5 }`. */
  metrics?: Record<string, number | string>;
}

export interface ProgressReporter {
  start(label: string, total: number, unit: string): void;
  update(update: ProgressUpdate): void;
  end(summary?: string): void;
}

/** Formats seconds as `1h02m`, `3m05s` or `12s`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`;
  if (m > 0) return `${m}m${String(s % 60).padStart(2, '0')}s`;
  return `${s}s`;
}

function formatMetric(value: number | string): string {
  if (typeof value === 'string') return value;
  if (Number.isInteger(value)) return String(value);
  return Math.abs(value) >= 1e-3 && Math.abs(value) < 1e4 ? value.toFixed(4) : value.toExponential(3);
}

/** Renders one progress line: label, count, percentage, rate, time left and metrics. */
export function formatProgressLine(
  label: string, done: number, total: number, unit: string, elapsedSeconds: number,
  metrics: Record<string, number | string> = {},
): string {
  const fraction = total > 0 ? Math.min(done / total, 1) : 0;
  const rate = elapsedSeconds > 0 ? done / elapsedSeconds : 0;
  const left = rate > 0 ? (total - done) / rate : Number.NaN;
  const parts = [
    `${label} ${done}/${total} ${unit}`,
    `${(fraction * 100).toFixed(0)}%`,
    `${rate.toFixed(2)} ${unit}/s`,
    `elapsed ${formatDuration(elapsedSeconds)}`,
    `left ${formatDuration(left)}`,
    ...Object.entries(metrics).map(([name, value]) => `${name}=${formatMetric(value)}`),
  ];
  return parts.join('  ');
}

/** Reports to a terminal: one line rewritten in place on a TTY, a line per update otherwise (at most one every `minIntervalMs`). */
export class TerminalProgress implements ProgressReporter {
  private label = '';
  private total = 0;
  private unit = '';
  private startedAt = 0;
  private lastPrinted = 0;
  private lastLine = '';

  constructor(
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly minIntervalMs = 1000,
  ) {}

  start(label: string, total: number, unit: string): void {
    this.label = label;
    this.total = total;
    this.unit = unit;
    this.startedAt = Date.now();
    this.lastPrinted = 0;
  }

  update({ done, metrics }: ProgressUpdate): void {
    const now = Date.now();
    const elapsed = (now - this.startedAt) / 1000;
    this.lastLine = formatProgressLine(this.label, done, this.total, this.unit, elapsed, metrics);
    if (now - this.lastPrinted < this.minIntervalMs && done < this.total) return;
    this.lastPrinted = now;
    if (this.stream.isTTY) this.stream.write(`\r\x1b[2K${this.lastLine}`);
    else this.stream.write(`${this.lastLine}\n`);
  }

  end(summary?: string): void {
    if (this.stream.isTTY) this.stream.write('\n');
    if (summary !== undefined) this.stream.write(`${this.label}: ${summary}\n`);
  }
}

/** A reporter that discards everything, for callers that asked for silence. */
export const silentProgress: ProgressReporter = {
  start: () => undefined,
  update: () => undefined,
  end: () => undefined,
};
