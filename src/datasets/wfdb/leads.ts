/**
 * Selection of the twelve standard ECG leads by name. Sources order leads
 * differently (PTB-XL lists aVL before aVF, MIMIC-IV-ECG the reverse), so leads
 * are always picked by name and never by position.
 */

import { WfdbError } from './header';
import type { WfdbRecord } from './record';

/** The canonical lead order used everywhere in this library. */
export const TWELVE_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;
export type LeadName = (typeof TWELVE_LEADS)[number];

/**
 * Returns, for each canonical lead, the index of the signal with that name
 * (case-insensitive). Signals with other names (for example Frank leads) are
 * ignored. Throws when a lead is missing or appears more than once.
 */
export function twelveLeadIndices(signalNames: readonly string[], source: string): number[] {
  const positions = new Map<string, number[]>();
  signalNames.forEach((name, index) => {
    const key = name.trim().toUpperCase();
    positions.set(key, [...(positions.get(key) ?? []), index]);
  });
  const missing: string[] = [];
  const indices = TWELVE_LEADS.map((lead) => {
    const found = positions.get(lead.toUpperCase()) ?? [];
    if (found.length > 1) {
      throw new WfdbError(
        `${source}: lead ${lead} appears ${found.length} times (signals ${found.join(', ')}); expected each of the twelve leads once`,
      );
    }
    if (found.length === 0) missing.push(lead);
    return found[0] ?? -1;
  });
  if (missing.length > 0) {
    throw new WfdbError(
      `${source}: missing lead${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; the record has signals ${JSON.stringify(signalNames)}`,
    );
  }
  return indices;
}

/** The twelve leads of a record in canonical order. */
export interface TwelveLeadSignals {
  leads: readonly LeadName[];
  samplingFrequency: number;
  /** Physical samples, one array per lead in `leads` order. */
  physical: (Float64Array | Float32Array)[];
  /** Digital samples, one array per lead in `leads` order; null where the record has none (see `WfdbRecord.digital`). */
  digital: Int32Array[] | null;
  /** Physical units per lead. */
  units: string[];
  /** Per lead: true when the header gave no gain, so the values are not calibrated. */
  uncalibrated: boolean[];
}

/** Picks the twelve standard leads of `record` by name, in canonical order. */
export function selectTwelveLeads(record: WfdbRecord): TwelveLeadSignals {
  const indices = twelveLeadIndices(record.signalNames, record.source);
  return {
    leads: TWELVE_LEADS,
    samplingFrequency: record.samplingFrequency,
    physical: indices.map((index) => record.physical[index]),
    digital: record.digital === null ? null : indices.map((index) => (record.digital as Int32Array[])[index]),
    units: indices.map((index) => record.header.signals[index].units),
    uncalibrated: indices.map((index) => record.header.signals[index].uncalibrated),
  };
}
