/** Counts of what a manifest loader read, kept and skipped, with the reason for each skip. */

export interface ManifestSummary {
  /** Data rows read from the main table. */
  rowsRead: number;
  /** Records returned. */
  kept: number;
  /** Skipped rows by reason. */
  skipped: Record<string, number>;
  /** Up to five example ids per skip reason, for looking them up. */
  examples: Record<string, string[]>;
  /** Records kept with something missing (for example no report file), by reason. */
  warnings: Record<string, number>;
}

const EXAMPLES_PER_REASON = 5;

/** Collects skip reasons while a loader runs. */
export class SkipCounter {
  private readonly summary: ManifestSummary = { rowsRead: 0, kept: 0, skipped: {}, examples: {}, warnings: {} };

  read(count = 1): void {
    this.summary.rowsRead += count;
  }

  skip(reason: string, id: string): void {
    this.summary.skipped[reason] = (this.summary.skipped[reason] ?? 0) + 1;
    const examples = (this.summary.examples[reason] ??= []);
    if (examples.length < EXAMPLES_PER_REASON) examples.push(id);
  }

  warn(reason: string): void {
    this.summary.warnings[reason] = (this.summary.warnings[reason] ?? 0) + 1;
  }

  finish(kept: number): ManifestSummary {
    this.summary.kept = kept;
    return this.summary;
  }
}

/** Formats a summary as one line, for logs. */
export function formatSummary(summary: ManifestSummary): string {
  const skipped = Object.entries(summary.skipped).map(([reason, count]) => `${count} ${reason}`);
  const warnings = Object.entries(summary.warnings).map(([reason, count]) => `${count} ${reason}`);
  return `kept ${summary.kept} of ${summary.rowsRead} rows`
    + (skipped.length > 0 ? `; skipped: ${skipped.join(', ')}` : '')
    + (warnings.length > 0 ? `; kept with warnings: ${warnings.join(', ')}` : '');
}
