/**
 * Pairs chest X-rays with ECGs of the same patient (`subject_id`) taken at
 * most a window apart (60 days by default), as MoRE pairs MIMIC-CXR with
 * MIMIC-IV-ECG. Each X-ray takes the ECG closest in time; ties go to the
 * earlier ECG, then to the first in input order.
 */

import { getLogger } from '../../util/log';
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
): { pairs: XrayEcgPair<X, E>[]; summary: ManifestSummary } {
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
      } else {
        counter.skip(reason ?? 'unpaired', `subject ${subjectId} X-ray ${xrayIndex}`);
      }
      return;
    }
    used.add(best.index);
    pairs.push({ xray, ecg: best.record, gapDays: bestGap / DAY_MS });
  });
  const summary = counter.finish(pairs.length);
  logger.info(`paired X-rays with ECGs within ${windowDays} days: ${formatSummary(summary)}`);
  return { pairs, summary };
}
