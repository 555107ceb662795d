/**
 * The tiny reference-layout MoRE model of reference/train_more_parity.py and
 * its closed-form inputs, shared by the parity test and the training benchmark.
 */
import * as fs from 'fs';
import * as path from 'path';

import { tf } from '../../src/backend';
import { MoreModel, type MoreBatch } from '../../src/model';
import { importReferenceMore } from '../../src/model/checkpoint';
import { parseHuggingFaceConfig, TransformerTextEncoder } from '../../src/model/text';
import { BatchSource } from '../../src/tasks/train';

export interface TensorSummary {
  sum: number;
  absSum: number;
  size: number;
  head: number[];
}

// Produced by reference/train_more_parity.py: the tiny reference-layout MoRE model trained in PyTorch.
export const PARITY = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/train/more_parity.json'), 'utf8')) as {
  settings: {
    batchSize: number; batches: number; accumulationSteps: number; epochs: number; lr: number; eps: number; weightDecay: number;
    t0: number; etaMin: number; temperature: number;
  };
  losses: number[];
  snapshots: Record<string, Record<string, TensorSummary>>;
};
const MORE_TINY = path.join(__dirname, '..', 'fixtures', 'model', 'text', 'more-tiny');

/** Builds the tiny model of the PyTorch oracle with its weights and every dropout (DropKey included) off. */
export function buildReferenceTiny(): MoreModel {
  const json = JSON.parse(fs.readFileSync(path.join(MORE_TINY, 'text-config.json'), 'utf8'));
  const config = { ...parseHuggingFaceConfig(json, 'text-config.json'), hiddenDropoutProb: 0, attentionProbsDropoutProb: 0 };
  const text = new TransformerTextEncoder(config, { pooling: 'mean' });
  text.addLora({ dropout: 0 });
  const model = new MoreModel({
    preset: 'tiny',
    image: { imageSize: 64, patchSize: 16, dropKeyRate: 0 },
    ecg: { dropKeyRate: 0 },
    temperature: { mode: 'fixed', initial: PARITY.settings.temperature },
  }, text);
  importReferenceMore(model, path.join(MORE_TINY, 'reference.safetensors'));
  return model;
}

/** The closed-form inputs of reference/train_more_parity.py, sample n of the epoch in order. */
export class FormulaPairs implements BatchSource<MoreBatch> {
  readonly size = PARITY.settings.batchSize * PARITY.settings.batches;

  loadBatch(indices: number[]): MoreBatch {
    const B = indices.length;
    const images = new Float32Array(B * 64 * 64 * 3);
    const ecgs = new Float32Array(B * 12 * 1000);
    const ids: number[][] = [];
    const mask: number[][] = [];
    indices.forEach((n, row) => {
      // X-ray value sin(0.001 k (n + 1) + n) at the NCHW flat index k, stored NHWC.
      for (let c = 0; c < 3; c++) {
        for (let h = 0; h < 64; h++) {
          for (let w = 0; w < 64; w++) {
            const k = (c * 64 + h) * 64 + w;
            images[((row * 64 + h) * 64 + w) * 3 + c] = Math.sin(0.001 * k * (n + 1) + n);
          }
        }
      }
      for (let lead = 0; lead < 12; lead++) {
        for (let t = 0; t < 1000; t++) ecgs[(row * 12 + lead) * 1000 + t] = 0.8 * Math.sin(0.05 * t * (lead + 1) / 3 + 0.7 * n);
      }
      const words = 4 + (n % 5);
      const tokens = [0, ...Array.from({ length: words }, (_, t) => 3 + ((7 * n + 13 * t) % 90)), 2];
      while (tokens.length < 10) tokens.push(1);
      ids.push(tokens);
      mask.push(tokens.map((id) => (id !== 1 ? 1 : 0)));
    });
    return {
      images: tf.tensor4d(images, [B, 64, 64, 3]),
      ecgs: tf.tensor3d(ecgs, [B, 12, 1000]),
      inputIds: tf.tensor2d(ids, undefined, 'int32'),
      attentionMask: tf.tensor2d(mask, undefined, 'int32'),
    };
  }
}
