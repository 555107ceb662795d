/**
 * The text the MoRE text encoder reads for one study: the X-ray report and the
 * ECG report as a sentence pair, each with its fixed prefix. Studies without
 * usable X-ray text are skipped and counted, never tokenised.
 */

import * as fs from 'fs';

import { getLogger } from '../../util/log';
import { resolveInsideRoot } from '../paths';
import { DEFAULT_MAX_LENGTH, EncodedBatch, ReportTokenizer, TokenizeOptions } from '../tokenizer';
import { EcgReportLines, joinEcgReport } from './ecg_report';
import { chexpertLabelNote, ChexpertLabels } from './labels';
import { prepareXrayReport } from './sections';

export const XRAY_REPORT_PREFIX = 'The report from Xray is: ';
export const ECG_REPORT_PREFIX = 'The report from ECG is: ';

const log = getLogger('datasets.reports');

export interface ReportPairInput {
  id: string;
  /** Raw MIMIC-CXR report text; null, blank or "nan" when the X-ray has none. */
  xrayReport?: string | null;
  /** CheXpert labels of the X-ray, used to write a note when the report is missing. */
  chexpertLabels?: ChexpertLabels;
  /** Machine statement lines `report_0`..`report_17` of the ECG. */
  ecgLines?: readonly (string | null | undefined)[];
}

export interface ReportPair {
  id: string;
  /** Prefixed X-ray text, the first sentence of the pair. */
  first: string;
  /** Prefixed ECG text, the second sentence of the pair. */
  second: string;
  /** Origin of the X-ray text: the report itself or the CheXpert label note. */
  xraySource: 'report' | 'labels';
}

export interface SkippedReports {
  count: number;
  /** Count per reason. */
  reasons: Record<string, number>;
  ids: string[];
}

export interface ReportPairOptions {
  /** ECG statement lines to join (default `all`). */
  ecgLines?: EcgReportLines;
}

/** Returns the prefixed pair for an X-ray text and an ECG text. */
export function prefixReportPair(xrayText: string, ecgText: string): [string, string] {
  return [XRAY_REPORT_PREFIX + xrayText, ECG_REPORT_PREFIX + ecgText];
}

/**
 * Builds the prefixed report pairs. The X-ray text is the prepared report, or
 * the CheXpert label note when the report is missing or empty after cleaning.
 * A study with neither is skipped and counted by reason.
 */
export function buildReportPairs(
  items: readonly ReportPairInput[],
  options: ReportPairOptions = {},
): { pairs: ReportPair[]; skipped: SkippedReports } {
  const pairs: ReportPair[] = [];
  const skipped: SkippedReports = { count: 0, reasons: {}, ids: [] };
  const skip = (id: string, reason: string) => {
    skipped.count++;
    skipped.reasons[reason] = (skipped.reasons[reason] ?? 0) + 1;
    skipped.ids.push(id);
  };

  for (const item of items) {
    let xrayText = prepareXrayReport(item.xrayReport);
    let xraySource: ReportPair['xraySource'] = 'report';
    if (xrayText === null && item.chexpertLabels !== undefined) {
      xrayText = chexpertLabelNote(item.chexpertLabels);
      xraySource = 'labels';
    }
    if (xrayText === null) {
      skip(item.id, item.chexpertLabels === undefined ? 'no X-ray report text' : 'no X-ray report text and no positive or uncertain label');
      continue;
    }
    const [first, second] = prefixReportPair(xrayText, joinEcgReport(item.ecgLines ?? [], options.ecgLines ?? 'all'));
    pairs.push({ id: item.id, first, second, xraySource });
  }

  if (skipped.count > 0) {
    const reasons = Object.entries(skipped.reasons).map(([reason, count]) => `${count} ${reason}`).join(', ');
    log.warn(`Skipped ${skipped.count} of ${items.length} studies without usable report text (${reasons})`);
  }
  return { pairs, skipped };
}

/** Returns the relative path of a MIMIC-CXR report: `files/pXX/pSUBJECT/sSTUDY.txt`, XX being the subject's first two digits. */
export function mimicCxrReportPath(subjectId: number | string, studyId: number | string): string {
  const subject = String(subjectId);
  if (!/^\d{3,}$/.test(subject) || !/^\d+$/.test(String(studyId))) {
    throw new Error(`Invalid MIMIC-CXR ids subject_id=${subject}, study_id=${studyId}: expected digits`);
  }
  return `files/p${subject.slice(0, 2)}/p${subject}/s${studyId}.txt`;
}

/** Reads a MIMIC-CXR report under `root`, or returns null when the file does not exist. */
export function readMimicCxrReport(root: string, subjectId: number | string, studyId: number | string): string | null {
  const relative = mimicCxrReportPath(subjectId, studyId);
  const file = resolveInsideRoot(root, relative, `report of study ${studyId}`);
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/** Tokenises report pairs as sentence pairs, logging how many were truncated to fit. */
export function encodeReportPairs(
  tokenizer: ReportTokenizer,
  pairs: readonly ReportPair[],
  options: TokenizeOptions = {},
): EncodedBatch & { ids: string[] } {
  const batch = tokenizer.encodeBatch(
    pairs.map((pair) => [pair.first, pair.second] as const),
    options,
  );
  if (batch.truncatedCount > 0) {
    log.info(`Truncated ${batch.truncatedCount} of ${pairs.length} report pairs to ${options.maxLength ?? DEFAULT_MAX_LENGTH} tokens`);
  }
  return { ...batch, ids: pairs.map((pair) => pair.id) };
}
