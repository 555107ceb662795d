/**
 * The evaluation sets of the paper-tables protocols, read from the published
 * dataset layouts with the manifest readers of `src/datasets`. Each set is a
 * list of files with labels (and reports where the protocol needs them);
 * every row left out is counted with its reason.
 */
import * as fs from 'fs';
import * as path from 'path';

import { loadChexpertManifest } from '../../datasets/cxr/chexpert';
import { CHEXPERT_COMPETITION, type UncertaintyPolicy } from '../../datasets/cxr/labels';
import { loadEdemaSeverity, type EdemaLabelSource } from '../../datasets/cxr/edema';
import { loadMimicCxrManifest, type MimicCxrRecord } from '../../datasets/cxr/mimicCxr';
import { readMimicEcgManifest } from '../../datasets/mimic_ecg';
import { readPtbXlManifest, type PtbXlRecord } from '../../datasets/ptbxl';
import { ECG_REPORT_PREFIX, XRAY_REPORT_PREFIX } from '../../datasets/reports/pairs';
import { prepareXrayReport } from '../../datasets/reports/sections';
import { readScpDescriptions, statementReport } from '../../run/ecg_samples';
import { readHannoverSamples, readNihSamples, type SkippedSample } from '../../run/xray_samples';
import { Rng } from '../../util/rng';

/** Files of one split with their labels: 0/1 rows (multi-label) or class indexes (multi-class). */
export interface LabelledSet {
  files: string[];
  labels: number[][] | number[];
  /** Reports (with the modality prefix) where the protocol needs them. */
  texts?: string[];
}

/** Rows left out of a set, counted by reason. */
export type SkipCounts = Record<string, number>;

function count(skipped: SkipCounts, reason: string, by = 1): void {
  skipped[reason] = (skipped[reason] ?? 0) + by;
}

/** Adds a manifest reader's skip counts to `skipped`. */
function merge(skipped: SkipCounts, counts: Record<string, number>): void {
  for (const [reason, by] of Object.entries(counts)) count(skipped, reason, by);
}

/** Keeps at most `limit` rows, drawn with a seeded generator and kept in their order. */
export function limitRows<T>(rows: T[], limit: number | undefined, seed: number): T[] {
  if (limit === undefined || rows.length <= limit) return rows;
  const chosen = new Rng(seed).shuffle(rows.map((_, i) => i)).slice(0, limit).sort((a, b) => a - b);
  return chosen.map((i) => rows[i]);
}

/** The 4 MIMIC-CXR probe labels of the protocol. */
export const MIMIC_CXR_PROBE_LABELS = ['Atelectasis', 'Cardiomegaly', 'Edema', 'Pleural Effusion'] as const;

/**
 * Reads the MIMIC-CXR-JPG probe sets on the official splits. As in the
 * reference, a study with an uncertain (-1) value for any of the four labels
 * is left out. A blank label counts as negative.
 */
export function mimicCxrProbeSets(root: string, skipped: SkipCounts): { records: MimicCxrRecord[]; splits: Record<'train' | 'validation' | 'test', LabelledSet> } {
  const manifest = loadMimicCxrManifest({ root, holdOutFraction: 0 });
  merge(skipped, manifest.summary.skipped);
  const splits = { train: { files: [] as string[], labels: [] as number[][] }, validation: { files: [] as string[], labels: [] as number[][] }, test: { files: [] as string[], labels: [] as number[][] } };
  for (const record of manifest.records) {
    if (record.labels === undefined) {
      count(skipped, 'study has no row in the CheXpert label table');
      continue;
    }
    const raw = MIMIC_CXR_PROBE_LABELS.map((name) => record.labels?.[name] ?? null);
    if (raw.some((value) => value === -1)) {
      count(skipped, 'uncertain label (-1)');
      continue;
    }
    const split = record.officialSplit === 'validate' ? splits.validation : splits[record.officialSplit];
    split.files.push(record.imagePath);
    split.labels.push(raw.map((value) => (value === 1 ? 1 : 0)));
  }
  return { records: manifest.records, splits };
}

/**
 * CheXpert probe sets: the official valid split is the test set, and a
 * seeded tenth of the train split is held out for early stopping. Uncertain
 * labels follow `policy` (`ignore` is not offered: the probe loss has no mask).
 */
export function chexpertProbeSets(
  root: string, policy: Exclude<UncertaintyPolicy, 'ignore'>, seed: number, skipped: SkipCounts,
): Record<'train' | 'validation' | 'test', LabelledSet> {
  const read = (split: 'train' | 'valid') => {
    const manifest = loadChexpertManifest({ root, split, policy, observations: CHEXPERT_COMPETITION });
    merge(skipped, manifest.summary.skipped);
    return manifest;
  };
  const train = read('train').records;
  const test = read('valid').records;
  const heldOut = new Set(new Rng(seed).shuffle(train.map((_, i) => i)).slice(0, Math.max(1, Math.round(train.length / 10))));
  const toSet = (records: typeof train): LabelledSet => ({
    files: records.map((r) => r.imagePath),
    labels: records.map((r) => Array.from(r.labels.values)),
  });
  return {
    train: toSet(train.filter((_, i) => !heldOut.has(i))),
    validation: toSet(train.filter((_, i) => heldOut.has(i))),
    test: toSet(test),
  };
}

/**
 * Draws the CheXpert 5x200-style zero-shot set: frontal train images with
 * exactly one positive competition label, at most `perClass` per label.
 * The images may also be in the CheXpert probe's training split. That does
 * not leak, because the zero-shot figures use no probe and the probe is
 * scored on the valid split.
 */
export function chexpertZeroShotSet(root: string, perClass: number, seed: number): LabelledSet {
  const records = loadChexpertManifest({ root, split: 'train', policy: 'zeros', observations: CHEXPERT_COMPETITION }).records;
  const rng = new Rng(seed);
  const files: string[] = [];
  const labels: number[][] = [];
  CHEXPERT_COMPETITION.forEach((_, c) => {
    const only = records.filter((r) => r.raw.every((value, j) => (j === c ? value === 1 : value !== 1)));
    for (const record of rng.shuffle(only).slice(0, perClass)) {
      files.push(record.imagePath);
      labels.push(CHEXPERT_COMPETITION.map((__, j) => (j === c ? 1 : 0)));
    }
  });
  return { files, labels };
}

/** Edema severity (0-3) sets on the MIMIC-CXR splits of the graded images. */
export function edemaSets(
  root: string, source: EdemaLabelSource, images: readonly MimicCxrRecord[], skipped: SkipCounts,
): Record<'train' | 'validation' | 'test', LabelledSet> {
  const manifest = loadEdemaSeverity({ root, source, images });
  merge(skipped, manifest.summary.skipped);
  const sets = { train: { files: [] as string[], labels: [] as number[] }, validation: { files: [] as string[], labels: [] as number[] }, test: { files: [] as string[], labels: [] as number[] } };
  for (const record of manifest.records) {
    const split = record.officialSplit === 'validate' ? sets.validation : sets[record.officialSplit];
    split.files.push(record.imagePath);
    split.labels.push(record.edemaSeverity);
  }
  return sets;
}

/** MIMIC-CXR test images with their reports, one image per study, for retrieval. */
export function mimicCxrRetrievalSet(records: readonly MimicCxrRecord[], skipped: SkipCounts): LabelledSet {
  const seen = new Set<number>();
  const files: string[] = [];
  const texts: string[] = [];
  for (const record of records) {
    if (record.officialSplit !== 'test' || seen.has(record.studyId)) continue;
    seen.add(record.studyId);
    if (record.reportPath === undefined) {
      count(skipped, 'no report file');
      continue;
    }
    const report = prepareXrayReport(fs.readFileSync(record.reportPath, 'utf8'));
    if (report === null) {
      count(skipped, 'empty report after section extraction');
      continue;
    }
    files.push(record.imagePath);
    texts.push(XRAY_REPORT_PREFIX + report);
  }
  return { files, labels: [], texts };
}

/** PTB-XL 100 Hz sets by fold (1-8 train, 9 validation, 10 test) with statement reports. */
export function ptbxlSets(root: string, skipped: SkipCounts): Record<'train' | 'validation' | 'test', LabelledSet> {
  const manifest = readPtbXlManifest(root, { samplingRate: 100 });
  merge(skipped, manifest.summary.skipped);
  const descriptions = readScpDescriptions(path.join(root, 'scp_statements.csv'));
  const sets = { train: [] as PtbXlRecord[], validation: [] as PtbXlRecord[], test: [] as PtbXlRecord[] };
  for (const record of manifest.records) sets[record.split].push(record);
  const toSet = (records: PtbXlRecord[]): LabelledSet => ({
    files: records.map((r) => r.recordPath),
    labels: records.map((r) => r.labels),
    texts: records.map((r) => ECG_REPORT_PREFIX + statementReport(r.scpCodes, descriptions, `ptbxl/${r.ecgId}`)),
  });
  return { train: toSet(sets.train), validation: toSet(sets.validation), test: toSet(sets.test) };
}

/** MIMIC-IV-ECG records with their machine reports, for retrieval. */
export function mimicEcgRetrievalSet(root: string, skipped: SkipCounts): LabelledSet {
  const manifest = readMimicEcgManifest(root);
  merge(skipped, manifest.summary.skipped);
  const records = manifest.records;
  return { files: records.map((r) => r.recordPath), labels: [], texts: records.map((r) => ECG_REPORT_PREFIX + r.report) };
}

/** NIH labels that name a CheXpert competition observation. */
const NIH_TO_CHEXPERT: Record<string, string> = {
  Atelectasis: 'Atelectasis', Cardiomegaly: 'Cardiomegaly', Consolidation: 'Consolidation', Edema: 'Edema', 'Pleural Effusion': 'Pleural Effusion',
};

/** Reads the shipped NIH X-rays with their finding labels as the competition labels, for zero-shot classification. */
export function sampleXrayZeroShotSet(root: string, skipped: SkipCounts): LabelledSet {
  const skippedSamples: SkippedSample[] = [];
  const nih = readNihSamples(root, skippedSamples);
  for (const entry of skippedSamples) count(skipped, entry.reason);
  return {
    files: nih.map((x) => x.file),
    labels: nih.map((x) => CHEXPERT_COMPETITION.map((name) => (x.findings.some((f) => NIH_TO_CHEXPERT[f] === name) ? 1 : 0))),
  };
}

/** Reads the shipped NIH and Hannover X-rays with the notes written from their labels, for retrieval. */
export function sampleXrayRetrievalSet(root: string, skipped: SkipCounts): LabelledSet {
  const skippedSamples: SkippedSample[] = [];
  const all = [...readNihSamples(root, skippedSamples), ...readHannoverSamples(root, skippedSamples)];
  for (const entry of skippedSamples) count(skipped, entry.reason);
  return { files: all.map((x) => x.file), labels: [], texts: all.map((x) => XRAY_REPORT_PREFIX + x.note) };
}
