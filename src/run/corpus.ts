/**
 * The sample corpus of the main job: MoRE samples built from the shipped
 * sample data. No public dataset pairs an X-ray with an ECG of the same
 * patient, so every sample carries one imaging modality and its report; the
 * loss masks the missing pair (InfoNCE over report-X-ray pairs and over
 * report-ECG pairs, each over the samples that have them).
 */
import * as path from 'path';

import { ECG_REPORT_PREFIX, XRAY_REPORT_PREFIX } from '../datasets/reports/pairs';
import { repositoryRoot } from '../util/repository';
import { Rng } from '../util/rng';
import { type EcgReportStyle, type EcgSample, readPtbXlSamples } from './ecg_samples';
import { readHannoverSamples, readNihSamples, type SkippedSample, type XraySample } from './xray_samples';

export type CorpusSplit = 'train' | 'heldout';

export type CorpusSample =
  | { id: string; modality: 'ecg'; split: CorpusSplit; text: string; ecg: EcgSample }
  | { id: string; modality: 'xray'; split: CorpusSplit; text: string; xray: XraySample };

export interface CorpusOptions {
  /** Folder holding `ptbxl/`, `nih/` and `hannover/` (default: the repository's `data/samples`). */
  root?: string;
  /** Report style of the ECGs (default `statements`). */
  ecgReportStyle?: EcgReportStyle;
  /** PTB-XL folds held out from training (default 9 and 10). */
  heldOutFolds?: number[];
  /** Fraction of X-ray patients held out from training (default 0.25). */
  heldOutXrayFraction?: number;
  /** Seed of the X-ray patient split (default 0). */
  seed?: number;
}

export interface CorpusSummary {
  root: string;
  ecgReportStyle: EcgReportStyle;
  counts: Record<CorpusSplit, { ecg: number; xray: number }>;
  xrayPatients: Record<CorpusSplit, number>;
  skipped: SkippedSample[];
  /** Plain statements about what the corpus is and is not. */
  notes: string[];
}

export interface SampleCorpus {
  samples: CorpusSample[];
  summary: CorpusSummary;
}

export const DEFAULT_SAMPLE_ROOT = path.join(repositoryRoot(), 'data', 'samples');

/** Builds the corpus: PTB-XL ECGs with reports, NIH and Hannover X-rays with notes, split into train and held-out. */
export function buildSampleCorpus(options: CorpusOptions = {}): SampleCorpus {
  const root = path.resolve(options.root ?? DEFAULT_SAMPLE_ROOT);
  const style = options.ecgReportStyle ?? 'statements';
  const heldOutFolds = new Set(options.heldOutFolds ?? [9, 10]);
  const fraction = options.heldOutXrayFraction ?? 0.25;
  if (!(fraction > 0 && fraction < 1)) {
    throw new Error(`Invalid heldOutXrayFraction ${fraction}: expected a number between 0 and 1`);
  }

  const skipped: SkippedSample[] = [];
  const ecgs = readPtbXlSamples(root, style, skipped);
  const xrays = [...readNihSamples(root, skipped), ...readHannoverSamples(root, skipped)];

  // Hold out whole patients, so no held-out X-ray shares a patient with a training one.
  const patients = [...new Set(xrays.map((x) => x.patient))].sort();
  new Rng(options.seed ?? 0).shuffle(patients);
  const heldOutPatients = new Set(patients.slice(0, Math.max(1, Math.round(patients.length * fraction))));

  const samples: CorpusSample[] = [
    ...ecgs.map((ecg): CorpusSample => ({
      id: ecg.id,
      modality: 'ecg',
      split: heldOutFolds.has(ecg.strataFold) ? 'heldout' : 'train',
      text: ECG_REPORT_PREFIX + ecg.report,
      ecg,
    })),
    ...xrays.map((xray): CorpusSample => ({
      id: xray.id,
      modality: 'xray',
      split: heldOutPatients.has(xray.patient) ? 'heldout' : 'train',
      text: XRAY_REPORT_PREFIX + xray.note,
      xray,
    })),
  ];

  const counts: CorpusSummary['counts'] = { train: { ecg: 0, xray: 0 }, heldout: { ecg: 0, xray: 0 } };
  for (const sample of samples) counts[sample.split][sample.modality] += 1;
  const summary: CorpusSummary = {
    root,
    ecgReportStyle: style,
    counts,
    xrayPatients: { train: patients.length - heldOutPatients.size, heldout: heldOutPatients.size },
    skipped,
    notes: [
      'No public dataset pairs a chest X-ray with an ECG of the same patient: every sample has one imaging modality, ' +
        'and the loss trains report-X-ray and report-ECG pairs separately, masking the missing one.',
      style === 'statements'
        ? 'ECG reports are English machine-style reports written from the SCP statements of each PTB-XL record; ' +
          'the zero-shot labels come from the same statements, so zero-shot ECG figures measure how well the ECG ' +
          'encoder learned to match its statements, not agreement with an independent reader.'
        : 'ECG reports are the PTB-XL cardiologist reports (mostly German).',
      'X-ray notes are written from labels (NIH finding labels; Hannover: COVID-19, projection, intensive care), ' +
        'not from radiology reports, and many notes are identical.',
    ],
  };
  return { samples, summary };
}
