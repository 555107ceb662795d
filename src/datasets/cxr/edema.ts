/**
 * Pulmonary edema severity grades for MIMIC-CXR (Liao et al., "Pulmonary
 * Edema Severity Grades Based on MIMIC-CXR", PhysioNet `mimic-cxr-pe-severity`).
 * Grades: 0 none, 1 vascular congestion, 2 interstitial edema, 3 alveolar edema.
 *
 * The published layout has one CSV per labelling method. Two are per image:
 * `consensus_image_edema_severity.csv` and `expert_report_edema_severity.csv`
 * have the columns subject_id, study_id, dicom_id and edema_severity. The
 * third, `regex_report_edema_severity.csv`, is per study (subject_id,
 * study_id, edema_severity), so its grade goes to every frontal image of the
 * study in the MIMIC-CXR-JPG manifest.
 */

import * as path from 'path';
import { getLogger } from '../../util/log';
import { columnsToDataFrame } from '../ecg/manifest';
import { columnIndex, CsvError, parseId, readCsv } from './csv';
import { mimicCxrColumns, MimicCxrRecord } from './mimicCxr';
import { formatSummary, ManifestSummary, SkipCounter } from './summary';

const logger = getLogger('datasets.cxr.edema');

export type EdemaLabelSource = 'consensus' | 'expert' | 'regex';
const FILES: Record<EdemaLabelSource, string> = {
  consensus: 'consensus_image_edema_severity.csv',
  expert: 'expert_report_edema_severity.csv',
  regex: 'regex_report_edema_severity.csv',
};

export interface EdemaRecord extends MimicCxrRecord {
  /** 0 none, 1 vascular congestion, 2 interstitial edema, 3 alveolar edema. */
  edemaSeverity: 0 | 1 | 2 | 3;
}

export interface EdemaOptions {
  /** Folder with the edema severity CSV files. */
  root: string;
  source: EdemaLabelSource;
  /** MIMIC-CXR-JPG frontal images (from `loadMimicCxrManifest`) that the grades attach to. */
  images: readonly MimicCxrRecord[];
}

export interface EdemaManifest {
  records: EdemaRecord[];
  summary: ManifestSummary;
  /** The MIMIC-CXR-JPG columns of `mimicCxrColumns` plus edema_severity (Int64). */
  toDataFrame(): ReturnType<typeof columnsToDataFrame>;
}

/** Joins edema grades to MIMIC-CXR-JPG images; rows whose image or study is not in `images` are skipped and counted. */
export function loadEdemaSeverity(options: EdemaOptions): EdemaManifest {
  const file = FILES[options.source];
  if (file === undefined) throw new Error(`Invalid edema label source "${options.source}": expected one of ${Object.keys(FILES).join(', ')}`);
  const table = readCsv(path.join(options.root, file));
  const perImage = options.source !== 'regex';
  const column = columnIndex(table, perImage
    ? ['subject_id', 'study_id', 'dicom_id', 'edema_severity']
    : ['subject_id', 'study_id', 'edema_severity']);
  const byDicom = new Map(options.images.map((record) => [record.dicomId, record]));
  const byStudy = new Map<number, MimicCxrRecord[]>();
  for (const record of options.images) {
    const list = byStudy.get(record.studyId);
    if (list === undefined) byStudy.set(record.studyId, [record]);
    else list.push(record);
  }

  const counter = new SkipCounter();
  const records: EdemaRecord[] = [];
  const seen = new Set<string>();
  for (const row of table.rows) {
    counter.read();
    const cells = row.cells;
    const studyId = parseId(cells[column.study_id], table, row.line, 'study_id');
    const subjectId = parseId(cells[column.subject_id], table, row.line, 'subject_id');
    const gradeText = cells[column.edema_severity].trim();
    const grade = Number(gradeText);
    if (gradeText === '' || !Number.isInteger(grade) || grade < 0 || grade > 3) {
      throw new CsvError(`Invalid edema_severity "${gradeText}" in ${table.file} line ${row.line}: expected an integer 0 to 3`);
    }
    const id = perImage ? cells[column.dicom_id].trim() : `s${studyId}`;
    let matches: MimicCxrRecord[];
    if (perImage) {
      const image = byDicom.get(id);
      matches = image === undefined ? [] : [image];
    } else {
      matches = byStudy.get(studyId) ?? [];
    }
    if (matches.length === 0) {
      counter.skip(perImage ? 'image not among the frontal MIMIC-CXR-JPG images' : 'study has no frontal MIMIC-CXR-JPG image', id);
      continue;
    }
    for (const image of matches) {
      if (image.subjectId !== subjectId) {
        throw new CsvError(`Mismatched subject_id ${subjectId} in ${table.file} line ${row.line}: the metadata gives ${image.subjectId} for ${id}`);
      }
      if (seen.has(image.dicomId)) {
        counter.skip('duplicate grade for an image', image.dicomId);
        continue;
      }
      seen.add(image.dicomId);
      records.push({ ...image, edemaSeverity: grade as 0 | 1 | 2 | 3 });
    }
  }
  const summary = counter.finish(records.length);
  logger.info(`edema severity (${options.source}) ${options.root}: ${formatSummary(summary)}`);
  return {
    records,
    summary,
    toDataFrame: () => {
      const { columns, dtypes } = mimicCxrColumns(records);
      columns.edema_severity = records.map((record) => record.edemaSeverity);
      dtypes.edema_severity = 'Int64';
      return columnsToDataFrame(columns, dtypes);
    },
  };
}
