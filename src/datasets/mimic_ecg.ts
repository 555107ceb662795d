/**
 * Manifest of MIMIC-IV-ECG 1.0 (PhysioNet): one row per ECG from
 * `record_list.csv`, joined by study_id with its machine statements
 * (`report_0`..`report_17` of `machine_measurements.csv`) as report text.
 * Records are 10 s, 12-lead, 500 Hz WFDB files under `files/`.
 */

import * as fs from 'fs';
import * as path from 'path';

import { getLogger } from '../util/log';
import { columnIndex, CsvError, CsvTable, findTable, parseId, readCsv } from './cxr/csv';
import { formatSummary, ManifestSummary, SkipCounter } from './cxr/summary';
import { columnsToDataFrame } from './ecg/manifest';
import { resolveInsideRoot } from './paths';
import { ECG_NOTE_NOT_AVAILABLE, ECG_REPORT_LINE_COUNT, EcgReportLines, joinEcgReport } from './reports/ecg_report';

const log = getLogger('datasets.mimic_ecg');

/** Warning reason for a record without machine statements; its report becomes "ECG note not available.". */
export const MISSING_MEASUREMENTS = 'no machine_measurements row';

export interface MimicEcgRecord {
  subjectId: number;
  studyId: number;
  fileName: string;
  /** `ecg_time` as written (MIMIC's shifted date and time). */
  ecgTime: string;
  /** `ecg_time` as milliseconds since the epoch, read as UTC. */
  ecgTimeMs: number;
  /** Record path as written in record_list.csv. */
  relativePath: string;
  /** Absolute record path without extension, inside the dataset root. */
  recordPath: string;
  /** Joined machine statements, "ECG note not available." when there are none. */
  report: string;
}

export interface MimicEcgOptions {
  /** Statement lines to join: `all` (default) or `reference` (report_0..report_6 as in the MoRE reference). */
  ecgReportLines?: EcgReportLines;
  /** Skip rows whose `.hea` file is missing under the root (default true). */
  checkFiles?: boolean;
}

export interface MimicEcgManifest {
  records: MimicEcgRecord[];
  /** Skipped rows by reason; records without a machine_measurements.csv row are kept and counted under `warnings`. */
  summary: ManifestSummary;
  /** Columns subject_id, study_id, file_name, ecg_time, path, record_path and report. */
  toDataFrame(): ReturnType<typeof columnsToDataFrame>;
}

const TIME_PATTERN = /^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?$/;

/** Parses `YYYY-MM-DD HH:MM[:SS[.fff]]` as UTC milliseconds; `where` prefixes the error. */
export function parseEcgTime(text: string, where: string): number {
  const match = TIME_PATTERN.exec(text.trim());
  if (match === null) throw new CsvError(`Invalid ecg_time "${text}" in ${where}: expected YYYY-MM-DD HH:MM:SS`);
  const [, year, month, day, hour, minute, second, fraction] = match;
  const milliseconds = fraction === undefined ? 0 : Math.round(Number(`0.${fraction}`) * 1000);
  const value = Date.UTC(Number(year), Number(month) - 1, Number(day), Number(hour), Number(minute), Number(second ?? 0), milliseconds);
  const check = new Date(value);
  if (check.getUTCMonth() !== Number(month) - 1 || check.getUTCDate() !== Number(day)) {
    throw new CsvError(`Invalid ecg_time "${text}" in ${where}: no such calendar date`);
  }
  return value;
}

/** Reads machine statements by study_id. Each study may appear once. */
function readMachineReports(table: CsvTable): Map<number, (string | null)[]> {
  const { study_id: studyColumn } = columnIndex(table, ['study_id', 'report_0']);
  const reportColumns = Array.from({ length: ECG_REPORT_LINE_COUNT }, (_, i) => table.header.indexOf(`report_${i}`));
  const reports = new Map<number, (string | null)[]>();
  const firstLine = new Map<number, number>();
  for (const row of table.rows) {
    const studyId = parseId(row.cells[studyColumn], table, row.line, 'study_id');
    if (reports.has(studyId)) {
      throw new CsvError(
        `Duplicate study_id ${studyId} in ${table.file} line ${row.line}: already on line ${firstLine.get(studyId)}; expected one row per study`,
      );
    }
    reports.set(studyId, reportColumns.map((column) => (column < 0 ? null : row.cells[column])));
    firstLine.set(studyId, row.line);
  }
  return reports;
}

/**
 * Reads the MIMIC-IV-ECG manifest under `root`, the folder holding
 * `record_list.csv` and `machine_measurements.csv` (either may be gzipped).
 */
export function readMimicEcgManifest(root: string, options: MimicEcgOptions = {}): MimicEcgManifest {
  const reportLines = options.ecgReportLines ?? 'all';
  const checkFiles = options.checkFiles ?? true;
  const recordTable = readCsv(findTable(root, 'record_list'));
  const reports = readMachineReports(readCsv(findTable(root, 'machine_measurements')));
  const columns = columnIndex(recordTable, ['subject_id', 'study_id', 'file_name', 'ecg_time', 'path']);

  const skips = new SkipCounter();
  const records: MimicEcgRecord[] = [];
  skips.read(recordTable.rows.length);
  for (const row of recordTable.rows) {
    const where = `${recordTable.file} line ${row.line}`;
    const cell = (name: string) => row.cells[columns[name]];
    const subjectId = parseId(cell('subject_id'), recordTable, row.line, 'subject_id');
    const studyId = parseId(cell('study_id'), recordTable, row.line, 'study_id');
    const ecgTime = cell('ecg_time').trim();
    const ecgTimeMs = parseEcgTime(ecgTime, where);
    const relativePath = cell('path').trim();
    const recordPath = resolveInsideRoot(root, relativePath, where);

    if (checkFiles && !fs.existsSync(`${recordPath}.hea`)) {
      skips.skip('record file not found', `${studyId}`);
      continue;
    }
    const lines = reports.get(studyId);
    if (lines === undefined) skips.warn(MISSING_MEASUREMENTS);
    records.push({
      subjectId,
      studyId,
      fileName: cell('file_name').trim(),
      ecgTime,
      ecgTimeMs,
      relativePath,
      recordPath,
      report: lines === undefined ? ECG_NOTE_NOT_AVAILABLE : joinEcgReport(lines, reportLines),
    });
  }

  const summary = skips.finish(records.length);
  log.info(`MIMIC-IV-ECG ${root}: ${formatSummary(summary)}`);
  return {
    records,
    summary,
    toDataFrame: () =>
      columnsToDataFrame({
        subject_id: records.map((record) => record.subjectId),
        study_id: records.map((record) => record.studyId),
        file_name: records.map((record) => record.fileName),
        ecg_time: records.map((record) => record.ecgTime),
        path: records.map((record) => record.relativePath),
        record_path: records.map((record) => record.recordPath),
        report: records.map((record) => record.report),
      }),
  };
}

/** Returns the root-relative record path of a study in the published layout: `files/pNNNN/pSUBJECT/sSTUDY/STUDY`. */
export function mimicEcgRecordPath(subjectId: number, studyId: number): string {
  const subject = String(subjectId);
  return path.posix.join('files', `p${subject.slice(0, 4)}`, `p${subject}`, `s${studyId}`, String(studyId));
}
