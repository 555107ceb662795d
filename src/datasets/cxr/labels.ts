/**
 * The 14 CheXpert observations (Irvin et al., "CheXpert", AAAI 2019) and the
 * policies for uncertain labels: U-Ones maps uncertain (-1) to 1, U-Zeros to
 * 0, U-Ignore to 0 with a mask of 0 so that a loss can leave it out. A blank
 * cell (not mentioned) is 0 under every policy.
 */

import { CsvError, CsvTable } from './csv';

export const CHEXPERT_OBSERVATIONS = [
  'No Finding', 'Enlarged Cardiomediastinum', 'Cardiomegaly', 'Lung Opacity', 'Lung Lesion', 'Edema',
  'Consolidation', 'Pneumonia', 'Atelectasis', 'Pneumothorax', 'Pleural Effusion', 'Pleural Other',
  'Fracture', 'Support Devices',
] as const;

/** The five labels of the CheXpert competition. */
export const CHEXPERT_COMPETITION = ['Atelectasis', 'Cardiomegaly', 'Consolidation', 'Edema', 'Pleural Effusion'] as const;

export type UncertaintyPolicy = 'ones' | 'zeros' | 'ignore';
export const UNCERTAINTY_POLICIES: readonly UncertaintyPolicy[] = ['ones', 'zeros', 'ignore'];

/** A raw label cell: 1 positive, 0 negative, -1 uncertain, null blank (not mentioned). */
export type RawLabel = 1 | 0 | -1 | null;

/** Parses a label cell ("1.0", "0", "-1.0" or blank), or throws naming the file, line and column. */
export function parseRawLabel(value: string, table: CsvTable, line: number, column: string): RawLabel {
  const text = value.trim();
  if (text === '') return null;
  const number = Number(text);
  if (number === 1 || number === 0 || number === -1) return number as RawLabel;
  throw new CsvError(`Invalid label "${value}" for ${column} in ${table.file} line ${line}: expected 1, 0, -1 or blank`);
}

/** Label values and mask (1 where the label counts) under a policy. */
export interface PolicyLabels {
  values: Float32Array;
  mask: Uint8Array;
}

export function checkPolicy(policy: string): UncertaintyPolicy {
  if (!(UNCERTAINTY_POLICIES as readonly string[]).includes(policy)) {
    throw new Error(`Invalid uncertainty policy "${policy}": expected one of ${UNCERTAINTY_POLICIES.join(', ')}`);
  }
  return policy as UncertaintyPolicy;
}

/** Applies an uncertainty policy to raw labels, in the order given. */
export function applyUncertaintyPolicy(raw: readonly RawLabel[], policy: UncertaintyPolicy): PolicyLabels {
  checkPolicy(policy);
  const values = new Float32Array(raw.length);
  const mask = new Uint8Array(raw.length).fill(1);
  raw.forEach((label, i) => {
    if (label === 1) values[i] = 1;
    else if (label === -1) {
      if (policy === 'ones') values[i] = 1;
      else if (policy === 'ignore') mask[i] = 0;
    }
  });
  return { values, mask };
}
