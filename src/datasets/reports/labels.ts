/** A stand-in report written from CheXpert labels, for X-rays that have no report. */

import { CHEXPERT_OBSERVATIONS } from '../cxr/labels';

/** Label values as the files store them: 1 positive, 0 negative, -1 uncertain, null (blank) not mentioned. */
export type ChexpertLabels = Partial<Record<string, number | null>>;

/**
 * Writes a note from CheXpert labels: the positive observations as "A, B is
 * present." and the uncertain ones as "uncertain finding of C, D", in the
 * column order of CheXpert's train.csv. Returns null when no observation is
 * positive or uncertain, and throws on a name outside the 14 observations.
 */
export function chexpertLabelNote(labels: ChexpertLabels): string | null {
  const known: readonly string[] = CHEXPERT_OBSERVATIONS;
  for (const [name, value] of Object.entries(labels)) {
    if (!known.includes(name)) {
      throw new Error(`Invalid CheXpert observation "${name}": expected one of ${known.join(', ')}`);
    }
    if (value !== null && value !== undefined && ![1, 0, -1].includes(value)) {
      throw new Error(`Invalid CheXpert value ${value} for "${name}": expected 1, 0, -1 or blank`);
    }
  }
  const present = CHEXPERT_OBSERVATIONS.filter((name) => labels[name] === 1);
  const uncertain = CHEXPERT_OBSERVATIONS.filter((name) => labels[name] === -1);
  const parts: string[] = [];
  if (present.length > 0) parts.push(`${present.join(', ')} is present.`);
  if (uncertain.length > 0) parts.push(`uncertain finding of ${uncertain.join(', ')}`);
  return parts.length > 0 ? parts.join(' ') : null;
}
