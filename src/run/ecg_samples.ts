/**
 * ECG samples of the shipped sample data: the PTB-XL records with a report
 * for each. Two report styles: `statements` writes an English machine-style
 * report from the descriptions of the record's SCP statements in
 * `scp_statements.csv` (as ECG machines print their statement lines), and
 * `free-text` uses the cardiologist's report of `ptbxl_database.csv`, which
 * is mostly German.
 */
import * as path from 'path';

import { columnIndex, readCsv } from '../datasets/cxr/csv';
import { PTBXL_SUPERCLASSES, readPtbXlManifest } from '../datasets/ptbxl';
import { isMissingText } from '../datasets/reports/sections';
import type { SkippedSample } from './xray_samples';

export const ECG_REPORT_STYLES = ['statements', 'free-text'] as const;
export type EcgReportStyle = (typeof ECG_REPORT_STYLES)[number];

export interface EcgSample {
  id: string;
  patient: string;
  /** WFDB record path without extension. */
  recordPath: string;
  /** The report, without the "The report from ECG is: " prefix. */
  report: string;
  /** Multi-hot diagnostic superclasses in `PTBXL_SUPERCLASSES` order. */
  labels: number[];
  strataFold: number;
}

/** Reads the English description of every SCP code in `scp_statements.csv`. */
export function readScpDescriptions(file: string): Map<string, string> {
  const table = readCsv(file);
  const columns = columnIndex(table, ['description']);
  const descriptions = new Map<string, string>();
  for (const row of table.rows) {
    // The code is the first, unnamed column.
    descriptions.set(row.cells[0].trim(), row.cells[columns.description].trim());
  }
  return descriptions;
}

/**
 * Writes a machine-style report from SCP statements: one sentence per code,
 * most likely first (ties in table order), each the code's description with
 * its first letter capitalised. Unknown codes are an error naming the record.
 */
export function statementReport(scpCodes: Record<string, number>, descriptions: Map<string, string>, record: string): string {
  const codes = Object.entries(scpCodes).sort((a, b) => b[1] - a[1]);
  const sentences = codes.map(([code]) => {
    const description = descriptions.get(code);
    if (description === undefined) {
      throw new Error(`Record ${record}: SCP code "${code}" is not in scp_statements.csv`);
    }
    return `${description.charAt(0).toUpperCase()}${description.slice(1)}.`;
  });
  return sentences.join(' ');
}

/** Reads the PTB-XL samples under `root/ptbxl` (100 Hz records) with reports in `style`. */
export function readPtbXlSamples(root: string, style: EcgReportStyle, skipped: SkippedSample[]): EcgSample[] {
  if (!(ECG_REPORT_STYLES as readonly string[]).includes(style)) {
    throw new Error(`Invalid ECG report style "${style}": expected one of ${ECG_REPORT_STYLES.join(', ')}`);
  }
  const ptbxlRoot = path.join(root, 'ptbxl');
  const manifest = readPtbXlManifest(ptbxlRoot, { samplingRate: 100 });
  for (const [reason, count] of Object.entries(manifest.summary.skipped)) {
    skipped.push({ id: `ptbxl (${count} records)`, reason });
  }
  const descriptions = readScpDescriptions(path.join(ptbxlRoot, 'scp_statements.csv'));
  const samples: EcgSample[] = [];
  for (const record of manifest.records) {
    const id = `ptbxl/${record.ecgId}`;
    const report = style === 'statements' ? statementReport(record.scpCodes, descriptions, id) : record.report.trim();
    if (isMissingText(report)) {
      skipped.push({ id, reason: `empty ${style} report` });
      continue;
    }
    samples.push({
      id,
      patient: `ptbxl/${record.patientId ?? record.ecgId}`,
      recordPath: record.recordPath,
      report,
      labels: record.labels,
      strataFold: record.strataFold,
    });
  }
  return samples;
}

export { PTBXL_SUPERCLASSES };
