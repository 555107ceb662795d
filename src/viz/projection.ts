/**
 * Two-dimensional maps of embeddings for plotting: PCA, and exact t-SNE
 * (van der Maaten and Hinton, "Visualizing Data using t-SNE", JMLR 2008).
 * The t-SNE settings follow scikit-learn's `TSNE` (version 1.9). Perplexity
 * is calibrated by binary search on squared Euclidean distances. Early
 * exaggeration 12 runs for 250 iterations at momentum 0.5, then momentum is
 * 0.8. Steps use per-parameter gains and the learning rate max(N / 12 / 4, 50),
 * starting from the PCA map scaled to a standard deviation of 1e-4.
 *
 * Exact t-SNE costs O(N^2) memory and time per iteration, so it is limited to
 * {@link TSNE_MAX_POINTS} points; larger sets should use PCA or a sample.
 */
import { Rng } from '../util/rng';

/** Largest number of points exact t-SNE accepts (an N x N matrix of float64 per iteration). */
export const TSNE_MAX_POINTS = 5000;

const MACHINE_EPSILON = 2.220446049250313e-16;

function checkPoints(points: ArrayLike<number>[], what: string): number {
  if (points.length === 0) throw new Error(`${what}: no points; expected at least one row`);
  const dim = points[0].length;
  points.forEach((row, i) => {
    if (row.length !== dim) throw new Error(`${what}: row ${i} has ${row.length} values; expected ${dim} like row 0`);
    for (let j = 0; j < dim; j++) {
      if (!Number.isFinite(row[j])) throw new Error(`${what}: row ${i} value ${j} is ${row[j]}; expected a finite number`);
    }
  });
  return dim;
}

/**
 * Eigen-decomposes a symmetric matrix (row-major, n x n) with cyclic Jacobi
 * rotations. Returns eigenvalues in descending order and the matching
 * eigenvectors as rows.
 */
export function symmetricEigen(matrix: Float64Array, n: number): { values: number[]; vectors: number[][] } {
  const a = Float64Array.from(matrix);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p * n + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) < 1e-300) continue;
        // The rotation angle that zeroes a[p][q] (Golub and Van Loan, algorithm 8.4.2).
        const theta = (a[q * n + q] - a[p * n + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p];
          const akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k];
          const aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p];
          const vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: n }, (_, i) => i).sort((x, y) => a[y * n + y] - a[x * n + x]);
  return {
    values: order.map((i) => a[i * n + i]),
    vectors: order.map((i) => Array.from({ length: n }, (_, k) => v[k * n + i])),
  };
}

/** A PCA fit: the mean, the principal axes (rows) and the variance each explains. */
export interface PcaResult {
  /** [N][components] coordinates of the points on the axes. */
  coordinates: number[][];
  components: number[][];
  explainedVariance: number[];
  mean: number[];
}

/**
 * Projects points on their first principal components. Each axis's sign makes
 * its largest-magnitude entry positive, as scikit-learn's PCA does (1.5 and
 * later), so coordinates agree with scikit-learn's.
 */
export function pca(points: ArrayLike<number>[], components = 2): PcaResult {
  const dim = checkPoints(points, 'pca');
  const n = points.length;
  if (!Number.isInteger(components) || components < 1 || components > dim) {
    throw new Error(`pca: ${components} components requested; expected an integer from 1 to ${dim}`);
  }
  const mean = new Array<number>(dim).fill(0);
  for (const row of points) for (let j = 0; j < dim; j++) mean[j] += row[j] / n;
  const centred = points.map((row) => Array.from({ length: dim }, (_, j) => row[j] - mean[j]));
  const covariance = new Float64Array(dim * dim);
  for (const row of centred) {
    for (let a = 0; a < dim; a++) for (let b = a; b < dim; b++) covariance[a * dim + b] += row[a] * row[b];
  }
  const divisor = Math.max(n - 1, 1);
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      covariance[a * dim + b] /= divisor;
      covariance[b * dim + a] = covariance[a * dim + b];
    }
  }
  const { values, vectors } = symmetricEigen(covariance, dim);
  const axes = vectors.slice(0, components).map((axis) => {
    let largest = 0;
    for (let j = 1; j < dim; j++) if (Math.abs(axis[j]) > Math.abs(axis[largest])) largest = j;
    return axis[largest] < 0 ? axis.map((x) => -x) : axis;
  });
  const coordinates = centred.map((row) => axes.map((axis) => row.reduce((sum, x, j) => sum + x * axis[j], 0)));
  return { coordinates, components: axes, explainedVariance: values.slice(0, components), mean };
}

/** Squared Euclidean distances rounded to float32, as scikit-learn hands them to its perplexity search. */
function squaredDistances(points: ArrayLike<number>[]): Float64Array {
  const n = points.length;
  const dim = points[0].length;
  const distances = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      let sum = 0;
      for (let k = 0; k < dim; k++) sum += (points[i][k] - points[j][k]) ** 2;
      distances[i * n + j] = distances[j * n + i] = Math.fround(sum);
    }
  }
  return distances;
}

/**
 * Returns the symmetric joint probabilities P of t-SNE (row-major N x N): each
 * row's Gaussian precision is found by binary search so that the row's
 * entropy equals ln(perplexity), then P = (P_cond + P_cond^T) / sum.
 */
export function jointProbabilities(points: ArrayLike<number>[], perplexity = 30): Float64Array {
  checkPoints(points, 'jointProbabilities');
  const n = points.length;
  if (!(perplexity > 0) || perplexity >= n) {
    throw new Error(`jointProbabilities: perplexity ${perplexity}; expected a value above 0 and below the ${n} points`);
  }

  const distances = squaredDistances(points);
  const conditional = new Float64Array(n * n);
  const desiredEntropy = Math.log(perplexity);
  const row = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let beta = 1;
    let betaMin = Number.NEGATIVE_INFINITY;
    let betaMax = Number.POSITIVE_INFINITY;
    for (let step = 0; step < 100; step++) {
      let sum = 0;
      for (let j = 0; j < n; j++) {
        row[j] = j === i ? 0 : Math.exp(-distances[i * n + j] * beta);
        sum += row[j];
      }
      if (sum === 0) sum = 1e-8;
      let weighted = 0;
      for (let j = 0; j < n; j++) {
        row[j] /= sum;
        weighted += distances[i * n + j] * row[j];
      }
      const entropyDifference = Math.log(sum) + beta * weighted - desiredEntropy;
      if (Math.abs(entropyDifference) <= 1e-5) break;
      if (entropyDifference > 0) {
        betaMin = beta;
        beta = betaMax === Number.POSITIVE_INFINITY ? beta * 2 : (beta + betaMax) / 2;
      } else {
        betaMax = beta;
        beta = betaMin === Number.NEGATIVE_INFINITY ? beta / 2 : (beta + betaMin) / 2;
      }
    }
    conditional.set(row, i * n);
  }

  const joint = new Float64Array(n * n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      joint[i * n + j] = conditional[i * n + j] + conditional[j * n + i];
      total += joint[i * n + j];
    }
  }
  total = Math.max(total, MACHINE_EPSILON);
  for (let k = 0; k < n * n; k++) joint[k] = Math.max(joint[k] / total, MACHINE_EPSILON);
  for (let i = 0; i < n; i++) joint[i * n + i] = 0;
  return joint;
}

export interface TsneOptions {
  perplexity?: number;
  /** Total gradient steps, early exaggeration included (default 1000). */
  iterations?: number;
  /** `pca` (default, no randomness) or `random` (normal with std 1e-4 drawn from `seed`). */
  init?: 'pca' | 'random';
  seed?: number;
}

export interface TsneResult {
  coordinates: number[][];
  /** Kullback-Leibler divergence KL(P || Q) of the final map. */
  klDivergence: number;
}

/** Returns KL(P || Q) and its gradient for a 2-D map, exactly over all pairs. */
function klAndGradient(joint: Float64Array, y: Float64Array, n: number, exaggeration: number, gradient: Float64Array): number {
  const numerator = new Float64Array(n * n);
  let sumQ = 0;
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = y[2 * i] - y[2 * j];
      const dy = y[2 * i + 1] - y[2 * j + 1];
      const value = 1 / (1 + dx * dx + dy * dy);
      numerator[i * n + j] = numerator[j * n + i] = value;
      sumQ += 2 * value;
    }
  }
  gradient.fill(0);
  let kl = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      if (i === j) continue;
      const p = joint[i * n + j] * exaggeration;
      const q = Math.max(numerator[i * n + j] / sumQ, MACHINE_EPSILON);
      kl += p * Math.log(Math.max(p, MACHINE_EPSILON) / q);
      const factor = 4 * (p - q) * numerator[i * n + j];
      gradient[2 * i] += factor * (y[2 * i] - y[2 * j]);
      gradient[2 * i + 1] += factor * (y[2 * i + 1] - y[2 * j + 1]);
    }
  }
  return kl;
}

/** Maps points to 2-D with exact t-SNE. The same input and options give the same map on every run. */
export function tsne(points: ArrayLike<number>[], options: TsneOptions = {}): TsneResult {
  checkPoints(points, 'tsne');
  const n = points.length;
  if (n > TSNE_MAX_POINTS) {
    throw new Error(`tsne: ${n} points exceed the exact method's limit of ${TSNE_MAX_POINTS}; use pca() or a sample`);
  }
  const perplexity = options.perplexity ?? Math.min(30, (n - 1) / 3);
  const iterations = options.iterations ?? 1000;
  const joint = jointProbabilities(points, perplexity);

  const y = new Float64Array(2 * n);
  if ((options.init ?? 'pca') === 'pca') {
    const { coordinates } = pca(points, Math.min(2, points[0].length));
    const first = coordinates.map((c) => c[0]);
    const mean = first.reduce((a, b) => a + b, 0) / n;
    const std = Math.sqrt(first.reduce((a, b) => a + (b - mean) ** 2, 0) / n) || 1;
    coordinates.forEach((c, i) => {
      y[2 * i] = (c[0] / std) * 1e-4;
      y[2 * i + 1] = ((c[1] ?? 0) / std) * 1e-4;
    });
  } else {
    const rng = new Rng(options.seed ?? 0);
    for (let k = 0; k < 2 * n; k++) y[k] = rng.normal() * 1e-4;
  }

  const earlyExaggeration = 12;
  const exaggerationSteps = Math.min(250, iterations);
  const learningRate = Math.max(n / earlyExaggeration / 4, 50);
  const update = new Float64Array(2 * n);
  const gains = new Float64Array(2 * n).fill(1);
  const gradient = new Float64Array(2 * n);
  let kl = 0;
  for (let step = 0; step < iterations; step++) {
    const early = step < exaggerationSteps;
    const momentum = early ? 0.5 : 0.8;
    kl = klAndGradient(joint, y, n, early ? earlyExaggeration : 1, gradient);
    for (let k = 0; k < 2 * n; k++) {
      const sameDirection = update[k] * gradient[k] < 0;
      gains[k] = Math.max(sameDirection ? gains[k] + 0.2 : gains[k] * 0.8, 0.01);
      update[k] = momentum * update[k] - learningRate * gains[k] * gradient[k];
      y[k] += update[k];
    }
  }
  if (iterations <= exaggerationSteps) kl = klAndGradient(joint, y, n, 1, gradient);
  const coordinates = Array.from({ length: n }, (_, i) => [y[2 * i], y[2 * i + 1]]);
  return { coordinates, klDivergence: kl };
}
