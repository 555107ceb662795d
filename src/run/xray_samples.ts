/**
 * X-ray samples of the shipped sample data (`data/samples/`): NIH
 * ChestX-ray14 images with their finding labels, and the Hannover COVID-19
 * radiographs with their clinical table. Neither source has a written report,
 * so each X-ray gets a note written from its labels in the form of the
 * label-based fallback note ("A, B is present.").
 */
import * as fs from 'fs';
import * as path from 'path';

import { columnIndex, readCsv } from '../datasets/cxr/csv';
import { resolveInsideRoot } from '../datasets/paths';

/** One X-ray with the note written for it. */
export interface XraySample {
  id: string;
  /** Patient identifier as the source publishes it; splits never divide a patient. */
  patient: string;
  file: string;
  /** The note, without the "The report from Xray is: " prefix. */
  note: string;
  source: 'nih' | 'hannover';
  /** Findings named in the note, in the source's own words. */
  findings: string[];
}

export interface SkippedSample {
  id: string;
  reason: string;
}

/** NIH label names written as the CheXpert observation a reader expects, where one exists. */
const NIH_LABEL_NAMES: Record<string, string> = {
  Effusion: 'Pleural Effusion',
  Pleural_Thickening: 'Pleural Thickening',
};

/** Writes the note of an NIH image from its `Finding Labels` cell (`A|B|C`). */
export function nihLabelNote(findingLabels: string): { note: string; findings: string[] } {
  const findings = findingLabels
    .split('|')
    .map((label) => label.trim())
    .filter((label) => label !== '')
    .map((label) => NIH_LABEL_NAMES[label] ?? label.replace(/_/g, ' '));
  if (findings.length === 0) throw new Error(`Invalid Finding Labels "${findingLabels}": expected names separated by |`);
  return { note: `${findings.join(', ')} is present.`, findings };
}

/** Reads the NIH images and label rows under `root/nih`. */
export function readNihSamples(root: string, skipped: SkippedSample[]): XraySample[] {
  const table = readCsv(path.join(root, 'nih', 'Data_Entry_2017_v2020_excerpt.csv'));
  const columns = columnIndex(table, ['Image Index', 'Finding Labels', 'Patient ID']);
  const samples: XraySample[] = [];
  for (const row of table.rows) {
    const name = row.cells[columns['Image Index']];
    const file = resolveInsideRoot(path.join(root, 'nih', 'images'), name);
    if (!fs.existsSync(file)) {
      skipped.push({ id: `nih/${name}`, reason: 'image file missing' });
      continue;
    }
    const { note, findings } = nihLabelNote(row.cells[columns['Finding Labels']]);
    samples.push({ id: `nih/${name}`, patient: `nih/${row.cells[columns['Patient ID']]}`, file, note, source: 'nih', findings });
  }
  return samples;
}

/**
 * Reads the Hannover radiographs under `root/hannover`. Every patient of that
 * repository had COVID-19; the note adds the projection and, when the table
 * records one, an intensive care admission.
 */
export function readHannoverSamples(root: string, skipped: SkippedSample[]): XraySample[] {
  const table = readCsv(path.join(root, 'hannover', 'data.csv'));
  const columns = columnIndex(table, ['patient_id', 'image_id', 'projection', 'icu_admission_offset']);
  const samples: XraySample[] = [];
  for (const row of table.rows) {
    const imageId = row.cells[columns.image_id];
    const file = resolveInsideRoot(path.join(root, 'hannover', 'png'), `${imageId}.png`);
    if (!fs.existsSync(file)) {
      skipped.push({ id: `hannover/${imageId}`, reason: 'image file missing (the table lists images the sample folder does not ship)' });
      continue;
    }
    const projection = row.cells[columns.projection].trim().toUpperCase();
    const findings = ['COVID-19'];
    const sentences = ['COVID-19 is present.'];
    if (projection !== '') sentences.push(`${projection} projection.`);
    if (row.cells[columns.icu_admission_offset].trim() !== '') {
      findings.push('intensive care admission');
      sentences.push('The patient was admitted to intensive care.');
    }
    samples.push({
      id: `hannover/${imageId}`,
      patient: `hannover/${row.cells[columns.patient_id]}`,
      file,
      note: sentences.join(' '),
      source: 'hannover',
      findings,
    });
  }
  return samples;
}
