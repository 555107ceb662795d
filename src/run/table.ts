/** Plain-text table of a main-job summary, with the data size beside every figure. */
import type { MetricResult } from '../tasks/metrics';
import type { RetrievalFigures } from './evaluate';
import type { MainJobSummary } from './main';

function figure(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined || !Number.isFinite(value) ? 'undefined' : value.toFixed(digits);
}

function metric(result: MetricResult): string {
  return result.value === null ? `undefined (${result.reason})` : result.value.toFixed(3);
}

function retrievalLines(name: string, figures: RetrievalFigures): string[] {
  const ks = Object.keys(figures.chance).map(Number);
  const recall = (report: RetrievalFigures['reportToSignal']): string =>
    ks.map((k) => `R@${k} ${figure(report.recallAtK[k])} (chance ${figure(figures.chance[k])})`).join('  ');
  return [
    `  report -> ${name} (${figures.reportToSignal.queries} queries, gallery ${figures.reportToSignal.galleryIds}): ` +
      `${recall(figures.reportToSignal)}  mAP ${figure(figures.reportToSignal.meanAveragePrecision)}`,
    `  ${name} -> report: ${recall(figures.signalToReport)}  mAP ${figure(figures.signalToReport.meanAveragePrecision)}`,
  ];
}

export function formatSummaryTable(summary: MainJobSummary): string {
  const { corpus, samplesUsed: used, training, zeroShotEcg, retrieval, ecgLinearProbe: probe } = summary;
  const lines = [
    'MoRE main job on the shipped sample data (figures below come from small samples, not from the full datasets)',
    `backend: ${summary.backend.name} on ${summary.backend.device}`,
    `data: ${used.train.ecg} ECG + ${used.train.xray} X-ray training samples; held out ` +
      `${used.heldout.ecg} ECGs (PTB-XL folds 9-10) and ${used.heldout.xray} X-rays; ECG reports: ${corpus.ecgReportStyle}`,
    `model: ${summary.parameters.total} values, ${summary.parameters.trainable} trainable`,
    `pre-training: ${training.epochs.length} epochs (${training.stopReason}), train loss ${figure(training.firstEpochLoss)} -> ` +
      `${figure(training.lastEpochLoss)}, ${figure(training.samplesPerSecond, 1)} samples/s, ${figure(training.seconds, 0)} s`,
    `zero-shot PTB-XL superclass AUROC (${zeroShotEcg.records} records): macro ${metric(zeroShotEcg.auroc.macro)}; ` +
      zeroShotEcg.auroc.perLabel.map((entry) => `${entry.label} ${figure(entry.value)} (${entry.positives}+)`).join(', '),
    ...zeroShotEcg.polarityWarnings.map((warning) => `  warning: ${warning}`),
    'retrieval:',
    ...retrievalLines('ECG', retrieval.reportToEcg),
    ...retrievalLines('X-ray', retrieval.reportToXray),
    `linear probe, PTB-XL superclasses (${probe.trainSamples} training, ${probe.testSamples} held-out records, ${probe.epochs} epochs): ` +
      `macro AUROC ${metric(probe.trained.macro)} on the pre-trained ECG encoder vs ${metric(probe.random.macro)} on a random one`,
    `files: ${summary.files.summary}, ${summary.files.checkpoint}`,
    ...corpus.notes.map((note) => `note: ${note}`),
  ];
  return lines.join('\n');
}
