/**
 * A tiny three-tower contrastive model (X-ray, ECG and report towers, each
 * Linear -> ReLU -> Linear into a shared space) with the MoRE loss
 * InfoNCE(report, X-ray) + InfoNCE(report, ECG), each symmetric. It mirrors
 * the PyTorch model of reference/train_parity.py weight for weight, so the
 * training loop can be checked against PyTorch in milliseconds.
 */
import * as fs from 'fs';
import * as path from 'path';

import { tf } from '../../src/backend';
import { BatchContext, BatchSource, TrainableModel } from '../../src/tasks/train';
import { Rng } from '../../src/util/rng';

export const TOWERS = ['xray', 'ecg', 'text'] as const;
export type Tower = (typeof TOWERS)[number];
export type TowerBatch = Record<Tower, tf.Tensor2D>;

export interface ParityFixture {
  settings: {
    batchSize: number; accumulationSteps: number; epochs: number; lr: number; weightDecay: number;
    t0: number; etaMin: number; temperature: number; hidden: number; dim: number; inputWidths: Record<Tower, number>;
  };
  initial: Record<string, { shape: number[]; values: number[] }>;
  train: Record<Tower, number[][]>;
  validation: Record<Tower, number[][]>;
  losses: number[];
  stepWeights: Record<string, number[]>[];
  epochs: { trainLoss: number; validationLoss: number; lr: number }[];
}

export function readParityFixture(): ParityFixture {
  const file = path.join(__dirname, '../fixtures/tasks/train/parity.json');
  return JSON.parse(fs.readFileSync(file, 'utf8')) as ParityFixture;
}

function symmetricInfoNce(a: tf.Tensor2D, b: tf.Tensor2D, temperature: number): tf.Scalar {
  const n = a.shape[0];
  const normA = tf.mul(a, tf.rsqrt(tf.sum(tf.square(a), 1, true)));
  const normB = tf.mul(b, tf.rsqrt(tf.sum(tf.square(b), 1, true)));
  const logits = tf.matMul(normA, normB, false, true).div(temperature); // [n, n]
  // Cross-entropy with the diagonal as targets, in both directions: -mean(log softmax at the diagonal).
  const diagonal = tf.eye(n);
  const forward = tf.sum(tf.mul(tf.logSoftmax(logits), diagonal));
  const backward = tf.sum(tf.mul(tf.logSoftmax(logits.transpose()), diagonal));
  return tf.add(forward, backward).div(-2 * n) as tf.Scalar;
}

export class TinyTowers implements TrainableModel<TowerBatch> {
  private readonly weights = new Map<string, tf.Variable>();

  constructor(
    initial: Record<string, { shape: number[]; values: number[] }>,
    private readonly temperatureValue: number,
  ) {
    for (const [name, { shape, values }] of Object.entries(initial)) {
      this.weights.set(name, tf.tidy(() => tf.variable(tf.tensor(values, shape), true, undefined)));
    }
  }

  /** Builds towers with seeded random weights in the fixture's layout. */
  static random(fixture: ParityFixture, seed: number): TinyTowers {
    const rng = new Rng(seed);
    const initial: Record<string, { shape: number[]; values: number[] }> = {};
    for (const [name, { shape }] of Object.entries(fixture.initial)) {
      const count = shape.reduce((a, b) => a * b, 1);
      initial[name] = { shape, values: Array.from({ length: count }, () => rng.normal() * 0.3) };
    }
    return new TinyTowers(initial, fixture.settings.temperature);
  }

  namedWeights(): Map<string, tf.Variable> {
    return new Map(this.weights);
  }

  trainableVariables(): tf.Variable[] {
    return [...this.weights.values()];
  }

  temperature(): number {
    return this.temperatureValue;
  }

  private tower(name: Tower, x: tf.Tensor2D): tf.Tensor2D {
    const w = (key: string): tf.Variable => this.weights.get(`${name}.${key}`) as tf.Variable;
    // PyTorch Linear layout: weight [out, in], y = x W^T + b.
    const hidden = tf.relu(tf.matMul(x, w('fc1.weight'), false, true).add(w('fc1.bias'))) as tf.Tensor2D;
    return tf.matMul(hidden, w('fc2.weight'), false, true).add(w('fc2.bias'));
  }

  /** Sets nothing: the loss has no randomness, so the trainer may run it as a compiled graph. */
  prepareBatch(): void {}

  batchLoss(batch: TowerBatch, _context: BatchContext): tf.Scalar {
    return tf.tidy(() => {
      const xray = this.tower('xray', batch.xray);
      const ecg = this.tower('ecg', batch.ecg);
      const text = this.tower('text', batch.text);
      return tf.add(symmetricInfoNce(text, xray, this.temperatureValue), symmetricInfoNce(text, ecg, this.temperatureValue)) as tf.Scalar;
    });
  }

  weightValues(): Record<string, number[]> {
    const out: Record<string, number[]> = {};
    for (const [name, variable] of this.weights) out[name] = Array.from(variable.dataSync());
    return out;
  }

  dispose(): void {
    tf.dispose([...this.weights.values()]);
    this.weights.clear();
  }
}

/** Serves rows of fixed per-tower matrices as batches. */
export class RowSource implements BatchSource<TowerBatch> {
  readonly size: number;

  constructor(private readonly rows: Record<Tower, number[][]>) {
    this.size = rows.xray.length;
  }

  /** Builds `samples` rows of seeded standard-normal inputs in the fixture's widths. */
  static synthetic(widths: Record<Tower, number>, samples: number, seed: number): RowSource {
    const rng = new Rng(seed);
    const rows = {} as Record<Tower, number[][]>;
    for (const tower of TOWERS) {
      rows[tower] = Array.from({ length: samples }, () => Array.from({ length: widths[tower] }, () => rng.normal()));
    }
    return new RowSource(rows);
  }

  loadBatch(indices: number[]): TowerBatch {
    const batch = {} as TowerBatch;
    for (const tower of TOWERS) batch[tower] = tf.tensor2d(indices.map((i) => this.rows[tower][i]));
    return batch;
  }
}
