/**
 * Classification metrics with scikit-learn's definitions (roc_curve,
 * roc_auc_score, average_precision_score, f1_score, accuracy_score), so that
 * figures reported here equal scikit-learn's on the same inputs.
 *
 * Where scikit-learn raises or silently returns 0 (a label without positives
 * or without negatives), these functions return `{ value: null, reason }`
 * instead, and averages leave such labels out and list them.
 */

/** A metric value, or null with the reason it is undefined for these inputs. */
export type MetricResult = { value: number; reason?: undefined } | { value: null; reason: string };

/** Points of a ROC curve, as scikit-learn's `roc_curve` with `drop_intermediate=True` returns them. */
export interface RocCurve {
  fpr: number[];
  tpr: number[];
  /** Decreasing score thresholds; the first one is +Infinity, the point (0, 0). */
  thresholds: number[];
}

/** One label's figure in a multi-label report, with the counts it was computed from. */
export interface LabelMetric {
  label: string;
  value: number | null;
  reason?: string;
  positives: number;
  negatives: number;
}

/** Per-label figures and their macro and micro averages. */
export interface MultilabelReport {
  perLabel: LabelMetric[];
  /** Unweighted mean over the labels whose value is defined. */
  macro: MetricResult;
  /** The metric over all kept entries pooled into one binary problem. */
  micro: MetricResult;
  /** Labels left out of the macro average because their value is undefined. */
  undefinedLabels: string[];
}

export interface MultilabelOptions {
  /** Label names, one per column; defaults to `label0`, `label1`, ... */
  labels?: string[];
  /** `mask[i][j] === false` leaves entry (i, j) out of every figure (an uncertain or missing label). */
  mask?: ArrayLike<boolean>[];
}

function defined(value: number): MetricResult {
  return { value };
}

function undefinedMetric(reason: string): MetricResult {
  return { value: null, reason };
}

function checkBinary(yTrue: ArrayLike<number>, yScore: ArrayLike<number>, what: string): void {
  if (yTrue.length !== yScore.length) {
    throw new Error(`${what}: yTrue has ${yTrue.length} entries but yScore has ${yScore.length}; expected equal lengths`);
  }
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i] !== 0 && yTrue[i] !== 1) {
      throw new Error(`${what}: yTrue[${i}] is ${yTrue[i]}; expected 0 or 1 (mask out uncertain or missing labels)`);
    }
    if (!Number.isFinite(yScore[i])) {
      throw new Error(`${what}: yScore[${i}] is ${yScore[i]}; expected a finite number`);
    }
  }
}

interface ThresholdCounts {
  /** True positives at each distinct threshold, taken from the highest score down. */
  tps: number[];
  /** False positives at each distinct threshold. */
  fps: number[];
  /** The distinct scores in decreasing order. */
  thresholds: number[];
}

/**
 * Counts true and false positives at every distinct score, highest first.
 * Samples with equal scores enter together, which is how scikit-learn's
 * `_binary_clf_curve` treats ties.
 */
function countAtThresholds(yTrue: ArrayLike<number>, yScore: ArrayLike<number>): ThresholdCounts {
  const order = Array.from({ length: yScore.length }, (_, i) => i);
  order.sort((a, b) => yScore[b] - yScore[a]);
  const tps: number[] = [];
  const fps: number[] = [];
  const thresholds: number[] = [];
  let tp = 0;
  let fp = 0;
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (yTrue[i] === 1) tp++;
    else fp++;
    const last = k === order.length - 1;
    if (last || yScore[order[k + 1]] !== yScore[i]) {
      tps.push(tp);
      fps.push(fp);
      thresholds.push(yScore[i]);
    }
  }
  return { tps, fps, thresholds };
}

function countClasses(yTrue: ArrayLike<number>): { positives: number; negatives: number } {
  let positives = 0;
  for (let i = 0; i < yTrue.length; i++) positives += yTrue[i];
  return { positives, negatives: yTrue.length - positives };
}

/**
 * Returns the ROC curve as scikit-learn's `roc_curve` (drop_intermediate=True)
 * does: collinear intermediate points are dropped and a first point (0, 0) at
 * threshold +Infinity is added. Throws when the curve is undefined (no
 * positives or no negatives).
 */
export function rocCurve(yTrue: ArrayLike<number>, yScore: ArrayLike<number>): RocCurve {
  checkBinary(yTrue, yScore, 'rocCurve');
  const { positives, negatives } = countClasses(yTrue);
  if (positives === 0 || negatives === 0) {
    throw new Error(`rocCurve: the ROC curve is undefined with ${positives} positives and ${negatives} negatives; ` +
      'expected both classes in yTrue');
  }
  const { tps, fps, thresholds } = countAtThresholds(yTrue, yScore);

  // Keep the first and last points and every point where the curve bends (a non-zero second difference).
  const keep: number[] = [];
  for (let k = 0; k < tps.length; k++) {
    const endpoint = k === 0 || k === tps.length - 1;
    const bends = !endpoint &&
      (fps[k + 1] - 2 * fps[k] + fps[k - 1] !== 0 || tps[k + 1] - 2 * tps[k] + tps[k - 1] !== 0);
    if (endpoint || bends) keep.push(k);
  }

  const lastFp = fps[fps.length - 1];
  const lastTp = tps[tps.length - 1];
  const curve: RocCurve = { fpr: [0], tpr: [0], thresholds: [Number.POSITIVE_INFINITY] };
  for (const k of keep) {
    curve.fpr.push(fps[k] / lastFp);
    curve.tpr.push(tps[k] / lastTp);
    curve.thresholds.push(thresholds[k]);
  }
  return curve;
}

/**
 * Returns the area under the ROC curve (scikit-learn's `roc_auc_score` for a
 * binary problem). Tied scores count half, as the trapezoid over a curve with
 * one point per distinct score gives. Undefined without positives or negatives.
 */
export function rocAuc(yTrue: ArrayLike<number>, yScore: ArrayLike<number>): MetricResult {
  checkBinary(yTrue, yScore, 'rocAuc');
  const { positives, negatives } = countClasses(yTrue);
  if (positives === 0) return undefinedMetric(`AUROC is undefined: no positive samples among ${yTrue.length}`);
  if (negatives === 0) return undefinedMetric(`AUROC is undefined: no negative samples among ${yTrue.length}`);
  const { fpr, tpr } = rocCurve(yTrue, yScore);
  let area = 0;
  for (let k = 1; k < fpr.length; k++) area += ((fpr[k] - fpr[k - 1]) * (tpr[k] + tpr[k - 1])) / 2;
  return defined(area);
}

/**
 * Returns average precision as scikit-learn's `average_precision_score`
 * computes it: the sum over distinct thresholds of the recall gained times
 * the precision at that threshold, without interpolation. Undefined without
 * positives.
 */
export function averagePrecision(yTrue: ArrayLike<number>, yScore: ArrayLike<number>): MetricResult {
  checkBinary(yTrue, yScore, 'averagePrecision');
  const { positives } = countClasses(yTrue);
  if (positives === 0) {
    return undefinedMetric(`average precision is undefined: no positive samples among ${yTrue.length}`);
  }
  const { tps, fps } = countAtThresholds(yTrue, yScore);
  // scikit-learn sums from the lowest threshold up; the same order keeps the rounding identical.
  let sum = 0;
  for (let k = tps.length - 1; k >= 0; k--) {
    const previousRecall = k === 0 ? 0 : tps[k - 1] / positives;
    const recall = tps[k] / positives;
    const precision = tps[k] / (tps[k] + fps[k]);
    sum -= (previousRecall - recall) * precision;
  }
  return defined(sum);
}

/**
 * Returns the binary F1 score of hard predictions, 2TP / (2TP + FP + FN).
 * Undefined when there are no positives and no positive predictions
 * (scikit-learn's `zero_division=np.nan`).
 */
export function f1Score(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): MetricResult {
  checkBinary(yTrue, yPred, 'f1Score');
  const { tp, fp, fn } = confusionCounts(yTrue, yPred);
  return f1FromCounts(tp, fp, fn, yTrue.length);
}

function confusionCounts(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): { tp: number; fp: number; fn: number } {
  let tp = 0;
  let fp = 0;
  let fn = 0;
  for (let i = 0; i < yTrue.length; i++) {
    if (yPred[i] !== 0 && yPred[i] !== 1) throw new Error(`f1Score: yPred[${i}] is ${yPred[i]}; expected 0 or 1`);
    if (yPred[i] === 1 && yTrue[i] === 1) tp++;
    else if (yPred[i] === 1) fp++;
    else if (yTrue[i] === 1) fn++;
  }
  return { tp, fp, fn };
}

function f1FromCounts(tp: number, fp: number, fn: number, total: number): MetricResult {
  const denominator = 2 * tp + fp + fn;
  if (denominator === 0) {
    return undefinedMetric(`F1 is undefined: no positive samples and no positive predictions among ${total}`);
  }
  return defined((2 * tp) / denominator);
}

/** Returns the fraction of predictions equal to the true class (scikit-learn's `accuracy_score`). */
export function accuracy(yTrue: ArrayLike<number>, yPred: ArrayLike<number>): number {
  if (yTrue.length !== yPred.length) {
    throw new Error(`accuracy: yTrue has ${yTrue.length} entries but yPred has ${yPred.length}; expected equal lengths`);
  }
  if (yTrue.length === 0) throw new Error('accuracy: no samples; expected at least one');
  let correct = 0;
  for (let i = 0; i < yTrue.length; i++) if (yTrue[i] === yPred[i]) correct++;
  return correct / yTrue.length;
}

/** Returns the index of the largest entry in each row (the first one on ties, like numpy's argmax). */
export function argmaxRows(rows: ArrayLike<number>[]): number[] {
  return rows.map((row) => {
    let best = 0;
    for (let j = 1; j < row.length; j++) if (row[j] > row[best]) best = j;
    return best;
  });
}

/**
 * Returns the multi-class AUROC, one class against the rest, averaged without
 * weights over the classes (scikit-learn's `roc_auc_score` with
 * `multi_class='ovr', average='macro'`). A class absent from `yTrue` makes the
 * result undefined, as scikit-learn rejects it.
 */
export function multiclassAurocOvr(yTrue: ArrayLike<number>, probabilities: ArrayLike<number>[]): MetricResult {
  if (yTrue.length !== probabilities.length) {
    throw new Error(`multiclassAurocOvr: yTrue has ${yTrue.length} entries but probabilities has ` +
      `${probabilities.length} rows; expected equal lengths`);
  }
  if (probabilities.length === 0) throw new Error('multiclassAurocOvr: no samples; expected at least one');
  const classes = probabilities[0].length;
  let sum = 0;
  for (let c = 0; c < classes; c++) {
    const binary = Array.from(yTrue, (y) => (y === c ? 1 : 0));
    const scores = probabilities.map((row) => row[c]);
    const result = rocAuc(binary, scores);
    if (result.value === null) return undefinedMetric(`class ${c}: ${result.reason}`);
    sum += result.value;
  }
  return defined(sum / classes);
}

interface Column {
  yTrue: number[];
  yScore: number[];
}

/** Splits an N x K matrix into K columns, leaving out masked entries, and validates the shapes. */
function keptColumns(
  yTrue: ArrayLike<number>[], yScore: ArrayLike<number>[], options: MultilabelOptions, what: string,
): { columns: Column[]; labels: string[] } {
  if (yTrue.length !== yScore.length) {
    throw new Error(`${what}: yTrue has ${yTrue.length} rows but yScore has ${yScore.length}; expected equal counts`);
  }
  if (yTrue.length === 0) throw new Error(`${what}: no samples; expected at least one row`);
  const width = yTrue[0].length;
  const labels = options.labels ?? Array.from({ length: width }, (_, j) => `label${j}`);
  if (labels.length !== width) {
    throw new Error(`${what}: ${labels.length} label names for ${width} columns; expected one name per column`);
  }
  const mask = options.mask;
  if (mask !== undefined && mask.length !== yTrue.length) {
    throw new Error(`${what}: mask has ${mask.length} rows but yTrue has ${yTrue.length}; expected equal counts`);
  }
  const columns: Column[] = labels.map(() => ({ yTrue: [], yScore: [] }));
  for (let i = 0; i < yTrue.length; i++) {
    if (yTrue[i].length !== width || yScore[i].length !== width || (mask && mask[i].length !== width)) {
      throw new Error(`${what}: row ${i} has ${yTrue[i].length} labels, ${yScore[i].length} scores` +
        `${mask ? ` and ${mask[i].length} mask entries` : ''}; expected ${width} of each`);
    }
    for (let j = 0; j < width; j++) {
      if (mask && !mask[i][j]) continue;
      columns[j].yTrue.push(yTrue[i][j]);
      columns[j].yScore.push(yScore[i][j]);
    }
  }
  return { columns, labels };
}

function summarise(
  labels: string[], columns: Column[], perColumn: (column: Column) => MetricResult, pooled: MetricResult,
): MultilabelReport {
  const perLabel: LabelMetric[] = columns.map((column, j) => {
    const { positives, negatives } = countClasses(column.yTrue);
    const result = perColumn(column);
    const entry: LabelMetric = { label: labels[j], value: result.value, positives, negatives };
    if (result.value === null) entry.reason = result.reason;
    return entry;
  });
  const definedValues = perLabel.filter((entry) => entry.value !== null).map((entry) => entry.value as number);
  const undefinedLabels = perLabel.filter((entry) => entry.value === null).map((entry) => entry.label);
  const macro = definedValues.length === 0
    ? undefinedMetric(`macro average is undefined: no label has a defined value (${undefinedLabels.join(', ')})`)
    : defined(definedValues.reduce((a, b) => a + b, 0) / definedValues.length);
  return { perLabel, macro, micro: pooled, undefinedLabels };
}

function pool(columns: Column[]): Column {
  return { yTrue: columns.flatMap((c) => c.yTrue), yScore: columns.flatMap((c) => c.yScore) };
}

/** Returns the AUROC of each label with its macro and micro averages; masked entries are left out. */
export function multilabelAuroc(
  yTrue: ArrayLike<number>[], yScore: ArrayLike<number>[], options: MultilabelOptions = {},
): MultilabelReport {
  const { columns, labels } = keptColumns(yTrue, yScore, options, 'multilabelAuroc');
  const all = pool(columns);
  return summarise(labels, columns, (c) => rocAuc(c.yTrue, c.yScore), rocAuc(all.yTrue, all.yScore));
}

/** Returns the average precision of each label with its macro and micro averages; masked entries are left out. */
export function multilabelAveragePrecision(
  yTrue: ArrayLike<number>[], yScore: ArrayLike<number>[], options: MultilabelOptions = {},
): MultilabelReport {
  const { columns, labels } = keptColumns(yTrue, yScore, options, 'multilabelAveragePrecision');
  const all = pool(columns);
  return summarise(labels, columns, (c) => averagePrecision(c.yTrue, c.yScore), averagePrecision(all.yTrue, all.yScore));
}

/**
 * Returns the F1 score of each label with its macro and micro averages.
 * A score at or above `threshold` predicts positive. Masked entries are left out.
 */
export function multilabelF1(
  yTrue: ArrayLike<number>[], yScore: ArrayLike<number>[], threshold = 0.5, options: MultilabelOptions = {},
): MultilabelReport {
  const { columns, labels } = keptColumns(yTrue, yScore, options, 'multilabelF1');
  const predict = (scores: number[]): number[] => scores.map((s) => (s >= threshold ? 1 : 0));
  const all = pool(columns);
  return summarise(labels, columns, (c) => f1Score(c.yTrue, predict(c.yScore)), f1Score(all.yTrue, predict(all.yScore)));
}
