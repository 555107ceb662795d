import * as assert from 'assert';
import * as fs from 'fs';
import * as path from 'path';

import { tf } from '../../src/backend';
import { ProjectionHead } from '../../src/model/heads';
import {
  evaluateProbe, extractFeatures, PROBE_TASKS, runLabelFractions, ProbeBatch, ProbeBranch, ProbeFeatureSource, ProbeHead, ProbeKind,
  ProbeSplit, sampleLabelFraction, trainProbe,
} from '../../src/tasks/probe';

interface ProbeCase {
  name: string;
  kind: ProbeKind;
  classes: number;
  trainProjector: boolean;
  dims: Partial<Record<ProbeBranch, [number, number, number]>>;
  initial: Record<string, { shape: number[]; values: number[] }>;
  train: { features: Partial<Record<ProbeBranch, number[]>>; targets: number[][] | number[] };
  validation: { features: Partial<Record<ProbeBranch, number[]>>; targets: number[][] | number[] };
  losses: number[];
  validationLosses: number[];
  trained: Record<string, { shape: number[]; values: number[] }>;
  probabilities: number[][];
  metrics: { auroc?: number[]; macroAuroc: number; microAuroc?: number; accuracy?: number };
}

// Produced by reference/train_probe.py (PyTorch heads, AdamW, CosineAnnealingWarmRestarts, scikit-learn metrics).
const fixture = JSON.parse(fs.readFileSync(path.join(__dirname, '../fixtures/tasks/train/probe.json'), 'utf8')) as {
  settings: { epochs: number; lr: number; weightDecay: number; t0: number };
  cases: ProbeCase[];
};

function toSplit(probeCase: ProbeCase, part: 'train' | 'validation'): ProbeSplit {
  const split: ProbeSplit = { features: {}, featureDim: {}, targets: probeCase[part].targets };
  for (const [branch, dims] of Object.entries(probeCase.dims) as [ProbeBranch, number[]][]) {
    split.features[branch] = Float32Array.from(probeCase[part].features[branch] as number[]);
    split.featureDim[branch] = dims[0];
  }
  return split;
}

function buildHead(
  probeCase: ProbeCase, extra: { dropout?: number; ecgDropProbability?: number; trainProjector?: boolean } = {},
): ProbeHead {
  const projectors: Partial<Record<ProbeBranch, ProjectionHead>> = {};
  for (const [branch, [inputDim, hiddenDim, outputDim]] of Object.entries(probeCase.dims) as [ProbeBranch, number[]][]) {
    projectors[branch] = new ProjectionHead({ kind: 'nonlinear', inputDim, hiddenDim, outputDim });
  }
  const head = new ProbeHead({
    kind: probeCase.kind, classes: probeCase.classes, branches: Object.keys(probeCase.dims) as ProbeBranch[],
    dropout: 0, ecgDropProbability: 0, trainProjector: probeCase.trainProjector, ...extra,
  }, projectors);
  Object.values(projectors).forEach((projector) => projector.dispose());
  const weights = new Map(Object.entries(probeCase.initial).map(([name, { shape, values }]) => [name, tf.tensor(values, shape)]));
  head.loadNamedWeights(weights);
  tf.dispose([...weights.values()]);
  return head;
}

function close(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual} vs ${expected}`);
}

describe('tasks/probe', () => {
  for (const probeCase of fixture.cases) {
    it(`${probeCase.name} matches PyTorch`, async () => {
      const before = tf.memory().numTensors;
      const head = buildHead(probeCase);
      const losses: number[] = [];
      const result = await trainProbe(head, { train: toSplit(probeCase, 'train'), validation: toSplit(probeCase, 'validation') }, {
        lr: fixture.settings.lr, weightDecay: fixture.settings.weightDecay, t0: fixture.settings.t0,
        maxEpochs: fixture.settings.epochs, batchSize: 12, shuffle: false, restoreBest: false, patience: 100,
        onBatchEnd: (record) => losses.push(record.loss),
      });

      assert.strictEqual(losses.length, probeCase.losses.length);
      losses.forEach((loss, i) => close(loss, probeCase.losses[i], 1e-5, `epoch ${i} training loss`));
      result.history.forEach((epoch, i) => close(epoch.validationLoss as number, probeCase.validationLosses[i], 1e-5, `epoch ${i} validation loss`));
      const weights = head.namedWeights();
      assert.deepStrictEqual([...weights.keys()].sort(), Object.keys(probeCase.trained).sort());
      for (const [name, { values }] of Object.entries(probeCase.trained)) {
        const actual = (weights.get(name) as tf.Variable).dataSync();
        values.forEach((value, i) => close(actual[i], value, 1e-5, `${name}[${i}]`));
      }

      const evaluation = evaluateProbe(head, toSplit(probeCase, 'validation'));
      evaluation.probabilities.forEach((row, i) => row.forEach((p, j) => close(p, probeCase.probabilities[i][j], 1e-5, `probability [${i}][${j}]`)));
      if (probeCase.kind === 'multilabel') {
        const auroc = evaluation.auroc!;
        auroc.perLabel.forEach((entry, j) => close(entry.value as number, probeCase.metrics.auroc![j], 1e-9, `AUROC of label ${j}`));
        close(auroc.macro.value as number, probeCase.metrics.macroAuroc, 1e-9, 'macro AUROC');
        close(auroc.micro.value as number, probeCase.metrics.microAuroc!, 1e-9, 'micro AUROC');
      } else {
        close(evaluation.accuracy!, probeCase.metrics.accuracy!, 1e-12, 'accuracy');
        close(evaluation.macroAuroc!.value as number, probeCase.metrics.macroAuroc, 1e-9, 'macro AUROC');
      }
      head.dispose();
      assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked');
    });
  }

  it('linear probe trains the classifier only', () => {
    const head = buildHead(fixture.cases[0]);
    const classifier = new Set(head.classifier.trainableVariables());
    assert.deepStrictEqual(head.trainableVariables().map((v) => classifier.has(v)), [true, true]);
    const fineTuned = buildHead(fixture.cases[1]);
    // Two projectors of 2 x (linear weight, BatchNorm weight and bias), plus the classifier's weight and bias.
    assert.strictEqual(fineTuned.trainableVariables().length, 14);
    head.dispose();
    fineTuned.dispose();
  });

  it('zeroes the ECG branch at the given rate', () => {
    const probeCase = fixture.cases[1];
    // A frozen projector keeps BatchNorm in evaluation mode, so only the mask changes the logits.
    const head = buildHead(probeCase, { ecgDropProbability: 0.3, trainProjector: false });
    const n = 2000;
    const batch: ProbeBatch = {
      features: {
        image: tf.randomNormal([n, 16], 0, 1, 'float32', 2) as tf.Tensor2D,
        ecg: tf.randomNormal([n, 12], 0, 1, 'float32', 3) as tf.Tensor2D,
      },
      targets: tf.zeros([n], 'int32'),
    };
    const dropped = (seed: number): boolean[] => tf.tidy(() => {
      const logits = head.logits(batch, { training: true, seed });
      // The logits a sample gets when its ECG branch is zeroed after the projector.
      const image = head.projectors.get('image')!.apply(batch.features.image!, false);
      const withoutEcg = head.classifier.apply(tf.concat([image, tf.zeros([n, 6])], 1) as tf.Tensor2D);
      const same = tf.sub(logits, withoutEcg).abs().max(1).less(1e-5);
      return Array.from(same.dataSync()).map((value) => value === 1);
    });
    const first = dropped(5);
    const rate = first.filter(Boolean).length / n;
    assert.ok(rate > 0.26, `dropped fraction ${rate}, expected about 0.3`);
    assert.ok(rate < 0.34, `dropped fraction ${rate}, expected about 0.3`);
    assert.deepStrictEqual(dropped(5), first, 'same seed, same mask');
    assert.notDeepStrictEqual(dropped(6), first, 'another seed, another mask');
    tf.dispose(batch as unknown as tf.TensorContainer);
    head.dispose();
  });

  it('runs the label-fraction protocol', async () => {
    const probeCase = fixture.cases[0];
    const validation = toSplit(probeCase, 'validation');
    const before = tf.memory().numTensors;
    const results = await runLabelFractions(() => buildHead(probeCase), {
      train: toSplit(probeCase, 'train'), validation, test: validation,
    }, {
      fractions: [0.5, 1], seed: 3,
      train: {
        lr: fixture.settings.lr, weightDecay: fixture.settings.weightDecay, t0: fixture.settings.t0,
        maxEpochs: fixture.settings.epochs, batchSize: 12, shuffle: false, restoreBest: false, patience: 100,
      },
    });
    assert.deepStrictEqual(results.map((r) => r.trainSamples), [6, 12]);
    assert.deepStrictEqual(results.map((r) => r.training.epochsCompleted), [3, 3]);
    // The full fraction is the PyTorch run of the fixture.
    results[1].evaluation.probabilities.forEach((row, i) => row.forEach((p, j) => {
      close(p, probeCase.probabilities[i][j], 1e-5, `probability [${i}][${j}]`);
    }));
    close(results[1].evaluation.auroc!.macro.value as number, probeCase.metrics.macroAuroc, 1e-9, 'macro AUROC');
    assert.notDeepStrictEqual(results[0].evaluation.probabilities, results[1].evaluation.probabilities);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors leaked');
  });

  it('samples label fractions with a seed', () => {
    const onePercent = sampleLabelFraction(2500, 0.01, 7);
    assert.strictEqual(onePercent.length, 25);
    assert.deepStrictEqual(onePercent, sampleLabelFraction(2500, 0.01, 7));
    assert.notDeepStrictEqual(onePercent, sampleLabelFraction(2500, 0.01, 8));
    assert.deepStrictEqual([...onePercent].sort((a, b) => a - b), onePercent, 'ascending');
    assert.strictEqual(new Set(onePercent).size, 25, 'without replacement');
    assert.strictEqual(sampleLabelFraction(2500, 0.1, 7).length, 250);
    assert.strictEqual(sampleLabelFraction(50, 0.01, 7).length, 1);
    assert.strictEqual(sampleLabelFraction(40, 1, 7).length, 40);
    assert.throws(() => sampleLabelFraction(40, 0, 7), /Invalid label fraction 0/);
  });

  it('extracts features in sample order', async () => {
    const probeCase = fixture.cases[0];
    const split = toSplit(probeCase, 'validation');
    const source = new ProbeFeatureSource(split, 'multilabel');
    const { features, dim } = await extractFeatures(source, (batch) => tf.mul(batch.features.image!, 2) as tf.Tensor2D, { batchSize: 5 });
    assert.strictEqual(dim, 16);
    const expected = split.features.image!;
    assert.strictEqual(features.length, expected.length);
    features.forEach((value, i) => assert.strictEqual(value, expected[i] * 2, `value ${i}`));
  });

  it('lists the protocol tasks', () => {
    assert.deepStrictEqual(PROBE_TASKS.mimicCxr.labels, ['Atelectasis', 'Cardiomegaly', 'Edema', 'Pleural Effusion']);
    assert.strictEqual(PROBE_TASKS.chexpert.labels.length, 5);
    assert.strictEqual(PROBE_TASKS.edemaSeverity.kind, 'multiclass');
    assert.deepStrictEqual(PROBE_TASKS.ptbxlSuperclass.labels, ['NORM', 'MI', 'STTC', 'CD', 'HYP']);
  });

  it('rejects bad configurations', () => {
    const projector = new ProjectionHead({ kind: 'nonlinear', inputDim: 4, hiddenDim: 4, outputDim: 2 });
    assert.throws(() => new ProbeHead({ kind: 'multilabel', classes: 2, branches: ['ecg'] }, { image: projector }),
      /No projection head given for the ecg branch/);
    assert.throws(() => new ProbeHead({ kind: 'multiclass', classes: 1, branches: ['image'] }, { image: projector }),
      /Invalid number of classes 1/);
    assert.throws(() => new ProbeHead({ kind: 'multilabel', classes: 2, branches: ['image'], dropout: 1 }, { image: projector }),
      /Invalid dropout 1/);
    projector.dispose();
  });
});
