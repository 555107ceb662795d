/**
 * Manifest of PTB-XL (Wagner et al., 2020, PhysioNet): one row per ECG from
 * `ptbxl_database.csv`, with the five diagnostic superclasses from
 * `scp_statements.csv` as multi-hot labels and the recommended split by
 * `strat_fold` (folds 1-8 train, 9 validation, 10 test).
 */

import * as fs from 'fs';
import * as path from 'path';

import { getLogger } from '../util/log';
import { columnIndex, CsvError, CsvTable, readCsv } from './cxr/csv';
import { formatSummary, ManifestSummary, SkipCounter } from './cxr/summary';
import { columnsToDataFrame } from './ecg/manifest';
import { resolveInsideRoot } from './paths';

/** The diagnostic superclasses, in label-vector order. */
export const PTBXL_SUPERCLASSES = ['NORM', 'MI', 'STTC', 'CD', 'HYP'] as const;
export type PtbXlSuperclass = (typeof PTBXL_SUPERCLASSES)[number];
export type PtbXlSplit = 'train' | 'validation' | 'test';

const log = getLogger('datasets.ptbxl');

export interface PtbXlRecord {
  ecgId: number;
  patientId: number | null;
  strataFold: number;
  split: PtbXlSplit;
  /** Record path as written in the table (`records100/00000/00001_lr`). */
  fileName: string;
  /** Absolute record path without extension, inside the dataset root. */
  recordPath: string;
  /** Multi-hot superclass labels in `PTBXL_SUPERCLASSES` order. */
  labels: number[];
  /** SCP codes and their likelihoods. */
  scpCodes: Record<string, number>;
  /** Free-text report (mostly German). */
  report: string;
}

export interface PtbXlOptions {
  /** Record files: 100 Hz (`filename_lr`, the default) or 500 Hz (`filename_hr`). */
  samplingRate?: 100 | 500;
  /** Skip rows whose `.hea` file is missing under the root (default true). */
  checkFiles?: boolean;
  /** Skip rows with no diagnostic superclass (default true). */
  dropUnlabelled?: boolean;
  /** Minimum SCP likelihood for a statement to count (default 0, so every listed statement counts). */
  minLikelihood?: number;
}

export interface PtbXlManifest {
  records: PtbXlRecord[];
  summary: ManifestSummary;
  /** Columns ecg_id, patient_id, strat_fold, split, filename, record_path, report and one 0/1 column per superclass. */
  toDataFrame(): ReturnType<typeof columnsToDataFrame>;
}

/** Returns the split of a stratified fold: 1-8 train, 9 validation, 10 test. */
export function ptbXlSplit(fold: number): PtbXlSplit {
  if (!Number.isInteger(fold) || fold < 1 || fold > 10) {
    throw new Error(`Invalid strat_fold ${fold}: expected an integer from 1 to 10`);
  }
  if (fold <= 8) return 'train';
  return fold === 9 ? 'validation' : 'test';
}

/**
 * Parses the `scp_codes` cell, a Python dict literal such as
 * `{'NORM': 100.0, 'SR': 0.0}`. `where` (file and line) prefixes errors.
 */
export function parseScpCodes(text: string, where: string): Record<string, number> {
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) {
    throw new CsvError(`Invalid scp_codes ${JSON.stringify(text)} in ${where}: expected a dict such as {'NORM': 100.0}`);
  }
  const codes: Record<string, number> = {};
  const inner = body.slice(1, -1).trim();
  if (inner === '') return codes;
  for (const entry of inner.split(',')) {
    const match = /^\s*(['"])([^'"]+)\1\s*:\s*(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*$/.exec(entry);
    if (match === null) {
      throw new CsvError(`Invalid scp_codes entry ${JSON.stringify(entry.trim())} in ${where}: expected 'CODE': likelihood`);
    }
    codes[match[2]] = Number(match[3]);
  }
  return codes;
}

/** Reads `scp_statements.csv` into a map from diagnostic SCP code to its superclass. */
function readDiagnosticClasses(file: string): Map<string, string> {
  const table = readCsv(file);
  const columns = columnIndex(table, ['diagnostic', 'diagnostic_class']);
  const classes = new Map<string, string>();
  for (const row of table.rows) {
    const diagnostic = row.cells[columns.diagnostic].trim();
    if (diagnostic === '' || Number(diagnostic) !== 1) continue;
    const superclass = row.cells[columns.diagnostic_class].trim();
    if (superclass === '') {
      throw new CsvError(`Invalid row in ${file} line ${row.line}: diagnostic statement ${row.cells[0]} has no diagnostic_class`);
    }
    classes.set(row.cells[0].trim(), superclass);
  }
  return classes;
}

function parseNumberCell(table: CsvTable, line: number, column: string, value: string): number {
  const number = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(number)) {
    throw new CsvError(`Invalid ${column} "${value}" in ${table.file} line ${line}: expected a number`);
  }
  return number;
}

/** Reads the PTB-XL manifest under `root`, the folder holding `ptbxl_database.csv`. */
export function readPtbXlManifest(root: string, options: PtbXlOptions = {}): PtbXlManifest {
  const samplingRate = options.samplingRate ?? 100;
  if (samplingRate !== 100 && samplingRate !== 500) {
    throw new Error(`Invalid PTB-XL sampling rate ${String(samplingRate)}: expected 100 or 500`);
  }
  const checkFiles = options.checkFiles ?? true;
  const dropUnlabelled = options.dropUnlabelled ?? true;
  const minLikelihood = options.minLikelihood ?? 0;

  const classes = readDiagnosticClasses(path.join(root, 'scp_statements.csv'));
  const table = readCsv(path.join(root, 'ptbxl_database.csv'));
  const fileColumn = samplingRate === 100 ? 'filename_lr' : 'filename_hr';
  const columns = columnIndex(table, ['ecg_id', 'patient_id', 'scp_codes', 'strat_fold', 'report', fileColumn]);

  const skips = new SkipCounter();
  const records: PtbXlRecord[] = [];
  skips.read(table.rows.length);
  for (const row of table.rows) {
    const where = `${table.file} line ${row.line}`;
    const cell = (name: string) => row.cells[columns[name]];
    const ecgId = parseNumberCell(table, row.line, 'ecg_id', cell('ecg_id'));
    const patientText = cell('patient_id').trim();
    const patientId = patientText === '' ? null : parseNumberCell(table, row.line, 'patient_id', patientText);
    const strataFold = parseNumberCell(table, row.line, 'strat_fold', cell('strat_fold'));
    let split: PtbXlSplit;
    try {
      split = ptbXlSplit(strataFold);
    } catch (error) {
      throw new CsvError(`${(error as Error).message} in ${where}`);
    }
    const scpCodes = parseScpCodes(cell('scp_codes'), where);
    const present = new Set<string>();
    for (const [code, likelihood] of Object.entries(scpCodes)) {
      const superclass = classes.get(code);
      if (superclass !== undefined && likelihood >= minLikelihood) present.add(superclass);
    }
    const labels = PTBXL_SUPERCLASSES.map((name) => (present.has(name) ? 1 : 0));

    const fileName = cell(fileColumn).trim();
    const recordPath = resolveInsideRoot(root, fileName, where);
    if (dropUnlabelled && labels.every((value) => value === 0)) {
      skips.skip('no diagnostic superclass', String(ecgId));
      continue;
    }
    if (checkFiles && !fs.existsSync(`${recordPath}.hea`)) {
      skips.skip('record file not found', String(ecgId));
      continue;
    }
    records.push({ ecgId, patientId, strataFold, split, fileName, recordPath, labels, scpCodes, report: cell('report') });
  }

  const summary = skips.finish(records.length);
  log.info(`PTB-XL ${root}: ${formatSummary(summary)}`);
  return {
    records,
    summary,
    toDataFrame: () => {
      const frame: Record<string, unknown[]> = {
        ecg_id: records.map((record) => record.ecgId),
        patient_id: records.map((record) => record.patientId),
        strat_fold: records.map((record) => record.strataFold),
        split: records.map((record) => record.split),
        filename: records.map((record) => record.fileName),
        record_path: records.map((record) => record.recordPath),
        report: records.map((record) => record.report),
      };
      PTBXL_SUPERCLASSES.forEach((name, index) => {
        frame[name] = records.map((record) => record.labels[index]);
      });
      return columnsToDataFrame(frame);
    },
  };
}
