import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { tf } from '../../src/backend';
import {
  BatchContext, BatchRecord, fit, loadTrainingCheckpoint, readCheckpointIndex, resolveTrainingCheckpoint, TrainableModel,
  TrainerState, TrainingDivergedError, TrainOptions,
} from '../../src/tasks/train';
import { BatchPipeline } from '../../src/datasets/pipeline';
import { epochOrder, EpochBatchSource, pipelineBatchSource, SizedBatch } from '../../src/tasks/train';
import { clearInterrupt, requestInterrupt } from '../../src/util/interrupt';
import { ProgressReporter, ProgressUpdate } from '../../src/util/progress';
import { readParityFixture, RowSource, TinyTowers, TowerBatch } from './tiny-towers';

// Produced by reference/train_parity.py (PyTorch AdamW, CosineAnnealingWarmRestarts, summed accumulation).
const fixture = readParityFixture();
const { settings } = fixture;

function parityOptions(extra: TrainOptions = {}): TrainOptions {
  return {
    maxEpochs: settings.epochs, batchSize: settings.batchSize, accumulationSteps: settings.accumulationSteps,
    lr: settings.lr, weightDecay: settings.weightDecay, t0: settings.t0, etaMin: settings.etaMin,
    shuffle: false, checkpointEveryEpochs: 0, ...extra,
  };
}

function temporaryDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-train-'));
}

function assertWeightsClose(actual: Record<string, number[]>, expected: Record<string, number[]>, tolerance: number, what: string): void {
  assert.deepStrictEqual(Object.keys(actual).sort(), Object.keys(expected).sort(), `${what}: weight names`);
  for (const [name, values] of Object.entries(expected)) {
    for (let i = 0; i < values.length; i++) {
      assert.ok(Math.abs(actual[name][i] - values[i]) <= tolerance, `${what}: ${name}[${i}] ${actual[name][i]} vs ${values[i]}`);
    }
  }
}

class RecordingProgress implements ProgressReporter {
  started: { label: string; total: number; unit: string } | undefined;
  updates: ProgressUpdate[] = [];
  ended = false;

  start(label: string, total: number, unit: string): void {
    this.started = { label, total, unit };
  }

  update(update: ProgressUpdate): void {
    this.updates.push(update);
  }

  end(): void {
    this.ended = true;
  }
}

/** Yields the epochs of `rows` itself, in the order an index source with the same seed gets. */
class EpochRows implements EpochBatchSource<TowerBatch> {
  readonly size: number;
  readonly batchesPerEpoch: number;
  /** Batches handed out and not yet disposed, to check that the trainer frees what it reads. */
  live = 0;

  constructor(private readonly rows: RowSource, private readonly seed: number, private readonly batchSize: number) {
    this.size = rows.size;
    this.batchesPerEpoch = Math.floor(rows.size / batchSize);
  }

  *epochBatches(epoch: number): Generator<SizedBatch<TowerBatch>> {
    const order = epochOrder(this.size, epoch, this.seed, true);
    for (let start = 0; start + this.batchSize <= order.length; start += this.batchSize) {
      this.live += 1;
      yield { batch: this.rows.loadBatch(order.slice(start, start + this.batchSize)), samples: this.batchSize };
    }
  }

  disposeBatch(batch: TowerBatch): void {
    this.live -= 1;
    tf.dispose(batch as unknown as tf.TensorContainer);
  }
}

describe('tasks/train fit', () => {
  it('matches PyTorch losses and updates', async () => {
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const batches: BatchRecord[] = [];
    const stepWeights: Record<string, number[]>[] = [];
    let lastSteps = 0;
    const result = await fit(model, { train: new RowSource(fixture.train), validation: new RowSource(fixture.validation) },
      parityOptions({
        onBatchEnd: (record) => {
          batches.push(record);
          if (record.optimizerSteps > lastSteps) stepWeights.push(model.weightValues());
          lastSteps = record.optimizerSteps;
        },
      }));

    assert.strictEqual(batches.length, fixture.losses.length);
    batches.forEach((record, i) => {
      assert.ok(Math.abs(record.loss - fixture.losses[i]) <= 1e-4, `batch ${i} loss ${record.loss} vs torch ${fixture.losses[i]}`);
    });
    assert.strictEqual(stepWeights.length, fixture.stepWeights.length, 'optimiser steps');
    stepWeights.forEach((weights, i) => {
      const expected = fixture.stepWeights[i];
      assertWeightsClose(weights, expected, 1e-4, `after optimiser step ${i + 1}`);
    });
    assert.strictEqual(result.optimizerSteps, fixture.stepWeights.length);
    assert.strictEqual(result.history.length, settings.epochs);
    result.history.forEach((epoch, i) => {
      const expected = fixture.epochs[i];
      assert.ok(Math.abs(epoch.trainLoss - expected.trainLoss) <= 1e-4, `epoch ${i} train loss`);
      assert.ok(Math.abs((epoch.validationLoss as number) - expected.validationLoss) <= 1e-4, `epoch ${i} validation loss`);
      assert.ok(Math.abs(epoch.lr - expected.lr) <= 1e-12, `epoch ${i} lr ${epoch.lr} vs torch ${expected.lr}`);
    });
    assert.strictEqual(result.stopReason, 'completed');
    model.dispose();
  });

  it('reports loss, lr, temperature and rate', async () => {
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const progress = new RecordingProgress();
    await fit(model, { train: new RowSource(fixture.train) }, parityOptions({ maxEpochs: 1, progress, label: 'tiny' }));
    assert.deepStrictEqual(progress.started, { label: 'tiny', total: 4, unit: 'batch' });
    assert.strictEqual(progress.updates.length, 4);
    const metrics = progress.updates[3].metrics ?? {};
    assert.strictEqual(progress.updates[3].done, 4);
    assert.ok(Math.abs((metrics.loss as number) - fixture.losses[3]) <= 1e-4, 'loss metric');
    assert.ok(Math.abs((metrics.lr as number) - settings.lr) <= 1e-12, `lr metric ${metrics.lr}`);
    assert.strictEqual(metrics.temperature, settings.temperature);
    assert.ok((metrics.samples_per_s as number) > 0, 'samples per second');
    assert.ok(progress.ended);
    model.dispose();
  });

  it('resumes a stopped run exactly', async () => {
    const runDir = temporaryDir();
    const data = { train: RowSource.synthetic(settings.inputWidths, 24, 3), validation: new RowSource(fixture.validation) };
    const options = parityOptions({ maxEpochs: 4, shuffle: true, seed: 11, checkpointEverySteps: 1, accumulationSteps: 2 });

    const straight = TinyTowers.random(fixture, 5);
    const straightLosses: number[] = [];
    const straightResult = await fit(straight, data, { ...options, onBatchEnd: (r) => straightLosses.push(r.loss) });

    const resumed = TinyTowers.random(fixture, 5);
    const firstLosses: number[] = [];
    await fit(resumed, data, { ...options, runDir, maxEpochs: 2, onBatchEnd: (r) => firstLosses.push(r.loss) });
    resumed.dispose();
    const again = TinyTowers.random(fixture, 99);
    const laterLosses: number[] = [];
    const result = await fit(again, data, { ...options, runDir, onBatchEnd: (r) => laterLosses.push(r.loss) });

    assert.deepStrictEqual([...firstLosses, ...laterLosses], straightLosses);
    assertWeightsClose(again.weightValues(), straight.weightValues(), 0, 'final weights');
    assert.deepStrictEqual(result.history, straightResult.history);
    straight.dispose();
    again.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('writes latest, best and kept checkpoints', async () => {
    const runDir = temporaryDir();
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const result = await fit(model, { train: new RowSource(fixture.train), validation: new RowSource(fixture.validation) },
      parityOptions({ runDir, checkpointEveryEpochs: 2 }));
    const index = readCheckpointIndex(runDir);
    assert.strictEqual(index.latest, 'step-00000006');
    assert.deepStrictEqual(index.kept, ['step-00000004']);
    const bestEpoch = result.bestEpoch as number;
    assert.strictEqual(index.best, `step-${String((bestEpoch + 1) * 2).padStart(8, '0')}`);
    const folders = fs.readdirSync(runDir).filter((name) => name.startsWith('step-')).sort();
    assert.deepStrictEqual(folders, [...new Set([index.best as string, 'step-00000004', 'step-00000006'])].sort());

    const latest = loadTrainingCheckpoint<TrainerState>(resolveTrainingCheckpoint(runDir, 'latest') as string);
    assert.strictEqual(latest.trainer.epoch, 3);
    assert.strictEqual(latest.trainer.optimizerSteps, 6);
    assert.strictEqual(latest.optimizer.step, 6);
    assertWeightsClose(
      Object.fromEntries([...latest.weights].map(([name, tensor]) => [name, Array.from(tensor.dataSync())])),
      model.weightValues(), 0, 'saved weights');
    tf.dispose([...latest.weights.values(), ...Object.values(latest.optimizer.tensors)]);
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('stops on a NaN loss without writing', async () => {
    const runDir = temporaryDir();
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const poisoned = fixture.train.xray.map((row, i) => (i === 9 ? row.map(() => Number.NaN) : row));
    const data = { train: new RowSource({ ...fixture.train, xray: poisoned }) };
    await assert.rejects(fit(model, data, parityOptions({ runDir })),
      (error: Error) => error instanceof TrainingDivergedError && /Training loss is NaN at epoch 0, batch 2/.test(error.message));
    assert.strictEqual(readCheckpointIndex(runDir).latest, null);
    assert.deepStrictEqual(fs.readdirSync(runDir), []);
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('keeps the good checkpoint after a later NaN', async () => {
    const runDir = temporaryDir();
    const model = new TinyTowers(fixture.initial, settings.temperature);
    await fit(model, { train: new RowSource(fixture.train) }, parityOptions({ runDir, maxEpochs: 1 }));
    const before = fs.readFileSync(path.join(runDir, 'step-00000002', 'model.safetensors'));
    const poisoned = fixture.train.ecg.map((row) => row.map(() => Number.POSITIVE_INFINITY));
    await assert.rejects(fit(model, { train: new RowSource({ ...fixture.train, ecg: poisoned }) }, parityOptions({ runDir })),
      TrainingDivergedError);
    assert.strictEqual(readCheckpointIndex(runDir).latest, 'step-00000002');
    assert.deepStrictEqual(fs.readFileSync(path.join(runDir, 'step-00000002', 'model.safetensors')), before);
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('stops cleanly on an interrupt request', async () => {
    const runDir = temporaryDir();
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const data = { train: new RowSource(fixture.train) };
    try {
      const result = await fit(model, data, parityOptions({
        runDir,
        onBatchEnd: (record) => {
          if (record.epoch === 1 && record.batch === 1) requestInterrupt();
        },
      }));
      assert.strictEqual(result.stopReason, 'interrupted');
      assert.strictEqual(result.epochsCompleted, 1);
      assert.strictEqual(readCheckpointIndex(runDir).latest, 'step-00000002');
    } finally {
      clearInterrupt();
    }
    const resumedLosses: number[] = [];
    const resumed = await fit(model, data, parityOptions({ runDir, onBatchEnd: (r) => resumedLosses.push(r.loss) }));
    assert.strictEqual(resumed.stopReason, 'completed');
    assert.strictEqual(resumedLosses.length, 8);
    resumedLosses.forEach((loss, i) => assert.ok(Math.abs(loss - fixture.losses[i + 4]) <= 1e-4, `resumed batch ${i}`));
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('stops early after patience epochs', async () => {
    const model = new TinyTowers(fixture.initial, settings.temperature);
    // With lr 0 the weights never change, so the validation loss never improves after the first epoch.
    const result = await fit(model, { train: new RowSource(fixture.train), validation: new RowSource(fixture.validation) },
      parityOptions({ lr: 0, etaMin: 0, maxEpochs: 10, patience: 3 }));
    assert.strictEqual(result.stopReason, 'early-stopped');
    assert.strictEqual(result.epochsCompleted, 4);
    assert.strictEqual(result.bestEpoch, 0);
    model.dispose();
  });

  for (const where of ['memory', 'checkpoint'] as const) {
    it(`restores the best weights from ${where}`, async () => {
      const runDir = where === 'checkpoint' ? temporaryDir() : undefined;
      const model = new TinyTowers(fixture.initial, settings.temperature);
      const snapshots: Record<string, number[]>[] = [];
      // A large learning rate makes the validation loss rise again after its best epoch.
      const result = await fit(model, { train: new RowSource(fixture.train), validation: new RowSource(fixture.validation) },
        parityOptions({ runDir, lr: 0.3, etaMin: 0.3, maxEpochs: 8, patience: 100, restoreBest: true, onEpochEnd: () => snapshots.push(model.weightValues()) }));
      const bestEpoch = result.bestEpoch as number;
      assert.ok(bestEpoch < 7, `the best epoch ${bestEpoch} is the last one, so nothing is restored`);
      assertWeightsClose(model.weightValues(), snapshots[bestEpoch], 0, `weights of epoch ${bestEpoch}`);
      model.dispose();
      if (runDir !== undefined) fs.rmSync(runDir, { recursive: true, force: true });
    });
  }

  it('trains an epoch source like an index source', async () => {
    const rows = RowSource.synthetic(settings.inputWidths, 24, 3);
    const options = parityOptions({ maxEpochs: 3, shuffle: true, seed: 11 });
    const indexed = TinyTowers.random(fixture, 5);
    const indexedLosses: number[] = [];
    await fit(indexed, { train: rows, validation: new RowSource(fixture.validation) }, { ...options, onBatchEnd: (r) => indexedLosses.push(r.loss) });

    const streamed = TinyTowers.random(fixture, 5);
    const source = new EpochRows(rows, 11, settings.batchSize);
    const streamedLosses: number[] = [];
    const result = await fit(streamed, { train: source, validation: new RowSource(fixture.validation) },
      { ...options, onBatchEnd: (r) => streamedLosses.push(r.loss) });
    assert.deepStrictEqual(streamedLosses, indexedLosses);
    assert.strictEqual(result.optimizerSteps, 3 * 2, 'two optimiser steps per epoch of 6 batches');
    assertWeightsClose(streamed.weightValues(), indexed.weightValues(), 0, 'final weights');
    assert.strictEqual(source.live, 0, 'batches left undisposed');
    indexed.dispose();
    streamed.dispose();
  });

  it('resumes an epoch source inside an epoch', async () => {
    const runDir = temporaryDir();
    const rows = RowSource.synthetic(settings.inputWidths, 24, 3);
    const options = parityOptions({ maxEpochs: 2, seed: 4, accumulationSteps: 2, checkpointEverySteps: 1 });
    const straight = TinyTowers.random(fixture, 6);
    const straightLosses: number[] = [];
    await fit(straight, { train: new EpochRows(rows, 4, 4) }, { ...options, onBatchEnd: (r) => straightLosses.push(r.loss) });

    const model = TinyTowers.random(fixture, 6);
    const source = new EpochRows(rows, 4, 4);
    const losses: number[] = [];
    try {
      const first = await fit(model, { train: source }, {
        ...options, runDir,
        onBatchEnd: (record) => {
          losses.push(record.loss);
          if (record.epoch === 1 && record.batch === 3) requestInterrupt();
        },
      });
      assert.strictEqual(first.stopReason, 'interrupted');
    } finally {
      clearInterrupt();
    }
    // The latest checkpoint is after batch 3 of epoch 1 (optimiser step 5): batches 0-3 are discarded on resume.
    const before = tf.memory().numTensors;
    const resumedLosses: number[] = [];
    await fit(model, { train: source }, { ...options, runDir, onBatchEnd: (r) => resumedLosses.push(r.loss) });
    assert.deepStrictEqual([...losses, ...resumedLosses], straightLosses);
    assert.strictEqual(source.live, 0, 'batches left undisposed');
    assert.strictEqual(tf.memory().numTensors, before, 'tensors left after the resumed run');
    straight.dispose();
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('trains from a batch pipeline', async () => {
    // Each record's "X-ray" is a file holding its sample index, which toBatch turns into that row's inputs.
    const dir = temporaryDir();
    const rows = RowSource.synthetic(settings.inputWidths, 12, 8);
    const records = Array.from({ length: 12 }, (_, i) => {
      const xrayPath = path.join(dir, `s${i}.txt`);
      fs.writeFileSync(xrayPath, String(i));
      return { id: `s${i}`, xrayPath, text: `sample ${i}` };
    });
    const pipeline = new BatchPipeline(records, {
      batchSize: 4, seed: 2, workers: 0,
      xray: { module: path.join(__dirname, 'row-decoder.ts'), exportName: 'decodeSampleIndex', shape: [1] },
    });
    try {
      const source = pipelineBatchSource(pipeline, (batch) => rows.loadBatch(Array.from(batch.xray)), { batchSize: 4 });
      assert.strictEqual(source.batchesPerEpoch, 3);
      const model = TinyTowers.random(fixture, 7);
      const losses: number[] = [];
      await fit(model, { train: source }, parityOptions({ maxEpochs: 2, onBatchEnd: (r) => losses.push(r.loss) }));

      // The same batches through an index source, in the pipeline's order.
      const reference = TinyTowers.random(fixture, 7);
      const referenceLosses: number[] = [];
      const ordered = {
        size: 12,
        batchesPerEpoch: 3,
        epochBatches: (epoch: number) => [0, 4, 8].map((start) => ({
          batch: rows.loadBatch(pipeline.order(epoch).slice(start, start + 4)), samples: 4,
        })),
      };
      await fit(reference, { train: ordered }, parityOptions({ maxEpochs: 2, onBatchEnd: (r) => referenceLosses.push(r.loss) }));
      assert.strictEqual(losses.length, 6);
      assert.deepStrictEqual(losses, referenceLosses);
      model.dispose();
      reference.dispose();
    } finally {
      await pipeline.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('rejects a checkpoint from other settings', async () => {
    const runDir = temporaryDir();
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const data = { train: new RowSource(fixture.train) };
    await fit(model, data, parityOptions({ runDir, maxEpochs: 1 }));
    await assert.rejects(fit(model, data, parityOptions({ runDir, batchSize: 2 })),
      /saved with batchSize=4, this run has batchSize=2/);
    model.dispose();
    fs.rmSync(runDir, { recursive: true, force: true });
  });

  it('rejects invalid options', async () => {
    const model = new TinyTowers(fixture.initial, settings.temperature);
    const data = { train: new RowSource(fixture.train) };
    await assert.rejects(fit(model, data, { accumulationSteps: 0 }), /accumulationSteps=0: expected a positive integer/);
    await assert.rejects(fit(model, data, { batchSize: 100 }), /16 samples, fewer than one batch of 100/);
    const unnamed: TrainableModel<TowerBatch> = {
      namedWeights: () => new Map(),
      trainableVariables: () => model.trainableVariables(),
      batchLoss: (batch: TowerBatch, context: BatchContext) => model.batchLoss(batch, context),
    };
    await assert.rejects(fit(unnamed, data), /is not in namedWeights\(\)/);
    model.dispose();
  });

  it('keeps the tensor count flat', async () => {
    const model = TinyTowers.random(fixture, 1);
    const data = { train: RowSource.synthetic(settings.inputWidths, 64, 2), validation: new RowSource(fixture.validation) };
    const options = parityOptions({ batchSize: 4, accumulationSteps: 4, maxEpochs: 25, patience: 1000, shuffle: true });
    await fit(model, data, { ...options, maxEpochs: 1 });
    const before = tf.memory().numTensors;
    let batches = 0;
    const countsAtEpochEnd = new Set<number>();
    // 25 epochs of 16 batches, run five times in one process: 2000 batches. Counts are taken after
    // the last batch of each epoch, where no accumulated gradient is held.
    for (let run = 0; run < 5; run++) {
      await fit(model, data, {
        ...options,
        onBatchEnd: (record) => {
          batches += 1;
          if (record.batch === 15) countsAtEpochEnd.add(tf.memory().numTensors);
        },
      });
    }
    assert.deepStrictEqual([...countsAtEpochEnd], [[...countsAtEpochEnd][0]], `tensor counts at epoch ends: ${[...countsAtEpochEnd]}`);
    assert.strictEqual(batches, 2000);
    assert.strictEqual(tf.memory().numTensors, before, 'tensors left after the runs');
    model.dispose();
  });
});
