/**
 * Plots as Vega-Lite v5 specifications: plain JSON objects with their data
 * inlined, which JupyterLab renders for the `application/vnd.vegalite.v5+json`
 * MIME type without any plotting library on the kernel side.
 */
import { type MultilabelOptions, rocAuc, rocCurve } from '../tasks/metrics';
import { type PcaResult, type TsneOptions, pca, tsne } from './projection';

export const VEGA_LITE_SCHEMA = 'https://vega.github.io/schema/vega-lite/v5.json';

/** MIME type under which Jupyter front ends render a Vega-Lite v5 specification. */
export const VEGA_LITE_MIME_TYPE = 'application/vnd.vegalite.v5+json';

/** A Vega-Lite v5 specification. */
export interface VegaLiteSpec {
  $schema: typeof VEGA_LITE_SCHEMA;
  [key: string]: unknown;
}

function spec(body: Record<string, unknown>): VegaLiteSpec {
  return { $schema: VEGA_LITE_SCHEMA, ...body };
}

/** One point of a training history. */
export interface TrainingRecord {
  /** Epoch or optimiser step, whichever the history counts. */
  step: number;
  /** Series name, for example `train` or `validation`. */
  split: string;
  loss?: number;
  learningRate?: number;
}

function finiteRecords(records: TrainingRecord[], field: 'loss' | 'learningRate'): { step: number; split: string; value: number }[] {
  return records
    .filter((record) => record[field] !== undefined && Number.isFinite(record[field]))
    .map((record) => ({ step: record.step, split: record.split, value: record[field] as number }));
}

/** Returns a line plot of the loss of each split over steps. */
export function lossCurveSpec(records: TrainingRecord[], options: { title?: string; stepTitle?: string } = {}): VegaLiteSpec {
  const values = finiteRecords(records, 'loss');
  if (values.length === 0) throw new Error('lossCurveSpec: no record has a finite loss');
  return spec({
    title: options.title ?? 'Loss',
    width: 420,
    height: 240,
    data: { values },
    mark: { type: 'line', point: values.length <= 60 },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: options.stepTitle ?? 'epoch' },
      y: { field: 'value', type: 'quantitative', title: 'loss', scale: { zero: false } },
      color: { field: 'split', type: 'nominal', title: 'split' },
      tooltip: [{ field: 'split', type: 'nominal' }, { field: 'step', type: 'quantitative' }, { field: 'value', type: 'quantitative', title: 'loss' }],
    },
  });
}

/** Returns a line plot of the learning rate over steps, on a log scale. */
export function learningRateSpec(records: TrainingRecord[], options: { title?: string; stepTitle?: string } = {}): VegaLiteSpec {
  const values = finiteRecords(records, 'learningRate');
  if (values.length === 0) throw new Error('learningRateSpec: no record has a finite learning rate');
  if (values.some((v) => v.value <= 0)) throw new Error('learningRateSpec: learning rates must be positive for the log scale');
  return spec({
    title: options.title ?? 'Learning rate',
    width: 420,
    height: 160,
    data: { values },
    mark: { type: 'line', interpolate: 'step-after' },
    encoding: {
      x: { field: 'step', type: 'quantitative', title: options.stepTitle ?? 'epoch' },
      y: { field: 'value', type: 'quantitative', title: 'learning rate', scale: { type: 'log' }, axis: { format: '.0e' } },
      tooltip: [{ field: 'step', type: 'quantitative' }, { field: 'value', type: 'quantitative', title: 'learning rate', format: '.3e' }],
    },
  });
}

/** Returns the loss and learning-rate plots stacked, sharing the step axis. */
export function trainingCurvesSpec(records: TrainingRecord[], options: { title?: string; stepTitle?: string } = {}): VegaLiteSpec {
  const { $schema: _lossSchema, ...loss } = lossCurveSpec(records, { stepTitle: options.stepTitle });
  const { $schema: _rateSchema, ...rate } = learningRateSpec(records, { stepTitle: options.stepTitle });
  return spec({ title: options.title ?? 'Training', vconcat: [loss, rate] });
}

/**
 * Returns ROC curves of every label whose curve is defined, one line each,
 * with the AUROC in the legend and the chance diagonal. The points are
 * scikit-learn's `roc_curve` points (see `rocCurve`); labels without positives
 * or negatives are listed in the subtitle instead of drawn.
 */
export function rocCurveSpec(
  yTrue: ArrayLike<number>[], yScore: ArrayLike<number>[], options: MultilabelOptions & { title?: string } = {},
): VegaLiteSpec {
  if (yTrue.length !== yScore.length || yTrue.length === 0) {
    throw new Error(`rocCurveSpec: ${yTrue.length} label rows and ${yScore.length} score rows; expected equal, non-zero counts`);
  }
  const width = yTrue[0].length;
  const labels = options.labels ?? Array.from({ length: width }, (_, j) => `label${j}`);
  const values: { label: string; fpr: number; tpr: number; order: number }[] = [];
  const skipped: string[] = [];
  labels.forEach((label, j) => {
    const truth: number[] = [];
    const scores: number[] = [];
    yTrue.forEach((row, i) => {
      if (options.mask && !options.mask[i][j]) return;
      truth.push(row[j]);
      scores.push(yScore[i][j]);
    });
    const auc = rocAuc(truth, scores);
    if (auc.value === null) {
      skipped.push(`${label} (${auc.reason})`);
      return;
    }
    const curve = rocCurve(truth, scores);
    const name = `${label} (AUROC ${auc.value.toFixed(3)})`;
    curve.fpr.forEach((fpr, k) => values.push({ label: name, fpr, tpr: curve.tpr[k], order: k }));
  });
  if (values.length === 0) throw new Error(`rocCurveSpec: no label has a defined ROC curve: ${skipped.join('; ')}`);
  const title: Record<string, unknown> = { text: options.title ?? 'ROC curves' };
  if (skipped.length > 0) title.subtitle = `not drawn: ${skipped.join('; ')}`;
  return spec({
    title,
    width: 320,
    height: 320,
    layer: [
      {
        data: { values: [{ fpr: 0, tpr: 0 }, { fpr: 1, tpr: 1 }] },
        mark: { type: 'line', strokeDash: [4, 4], color: 'gray' },
        encoding: { x: { field: 'fpr', type: 'quantitative' }, y: { field: 'tpr', type: 'quantitative' } },
      },
      {
        data: { values },
        mark: { type: 'line', interpolate: 'linear' },
        encoding: {
          x: { field: 'fpr', type: 'quantitative', title: 'false positive rate', scale: { domain: [0, 1] } },
          y: { field: 'tpr', type: 'quantitative', title: 'true positive rate', scale: { domain: [0, 1] } },
          color: { field: 'label', type: 'nominal', title: 'label' },
          order: { field: 'order', type: 'quantitative' },
        },
      },
    ],
  });
}

export type EmbeddingMapMethod = 'tsne' | 'pca';

export interface EmbeddingMapOptions {
  /** `tsne` (exact t-SNE, default) or `pca` (the first two principal components). */
  method?: EmbeddingMapMethod;
  tsne?: TsneOptions;
  /** Hover text per point, for example a study id. */
  ids?: string[];
  title?: string;
}

/**
 * Returns a scatter plot of embeddings mapped to 2-D, coloured by label. The
 * method is named in the title and axis titles, so a PCA map is never
 * mistaken for a t-SNE one.
 */
export function embeddingMapSpec(embeddings: ArrayLike<number>[], labels: string[], options: EmbeddingMapOptions = {}): VegaLiteSpec {
  if (labels.length !== embeddings.length) {
    throw new Error(`embeddingMapSpec: ${labels.length} labels for ${embeddings.length} embeddings; expected one per point`);
  }
  if (options.ids !== undefined && options.ids.length !== embeddings.length) {
    throw new Error(`embeddingMapSpec: ${options.ids.length} ids for ${embeddings.length} embeddings; expected one per point`);
  }
  const method = options.method ?? 'tsne';
  let coordinates: number[][];
  let axisNames: [string, string];
  if (method === 'tsne') {
    coordinates = tsne(embeddings, options.tsne).coordinates;
    axisNames = ['t-SNE 1', 't-SNE 2'];
  } else if (method === 'pca') {
    const fit: PcaResult = pca(embeddings, 2);
    coordinates = fit.coordinates;
    axisNames = ['PC 1', 'PC 2'];
  } else {
    throw new Error(`embeddingMapSpec: method "${method as string}"; expected tsne or pca`);
  }
  const values = coordinates.map((c, i) => ({ x: c[0], y: c[1], label: labels[i], id: options.ids?.[i] ?? String(i) }));
  return spec({
    title: options.title ?? `Embedding map (${method === 'tsne' ? 't-SNE' : 'PCA'})`,
    width: 360,
    height: 360,
    data: { values },
    mark: { type: 'point', filled: true, size: 40, opacity: 0.8 },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: axisNames[0], axis: { labels: false, ticks: false } },
      y: { field: 'y', type: 'quantitative', title: axisNames[1], axis: { labels: false, ticks: false } },
      color: { field: 'label', type: 'nominal', title: 'label' },
      tooltip: [{ field: 'id', type: 'nominal' }, { field: 'label', type: 'nominal' }],
    },
  });
}

/** The standard 12-lead order of a clinical ECG printout. */
export const STANDARD_LEADS = ['I', 'II', 'III', 'aVR', 'aVL', 'aVF', 'V1', 'V2', 'V3', 'V4', 'V5', 'V6'] as const;

export interface EcgPlotOptions {
  title?: string;
  /** Panels per row (default 3, so 12 leads make the usual 4 x 3 layout). */
  columns?: number;
  /** Relevance per sample shared by all leads, drawn as a shaded band behind each trace. */
  relevance?: number[];
  /** Unit of the signal values, for the axis title (default mV). */
  unit?: string;
}

/** Returns a plot of a multi-lead ECG, one panel per lead, with time in seconds. */
export function ecgPlotSpec(signals: number[][], leads: string[], sampleRateHz: number, options: EcgPlotOptions = {}): VegaLiteSpec {
  if (signals.length !== leads.length) {
    throw new Error(`ecgPlotSpec: ${signals.length} signal rows for ${leads.length} leads; expected one row per lead`);
  }
  if (!(sampleRateHz > 0)) throw new Error(`ecgPlotSpec: sample rate ${sampleRateHz} Hz; expected a positive number`);
  const samples = signals[0]?.length ?? 0;
  signals.forEach((row, i) => {
    if (row.length !== samples) throw new Error(`ecgPlotSpec: lead ${leads[i]} has ${row.length} samples; expected ${samples}`);
  });
  if (options.relevance !== undefined && options.relevance.length !== samples) {
    throw new Error(`ecgPlotSpec: ${options.relevance.length} relevance values for ${samples} samples; expected one per sample`);
  }

  const values: Record<string, number | string>[] = [];
  signals.forEach((row, leadIndex) => {
    row.forEach((value, s) => {
      const point: Record<string, number | string> = { lead: leads[leadIndex], time: s / sampleRateHz, value };
      if (options.relevance !== undefined) point.relevance = options.relevance[s];
      values.push(point);
    });
  });

  const x = { field: 'time', type: 'quantitative', title: 'time (s)' };
  const trace = {
    mark: { type: 'line', strokeWidth: 1, color: 'black' },
    encoding: { x, y: { field: 'value', type: 'quantitative', title: options.unit ?? 'mV' } },
  };
  const layers: Record<string, unknown>[] = [trace];
  if (options.relevance !== undefined) {
    layers.unshift({
      mark: { type: 'rule', strokeWidth: 2 },
      encoding: {
        x,
        color: { field: 'relevance', type: 'quantitative', title: 'relevance', scale: { scheme: 'reds' } },
        opacity: { value: 0.35 },
      },
    });
  }

  return spec({
    title: options.title ?? '12-lead ECG',
    data: { values },
    facet: { field: 'lead', type: 'nominal', title: null, sort: leads },
    columns: options.columns ?? 3,
    spec: { width: 240, height: 90, layer: layers },
    resolve: { scale: { y: 'independent' } },
  });
}
