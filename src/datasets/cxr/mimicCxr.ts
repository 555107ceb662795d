/**
 * Manifest of MIMIC-CXR-JPG 2.0.0 (Johnson et al., PhysioNet): one record per
 * frontal image (ViewPosition PA or AP) with its official split, CheXpert
 * labels and report path. It reads `mimic-cxr-2.0.0-metadata.csv`,
 * `-split.csv` and `-chexpert.csv` (plain or `.gz`) from the dataset root.
 * Images are `files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg`, where XX is the first
 * two digits of the subject id. Reports (from MIMIC-CXR) are
 * `files/pXX/pSUBJECT/sSTUDY.txt`.
 */

import * as fs from 'fs';
import * as path from 'path';
import { getLogger } from '../../util/log';
import { Rng } from '../../util/rng';
import { ColumnDtype, columnsToDataFrame } from '../ecg/manifest';
import { resolveInsideRoot } from '../paths';
import { columnIndex, CsvError, findTable, parseId, readCsv } from './csv';
import { CHEXPERT_OBSERVATIONS, RawLabel, parseRawLabel } from './labels';
import { formatSummary, ManifestSummary, SkipCounter } from './summary';

const logger = getLogger('datasets.cxr.mimic');

export type CxrSplit = 'train' | 'validate' | 'test';
const SPLITS: readonly CxrSplit[] = ['train', 'validate', 'test'];
const FRONTAL_VIEWS = new Set(['PA', 'AP']);

export interface MimicCxrRecord {
  dicomId: string;
  subjectId: number;
  studyId: number;
  viewPosition: string;
  /** StudyDate + StudyTime as a UTC timestamp (MIMIC dates are shifted; only differences matter). */
  studyTime: Date;
  /** Split after the extra hold-out: `validate` also covers the held-out part of the official train split. */
  split: CxrSplit;
  officialSplit: CxrSplit;
  imagePath: string;
  /** Report path, when the report file exists (or when file checks are off). */
  reportPath?: string;
  /** CheXpert labels of the study by observation name; absent when the study has no row in the label table. */
  labels?: Record<string, RawLabel>;
}

export interface MimicCxrOptions {
  /** MIMIC-CXR-JPG root (contains the tables and `files/`). */
  root: string;
  /** Root of the MIMIC-CXR reports (`files/pXX/...txt`); default `root`. */
  reportRoot?: string;
  /** Fraction of official-train subjects moved to validation; default 0.02. */
  holdOutFraction?: number;
  /** Seed of the hold-out draw; default 0. */
  seed?: number;
  /** Check that image (and report) files exist; default true. */
  checkFiles?: boolean;
}

export interface MimicCxrManifest {
  records: MimicCxrRecord[];
  summary: ManifestSummary;
  /** One row per record; see {@link mimicCxrColumns} for the columns. */
  toDataFrame(): ReturnType<typeof columnsToDataFrame>;
}

/**
 * Returns the DataFrame columns of MIMIC-CXR-JPG records with their dtypes.
 * The columns are dicom_id, subject_id, study_id, ViewPosition, study_time
 * (StudyDate plus StudyTime), split, official_split, image_path, report_path
 * (null without a report) and the 14 CheXpert observations. An observation is
 * 1.0, 0.0 or -1.0 as published, or null when the cell is blank or the study
 * has no label row.
 */
export function mimicCxrColumns(records: readonly MimicCxrRecord[]): {
  columns: Record<string, unknown[]>;
  dtypes: Record<string, ColumnDtype>;
} {
  const columns: Record<string, unknown[]> = {
    dicom_id: records.map((record) => record.dicomId),
    subject_id: records.map((record) => record.subjectId),
    study_id: records.map((record) => record.studyId),
    ViewPosition: records.map((record) => record.viewPosition),
    study_time: records.map((record) => record.studyTime),
    split: records.map((record) => record.split),
    official_split: records.map((record) => record.officialSplit),
    image_path: records.map((record) => record.imagePath),
    report_path: records.map((record) => record.reportPath ?? null),
  };
  const dtypes: Record<string, ColumnDtype> = {
    dicom_id: 'String', subject_id: 'Int64', study_id: 'Int64', ViewPosition: 'String', study_time: 'Datetime',
    split: 'String', official_split: 'String', image_path: 'String', report_path: 'String',
  };
  for (const name of CHEXPERT_OBSERVATIONS) {
    columns[name] = records.map((record) => record.labels?.[name] ?? null);
    dtypes[name] = 'Float64';
  }
  return { columns, dtypes };
}

/** Parses DICOM StudyDate (YYYYMMDD) and StudyTime (HHMMSS[.ffffff], leading zeros possibly dropped) as UTC. */
export function parseStudyDateTime(date: string, time: string): Date | undefined {
  const dateText = date.trim();
  if (!/^\d{8}$/.test(dateText)) return undefined;
  const year = Number(dateText.slice(0, 4));
  const month = Number(dateText.slice(4, 6));
  const day = Number(dateText.slice(6, 8));
  const midnight = new Date(Date.UTC(year, month - 1, day));
  if (midnight.getUTCMonth() !== month - 1 || midnight.getUTCDate() !== day) return undefined;
  const timeText = time.trim();
  if (timeText === '') return midnight;
  const match = /^(\d{1,6})(?:\.(\d*))?$/.exec(timeText);
  if (match === null) return undefined;
  const whole = match[1].padStart(6, '0');
  const hours = Number(whole.slice(0, 2));
  const minutes = Number(whole.slice(2, 4));
  const secs = Number(whole.slice(4, 6));
  if (hours > 23 || minutes > 59 || secs > 59) return undefined;
  const fraction = match[2] ? Number(`0.${match[2]}`) : 0;
  return new Date(midnight.getTime() + Math.round((hours * 3600 + minutes * 60 + secs + fraction) * 1000));
}

/** Builds `files/pXX/pSUBJECT/sSTUDY` for MIMIC-CXR ids. */
export function mimicStudyFolder(subjectId: number, studyId: number): string {
  const subject = String(subjectId);
  return path.posix.join('files', `p${subject.slice(0, 2)}`, `p${subject}`, `s${studyId}`);
}

function readSplits(root: string): Map<string, CxrSplit> {
  const table = readCsv(findTable(root, 'mimic-cxr-2.0.0-split'));
  const column = columnIndex(table, ['dicom_id', 'split']);
  const splits = new Map<string, CxrSplit>();
  for (const row of table.rows) {
    const split = row.cells[column.split].trim() as CxrSplit;
    if (!SPLITS.includes(split)) {
      throw new CsvError(`Invalid split "${split}" in ${table.file} line ${row.line}: expected one of ${SPLITS.join(', ')}`);
    }
    splits.set(row.cells[column.dicom_id].trim(), split);
  }
  return splits;
}

function readChexpert(root: string): Map<number, Record<string, RawLabel>> {
  const table = readCsv(findTable(root, 'mimic-cxr-2.0.0-chexpert'));
  const column = columnIndex(table, ['study_id', ...CHEXPERT_OBSERVATIONS]);
  const labels = new Map<number, Record<string, RawLabel>>();
  for (const row of table.rows) {
    const studyId = parseId(row.cells[column.study_id], table, row.line, 'study_id');
    const record: Record<string, RawLabel> = {};
    for (const name of CHEXPERT_OBSERVATIONS) record[name] = parseRawLabel(row.cells[column[name]], table, row.line, name);
    labels.set(studyId, record);
  }
  return labels;
}

/** Picks `fraction` of the subjects (at least one when any exist and fraction > 0) with a seeded shuffle of the sorted ids. */
function drawHeldOutSubjects(subjects: Set<number>, fraction: number, seed: number): Set<number> {
  const sorted = [...subjects].sort((a, b) => a - b);
  const count = fraction > 0 && sorted.length > 0 ? Math.max(1, Math.round(sorted.length * fraction)) : 0;
  return new Set(new Rng(seed).shuffle(sorted).slice(0, count));
}

/**
 * Loads the frontal images of MIMIC-CXR-JPG with splits and labels. Rows
 * with another view, no split, an invalid date or a missing image are skipped
 * and counted in the summary. A malformed table throws an error naming the
 * file and line. A fraction of the official train subjects (whole subjects, so no
 * patient sits on both sides) is moved to validation with a seeded draw.
 */
export function loadMimicCxrManifest(options: MimicCxrOptions): MimicCxrManifest {
  const root = path.resolve(options.root);
  const reportRoot = path.resolve(options.reportRoot ?? root);
  const fraction = options.holdOutFraction ?? 0.02;
  if (!(fraction >= 0 && fraction < 1)) throw new Error(`Invalid holdOutFraction ${fraction}: expected a number in [0, 1)`);
  const checkFiles = options.checkFiles ?? true;

  const metadata = readCsv(findTable(root, 'mimic-cxr-2.0.0-metadata'));
  const column = columnIndex(metadata, ['dicom_id', 'subject_id', 'study_id', 'ViewPosition', 'StudyDate', 'StudyTime']);
  const splits = readSplits(root);
  const chexpert = readChexpert(root);
  const counter = new SkipCounter();
  const records: MimicCxrRecord[] = [];

  for (const row of metadata.rows) {
    counter.read();
    const cells = row.cells;
    const dicomId = cells[column.dicom_id].trim();
    const subjectId = parseId(cells[column.subject_id], metadata, row.line, 'subject_id');
    const studyId = parseId(cells[column.study_id], metadata, row.line, 'study_id');
    const viewPosition = cells[column.ViewPosition].trim();
    if (!FRONTAL_VIEWS.has(viewPosition)) {
      counter.skip(`view position "${viewPosition}" is not PA or AP`, dicomId);
      continue;
    }
    const split = splits.get(dicomId);
    if (split === undefined) {
      counter.skip('no row in the split table', dicomId);
      continue;
    }
    const studyTime = parseStudyDateTime(cells[column.StudyDate], cells[column.StudyTime]);
    if (studyTime === undefined) {
      counter.skip('invalid StudyDate or StudyTime', dicomId);
      continue;
    }
    const folder = mimicStudyFolder(subjectId, studyId);
    const source = `${metadata.file} line ${row.line}`;
    const imagePath = resolveInsideRoot(root, `${folder}/${dicomId}.jpg`, source);
    if (checkFiles && !fs.existsSync(imagePath)) {
      counter.skip('image file not found', dicomId);
      continue;
    }
    let reportPath: string | undefined = resolveInsideRoot(reportRoot, `${folder}.txt`, source);
    if (checkFiles && !fs.existsSync(reportPath)) {
      counter.warn('report file not found');
      reportPath = undefined;
    }
    const labels = chexpert.get(studyId);
    if (labels === undefined) counter.warn('no CheXpert labels for the study');
    records.push({ dicomId, subjectId, studyId, viewPosition, studyTime, split, officialSplit: split, imagePath, reportPath, labels });
  }

  const trainSubjects = new Set(records.filter((r) => r.officialSplit === 'train').map((r) => r.subjectId));
  const heldOut = drawHeldOutSubjects(trainSubjects, fraction, options.seed ?? 0);
  for (const record of records) if (record.officialSplit === 'train' && heldOut.has(record.subjectId)) record.split = 'validate';

  const summary = counter.finish(records.length);
  logger.info(`MIMIC-CXR-JPG ${root}: ${formatSummary(summary)}; ${heldOut.size} train subjects held out for validation`);
  return {
    records,
    summary,
    toDataFrame: () => {
      const { columns, dtypes } = mimicCxrColumns(records);
      return columnsToDataFrame(columns, dtypes);
    },
  };
}
