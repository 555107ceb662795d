/** Text of the ECG machine report: the statement lines `report_0`..`report_17` of MIMIC-IV-ECG's machine_measurements.csv. */

import { isMissingText } from './sections';

/** Text used when an ECG has no machine statement at all. */
export const ECG_NOTE_NOT_AVAILABLE = 'ECG note not available.';

/** Number of statement columns in machine_measurements.csv (`report_0`..`report_17`). */
export const ECG_REPORT_LINE_COUNT = 18;

/** Number of statement lines the MoRE reference keeps (`report_0`..`report_6`). */
export const REFERENCE_ECG_REPORT_LINES = 7;

export type EcgReportLines = 'all' | 'reference';

/**
 * Joins the non-empty statement lines with single spaces, each trimmed.
 * `lines` `all` (the default) uses every line; `reference` uses only the first seven,
 * like the MoRE reference. Returns "ECG note not available." when nothing remains.
 */
export function joinEcgReport(lines: readonly (string | null | undefined)[], which: EcgReportLines = 'all'): string {
  if (which !== 'all' && which !== 'reference') {
    throw new Error(`Invalid ECG report lines "${String(which)}": expected "all" or "reference"`);
  }
  const used = which === 'reference' ? lines.slice(0, REFERENCE_ECG_REPORT_LINES) : lines;
  const kept = used.filter((line) => !isMissingText(line)).map((line) => (line as string).trim());
  return kept.length > 0 ? kept.join(' ') : ECG_NOTE_NOT_AVAILABLE;
}
