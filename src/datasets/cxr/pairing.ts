/**
 * Pairs chest X-rays with ECGs of the same patient (`subject_id`) taken at
 * most a window apart (60 days by default), as MoRE pairs MIMIC-CXR with
 * MIMIC-IV-ECG. Each X-ray takes the ECG closest in time; ties go to the
 * earlier ECG, then to the first in input order.
 */

import { getLogger } from '../../util/log';
import { columnsToDataFrame } from '../ecg/manifest';
import { formatSummary, ManifestSummary, SkipCounter } from './summary';

const logger = getLogger('datasets.cxr.pairing');
const DAY_MS = 24 * 3600 * 1000;

export interface TimedRecord {
  subjectId: number;
  time: Date;
}

export interface PairingOptions {
  /** Largest allowed distance between the X-ray and the ECG, in days; default 60. */
  windowDays?: number;
  /** Keep X-rays without an ECG in the window (with `ecg` undefined), for masked training; default false. */
  keepUnpaired?: boolean;
  /** Let several X-rays share one ECG; default true. */
  allowEcgReuse?: boolean;
}

export interface XrayEcgPair<X, E> {
  xray: X;
  ecg?: E;
  /** Absolute time between the two, in days; undefined without an ECG. */
  gapDays?: number;
}

/** Functions that compute a column's value from a pair, by column name. Polars infers each column's type. */
export type PairColumns<X, E> = Record<string, (pair: XrayEcgPair<X, E>) => unknown>;

export interface XrayEcgPairing<X, E> {
  pairs: XrayEcgPair<X, E>[];
  summary: ManifestSummary;
  /**
   * One row per pair: subject_id, xray_index and ecg_index (positions in the
   * input arrays), xray_time, ecg_time and gap_days, where the ECG columns
   * are null for an unpaired X-ray. `extraColumns` appends columns read from
   * each pair, such as the dicom_id of the X-ray.
   */
  toDataFrame(extraColumns?: PairColumns<X, E>): ReturnType<typeof columnsToDataFrame>;
}

/**
 * Pairs each X-ray with the nearest ECG of its subject within the window.
 * `xrayTime` and `ecgTime` read each record's subject and time. X-rays
 * without a partner are skipped (and counted) unless `keepUnpaired` is set.
 */
export function pairXrayEcg<X, E>(
  xrays: readonly X[],
  ecgs: readonly E[],
  xrayTime: (record: X) => TimedRecord,
  ecgTime: (record: E) => TimedRecord,
  options: PairingOptions = {},
): XrayEcgPairing<X, E> {
  const windowDays = options.windowDays ?? 60;
  if (!(windowDays >= 0) || !Number.isFinite(windowDays)) throw new Error(`Invalid windowDays ${windowDays}: expected a non-negative number`);
  const reuse = options.allowEcgReuse ?? true;
  const bySubject = new Map<number, { record: E; time: number; index: number }[]>();
  ecgs.forEach((record, index) => {
    const { subjectId, time } = ecgTime(record);
    const ms = time.getTime();
    if (Number.isNaN(ms)) throw new Error(`Invalid ECG time for subject ${subjectId} (ECG number ${index}): expected a valid Date`);
    const list = bySubject.get(subjectId);
    if (list === undefined) bySubject.set(subjectId, [{ record, time: ms, index }]);
    else list.push({ record, time: ms, index });
  });

  const counter = new SkipCounter();
  const used = new Set<number>();
  const pairs: XrayEcgPair<X, E>[] = [];
  // Row data for toDataFrame, in the order of `pairs`.
  const rows: { subjectId: number; xrayIndex: number; xrayTime: Date; ecgIndex: number | null; ecgTime: Date | null }[] = [];
  xrays.forEach((xray, xrayIndex) => {
    counter.read();
    const { subjectId, time } = xrayTime(xray);
    const at = time.getTime();
    const candidates = bySubject.get(subjectId);
    let best: { record: E; time: number; index: number } | undefined;
    let bestGap = Infinity;
    if (!Number.isNaN(at) && candidates !== undefined) {
      for (const candidate of candidates) {
        if (!reuse && used.has(candidate.index)) continue;
        const gap = Math.abs(candidate.time - at);
        if (gap > windowDays * DAY_MS) continue;
        if (gap < bestGap || (gap === bestGap && best !== undefined && candidate.time < best.time)) {
          best = candidate;
          bestGap = gap;
        }
      }
    }
    let reason: string | undefined;
    if (Number.isNaN(at)) reason = 'X-ray has no valid time';
    else if (candidates === undefined) reason = 'no ECG for the subject';
    else if (best === undefined) reason = `no ECG within ${windowDays} days`;
    if (best === undefined) {
      if (options.keepUnpaired) {
        counter.warn(reason ?? 'unpaired');
        pairs.push({ xray });
        rows.push({ subjectId, xrayIndex, xrayTime: time, ecgIndex: null, ecgTime: null });
      } else {
        counter.skip(reason ?? 'unpaired', `subject ${subjectId} X-ray ${xrayIndex}`);
      }
      return;
    }
    used.add(best.index);
    pairs.push({ xray, ecg: best.record, gapDays: bestGap / DAY_MS });
    rows.push({ subjectId, xrayIndex, xrayTime: time, ecgIndex: best.index, ecgTime: new Date(best.time) });
  });
  const summary = counter.finish(pairs.length);
  logger.info(`paired X-rays with ECGs within ${windowDays} days: ${formatSummary(summary)}`);
  const toDataFrame = (extraColumns: PairColumns<X, E> = {}): ReturnType<typeof columnsToDataFrame> => {
    const columns: Record<string, unknown[]> = {
      subject_id: rows.map((row) => row.subjectId),
      xray_index: rows.map((row) => row.xrayIndex),
      xray_time: rows.map((row) => (Number.isNaN(row.xrayTime.getTime()) ? null : row.xrayTime)),
      ecg_index: rows.map((row) => row.ecgIndex),
      ecg_time: rows.map((row) => row.ecgTime),
      gap_days: pairs.map((pair) => pair.gapDays ?? null),
    };
    for (const [name, read] of Object.entries(extraColumns)) {
      if (name in columns) throw new Error(`Extra column "${name}" repeats a pairing column: choose another name`);
      columns[name] = pairs.map(read);
    }
    return columnsToDataFrame(columns, {
      subject_id: 'Int64', xray_index: 'Int64', xray_time: 'Datetime', ecg_index: 'Int64', ecg_time: 'Datetime', gap_days: 'Float64',
    });
  };
  return { pairs, summary, toDataFrame };
}
