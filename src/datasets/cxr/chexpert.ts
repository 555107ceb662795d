/**
 * Manifest of CheXpert (Irvin et al., AAAI 2019): `train.csv` or `valid.csv`
 * with `Path`, `Sex`, `Age`, `Frontal/Lateral`, `AP/PA` and the 14
 * observations (1.0 positive, 0.0 negative, -1.0 uncertain, blank not
 * mentioned), with an uncertainty policy applied.
 *
 * `Path` cells start with the release folder (`CheXpert-v1.0-small/train/...`).
 * When that first segment equals the root's folder name, it is dropped before
 * the path is resolved against `root`.
 */

import * as fs from 'fs';
import * as path from 'path';
import { getLogger } from '../../util/log';
import { ColumnDtype, columnsToDataFrame } from '../ecg/manifest';
import { resolveInsideRoot } from '../paths';
import { columnIndex, CsvError, readCsv } from './csv';
import {
  applyUncertaintyPolicy, CHEXPERT_OBSERVATIONS, checkPolicy, PolicyLabels, RawLabel, parseRawLabel, UncertaintyPolicy,
} from './labels';
import { formatSummary, ManifestSummary, SkipCounter } from './summary';

const logger = getLogger('datasets.cxr.chexpert');

export interface ChexpertRecord {
  /** The `Path` cell as written. */
  path: string;
  imagePath: string;
  sex: string;
  /** Age in years; undefined when the cell is blank. */
  age?: number;
  frontal: boolean;
  /** AP or PA for frontal images; empty for lateral ones. */
  projection: string;
  /** Raw labels in the order of `observations`. */
  raw: RawLabel[];
  /** Labels and mask under the chosen policy, in the order of `observations`. */
  labels: PolicyLabels;
}

export interface ChexpertOptions {
  /** Folder that contains `train.csv` and `valid.csv`. */
  root: string;
  split: 'train' | 'valid';
  policy: UncertaintyPolicy;
  /** Observations to keep, in this order; default all 14. */
  observations?: readonly string[];
  /** Keep frontal images only; default true. */
  frontalOnly?: boolean;
  /** Check that image files exist; default true. */
  checkFiles?: boolean;
}

export interface ChexpertManifest {
  observations: string[];
  records: ChexpertRecord[];
  summary: ManifestSummary;
  /**
   * One row per record. The published columns Path, Sex, Age,
   * Frontal/Lateral, AP/PA and the kept observations (1.0, 0.0, -1.0, or
   * null when blank) come first, then image_path. Each observation then gets
   * `label_NAME` (Float32, the policy's value) and `mask_NAME` (UInt8, 0 where
   * U-Ignore leaves the label out).
   */
  toDataFrame(): ReturnType<typeof columnsToDataFrame>;
}

function chexpertDataFrame(observations: readonly string[], records: readonly ChexpertRecord[]): ReturnType<typeof columnsToDataFrame> {
  const columns: Record<string, unknown[]> = {
    Path: records.map((record) => record.path),
    Sex: records.map((record) => record.sex),
    Age: records.map((record) => record.age ?? null),
    'Frontal/Lateral': records.map((record) => (record.frontal ? 'Frontal' : 'Lateral')),
    'AP/PA': records.map((record) => record.projection),
  };
  const dtypes: Record<string, ColumnDtype> = { Path: 'String', Sex: 'String', Age: 'Float64', 'Frontal/Lateral': 'String', 'AP/PA': 'String' };
  observations.forEach((name, index) => {
    columns[name] = records.map((record) => record.raw[index]);
    dtypes[name] = 'Float64';
  });
  columns.image_path = records.map((record) => record.imagePath);
  dtypes.image_path = 'String';
  observations.forEach((name, index) => {
    columns[`label_${name}`] = records.map((record) => record.labels.values[index]);
    dtypes[`label_${name}`] = 'Float32';
  });
  observations.forEach((name, index) => {
    columns[`mask_${name}`] = records.map((record) => record.labels.mask[index]);
    dtypes[`mask_${name}`] = 'UInt8';
  });
  return columnsToDataFrame(columns, dtypes);
}

function resolveImage(root: string, cell: string, source: string): string {
  const segments = cell.split(/[\\/]/);
  if (segments.length > 1 && segments[0] === path.basename(root)) {
    return resolveInsideRoot(root, segments.slice(1).join('/'), source);
  }
  return resolveInsideRoot(root, cell, source);
}

/** Loads a CheXpert split with an uncertainty policy; skipped rows are counted in the summary. */
export function loadChexpertManifest(options: ChexpertOptions): ChexpertManifest {
  const root = path.resolve(options.root);
  const policy = checkPolicy(options.policy);
  if (options.split !== 'train' && options.split !== 'valid') {
    throw new Error(`Invalid CheXpert split "${options.split}": expected train or valid`);
  }
  const observations = [...(options.observations ?? CHEXPERT_OBSERVATIONS)];
  const unknown = observations.filter((name) => !(CHEXPERT_OBSERVATIONS as readonly string[]).includes(name));
  if (unknown.length > 0) {
    throw new Error(`Unknown CheXpert observation(s) ${unknown.join(', ')}: expected names from ${CHEXPERT_OBSERVATIONS.join(', ')}`);
  }
  const frontalOnly = options.frontalOnly ?? true;
  const checkFiles = options.checkFiles ?? true;

  const table = readCsv(path.join(root, `${options.split}.csv`));
  const column = columnIndex(table, ['Path', 'Sex', 'Age', 'Frontal/Lateral', 'AP/PA', ...observations]);
  const counter = new SkipCounter();
  const records: ChexpertRecord[] = [];
  for (const row of table.rows) {
    counter.read();
    const cells = row.cells;
    const cell = cells[column.Path].trim();
    const view = cells[column['Frontal/Lateral']].trim();
    if (view !== 'Frontal' && view !== 'Lateral') {
      throw new CsvError(`Invalid Frontal/Lateral "${view}" in ${table.file} line ${row.line}: expected Frontal or Lateral`);
    }
    if (frontalOnly && view !== 'Frontal') {
      counter.skip('lateral view', cell);
      continue;
    }
    const imagePath = resolveImage(root, cell, `${table.file} line ${row.line}`);
    if (checkFiles && !fs.existsSync(imagePath)) {
      counter.skip('image file not found', cell);
      continue;
    }
    const ageText = cells[column.Age].trim();
    const age = ageText === '' ? undefined : Number(ageText);
    if (age !== undefined && !Number.isFinite(age)) {
      throw new CsvError(`Invalid Age "${ageText}" in ${table.file} line ${row.line}: expected a number of years`);
    }
    const raw = observations.map((name) => parseRawLabel(cells[column[name]], table, row.line, name));
    records.push({
      path: cell, imagePath, sex: cells[column.Sex].trim(), age, frontal: view === 'Frontal',
      projection: cells[column['AP/PA']].trim(), raw, labels: applyUncertaintyPolicy(raw, policy),
    });
  }
  const summary = counter.finish(records.length);
  logger.info(`CheXpert ${options.split} (${policy} policy) ${root}: ${formatSummary(summary)}`);
  return { observations, records, summary, toDataFrame: () => chexpertDataFrame(observations, records) };
}
