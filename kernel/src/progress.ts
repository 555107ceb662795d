/**
 * A {@link ProgressReporter} for notebooks: one output, created by `start` and
 * replaced in place (update_display_data) by `update` and `end`, showing the
 * count, rate, elapsed time, an estimate of the time left and the metrics.
 */
import { formatDuration, formatProgressLine, ProgressReporter, ProgressUpdate } from '../../src/util/progress';
import { DisplayHandle, escapeHtml } from './display';

export interface NotebookProgressOptions {
  /** Minimum milliseconds between two updates of the output; the final update is always sent. */
  minIntervalMs?: number;
}

export class NotebookProgress implements ProgressReporter {
  private handle: DisplayHandle | undefined;
  private label = '';
  private total = 0;
  private unit = '';
  private startedAt = 0;
  private lastSentAt = 0;
  private last: ProgressUpdate = { done: 0 };
  private readonly minIntervalMs: number;

  constructor(options: NotebookProgressOptions = {}) {
    this.minIntervalMs = options.minIntervalMs ?? 250;
  }

  /** The display id of the output, once started. */
  get displayId(): string | undefined {
    return this.handle?.displayId;
  }

  start(label: string, total: number, unit: string): void {
    if (!(Number.isFinite(total) && total >= 0)) throw new Error(`Progress total must be a finite number >= 0; got ${total}`);
    this.label = label;
    this.total = total;
    this.unit = unit;
    this.startedAt = Date.now();
    this.lastSentAt = this.startedAt;
    this.last = { done: 0 };
    this.handle = new DisplayHandle().show(this.render(this.last));
  }

  update(update: ProgressUpdate): void {
    if (this.handle === undefined) throw new Error('NotebookProgress.update was called before start');
    this.last = update;
    const now = Date.now();
    if (now - this.lastSentAt < this.minIntervalMs && update.done < this.total) return;
    this.lastSentAt = now;
    this.handle.update(this.render(update));
  }

  end(summary?: string): void {
    if (this.handle === undefined) throw new Error('NotebookProgress.end was called before start');
    this.handle.update(this.render(this.last, summary));
  }

  private render(update: ProgressUpdate, summary?: string): { 'text/plain': string; 'text/html': string } {
    const elapsed = (Date.now() - this.startedAt) / 1000;
    let text = formatProgressLine(this.label, update.done, this.total, this.unit, elapsed, update.metrics);
    if (summary !== undefined) text += `\n${this.label}: ${summary} (took ${formatDuration(elapsed)})`;
    const fraction = this.total > 0 ? Math.min(update.done / this.total, 1) : 0;
    const html =
      `<div class="more-ts-progress"><progress value="${fraction.toFixed(4)}" max="1" style="width: 24em"></progress> ` +
      `<code>${escapeHtml(text).replace(/\n/g, '<br>')}</code></div>`;
    return { 'text/plain': text, 'text/html': html };
  }
}
