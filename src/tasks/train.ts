/**
 * The training loop of MoRE pre-training and of the downstream probes. It runs
 * AdamW with cosine annealing and warm restarts stepped per epoch, gradient
 * accumulation and early stopping on the validation loss. Checkpoints are
 * written on the best validation loss, every few epochs and at the end of
 * every epoch, and a run resumes exactly from the latest one.
 *
 * Defaults follow the PyTorch reference (`svthapa/MoRE`, `pretrain_multimodel.py`):
 * lr 3e-5, weight decay 0.1, T_0 10 epochs, eta_min 3e-6, 4 accumulated
 * batches whose gradients are summed (the reference calls `backward()` on each
 * unscaled batch loss), an optimiser step after the last batch of an epoch
 * even when fewer were accumulated, the last partial batch dropped, and the
 * validation loss averaged over batches.
 *
 * Resumption is exact because everything random comes from the run seed: the
 * sample order of epoch e is a shuffle seeded by (seed, e), and augmentation
 * and per-batch model seeds come from one {@link Rng} whose state every
 * checkpoint stores, next to the weights, the optimiser moments and the
 * schedule position.
 *
 * On the native backend the batch step and the optimiser step run as
 * compiled TensorFlow graphs (`train/steps.ts`) for models that have
 * `prepareBatch`, one graph per batch layout. With `graph: false` they run
 * eagerly. The two differ by float rounding only.
 *
 * NOTE: the reference trains with mixed precision (autocast and a gradient
 * scaler) on GPUs. This loop always computes in float32.
 */
import * as tf from '@tensorflow/tfjs';

import { graphExecutionAvailable } from '../backend/graph';
import { pollInterrupt } from '../util/interrupt';
import { getLogger } from '../util/log';
import { ProgressReporter, silentProgress } from '../util/progress';
import { Rng, RngState } from '../util/rng';
import { AdamW, AdamWState, NamedVariable } from './optim';
import { CosineAnnealingWarmRestarts, CosineWarmRestartsState } from './schedule';
import {
  disposeTrainingCheckpoint, loadTrainingCheckpoint, LoadedTrainingCheckpoint, readCheckpointIndex, resolveTrainingCheckpoint, saveTrainingCheckpoint,
} from './train/checkpoint';
import { EpochBatchSource, isEpochBatchSource, SizedBatch } from './train/sources';
import { type BatchLayout, TrainingSteps } from './train/steps';

export * from './train/checkpoint';
export * from './train/more';
export * from './train/sources';
export { batchLayout, type BatchLayout } from './train/steps';

const log = getLogger('tasks.train');

/** Per-batch settings the trainer hands to the model. */
export interface BatchContext {
  training: boolean;
  /** A seed drawn from the run's generator for this batch; models seed their dropout (DropKey) with it. */
  seed: number;
}

/** Model contract of the trainer. */
export interface TrainableModel<B> {
  /** Every weight and buffer under a stable name; a checkpoint saves and restores exactly these. */
  namedWeights(): Map<string, tf.Variable>;
  /** Variables the optimiser updates; each must also be in {@link namedWeights}. */
  trainableVariables(): tf.Variable[];
  /** The loss of one batch. Called inside a gradient tape when `context.training` is true. */
  batchLoss(batch: B, context: BatchContext): tf.Scalar;
  /**
   * Sets the state a training batch needs besides its tensors, such as the
   * generator seeds drawn from `context.seed`. The trainer calls it before
   * every training batch, also when a compiled graph replays the batch
   * without calling {@link batchLoss}. Only a model that has it trains as
   * compiled graphs: its `batchLoss` must then depend on nothing but the
   * batch, the variables and what this method set.
   */
  prepareBatch?(context: BatchContext, batch: B): void;
  /**
   * Returns the tensors a compiled graph of `batch` takes as inputs and a key
   * naming everything else the loss depends on. Batches with one key share a
   * graph. Default: {@link batchLayout}, whose key contains every non-tensor
   * value of the batch.
   */
  batchLayout?(batch: B): BatchLayout | undefined;
  /** Current contrastive temperature, shown in the progress line. */
  temperature?(): number;
}

/** A dataset the trainer draws batches from by sample index, in the order it chooses. */
export interface BatchSource<B> {
  /** Number of samples. */
  readonly size: number;
  /**
   * Builds the batch of the samples at `indices`, in that order. `rng` is
   * the run's generator: draw augmentation randomness from it so a resumed
   * run repeats it. The trainer disposes the batch with `tf.dispose` unless
   * {@link disposeBatch} is given.
   */
  loadBatch(indices: number[], rng: Rng): B | Promise<B>;
  disposeBatch?(batch: B): void;
}

/** Training or validation data: addressed by index, or yielding whole epochs itself. */
export type TrainingSource<B> = BatchSource<B> | EpochBatchSource<B>;

export interface TrainOptions {
  /** Folder for checkpoints. Without it nothing is written and a run cannot be resumed. */
  runDir?: string;
  /** Continue from the latest checkpoint in `runDir` when there is one. Default true. */
  resume?: boolean;
  /** Number of epochs to train (counted from the first run, not from a resume). Default 100. */
  maxEpochs?: number;
  /** Samples per batch of an index-addressed source (an epoch source has its own). Default 100. */
  batchSize?: number;
  /** Peak learning rate. Default 3e-5. */
  lr?: number;
  /** AdamW decoupled weight decay. Default 0.1. */
  weightDecay?: number;
  betas?: [number, number];
  /** AdamW epsilon. Default 1e-8. */
  eps?: number;
  /** First cycle of the cosine schedule, in epochs. Default 10. */
  t0?: number;
  /** Cycle growth factor. Default 1. */
  tMult?: number;
  /** Learning rate at the end of each cycle. Default 3e-6. */
  etaMin?: number;
  /**
   * `epoch` steps the schedule once after each epoch (the reference);
   * `batch` steps it to the fractional epoch after every optimiser step.
   */
  scheduleStep?: 'epoch' | 'batch';
  /** Batches whose gradients make one optimiser step. Default 4. */
  accumulationSteps?: number;
  /** `sum` adds the batch gradients (the reference); `mean` divides the sum by the number of batches. */
  accumulation?: 'sum' | 'mean';
  /** Epochs without improvement of the validation loss before stopping. Default 10. */
  patience?: number;
  /** Improvement below this does not reset the patience counter. Default 0. */
  minDelta?: number;
  /** Keep a checkpoint for good after every this many epochs (0: never). Default 5. */
  checkpointEveryEpochs?: number;
  /** Also write a latest checkpoint after every this many optimiser steps inside an epoch (0: never). Default 0. */
  checkpointEverySteps?: number;
  /** Seed of the sample order, augmentation and model randomness. Default 0. */
  seed?: number;
  /** Shuffle the samples each epoch. Default true. */
  shuffle?: boolean;
  /** Drop the last batch of an epoch when it is smaller than `batchSize`. Default true, as the reference. */
  dropLast?: boolean;
  /**
   * Restore the weights of the best validation epoch when training ends, from
   * the best checkpoint when `runDir` is set, else from a copy kept in memory.
   * Default false.
   */
  restoreBest?: boolean;
  progress?: ProgressReporter;
  /** Label of the progress bar. Default `training`. */
  label?: string;
  onBatchEnd?(record: BatchRecord): void;
  onEpochEnd?(record: EpochRecord): void;
  /** Test hook: pause this long after each file of a checkpoint write. Default 0. */
  checkpointWriteDelayMs?: number;
  /**
   * Run the training steps as compiled TensorFlow graphs, which is faster
   * when a step is many small operations (4.3 times for the tiny MoRE model).
   * The results differ from eager training by float rounding only. It applies
   * on the native backend to models with `prepareBatch`. Default true.
   */
  graph?: boolean;
  /** Batch layouts (shapes and flags) that get a compiled graph; batches of further layouts train eagerly. Default 8. */
  maxGraphs?: number;
}

export interface BatchRecord {
  epoch: number;
  /** Index of the batch within its epoch. */
  batch: number;
  /** Batches trained so far over the whole run, this one included. */
  batchesSeen: number;
  optimizerSteps: number;
  loss: number;
  lr: number;
}

export interface EpochRecord {
  epoch: number;
  trainLoss: number;
  /** Mean validation loss over batches; null without validation data. */
  validationLoss: number | null;
  /** Learning rate after the epoch's schedule step. */
  lr: number;
  improved: boolean;
}

export type StopReason = 'completed' | 'early-stopped' | 'interrupted';

export interface TrainResult {
  stopReason: StopReason;
  /** Epochs finished over the whole run, resumed ones included. */
  epochsCompleted: number;
  optimizerSteps: number;
  bestValidationLoss: number | null;
  bestEpoch: number | null;
  history: EpochRecord[];
}

/** Raised when a loss is NaN or infinite; no checkpoint is written after it. */
export class TrainingDivergedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/** The trainer's own part of a checkpoint (`trainer.json`). */
export interface TrainerState {
  format: 'more-ts-trainer';
  version: 1;
  /** Epoch in progress (0-based); equals the number of finished epochs when `batchInEpoch` is 0. */
  epoch: number;
  /** Next batch of `epoch` to train. */
  batchInEpoch: number;
  batchesSeen: number;
  optimizerSteps: number;
  rng: RngState;
  schedule: CosineWarmRestartsState;
  lr: number;
  epochLossSum: number;
  epochLossBatches: number;
  bestValidationLoss: number | null;
  bestEpoch: number | null;
  earlyStopping: { bestLoss: number | null; counter: number };
  stopReason: StopReason | null;
  history: EpochRecord[];
  /** Settings that decide the sample order; a resume with other values would not repeat the run. */
  settings: { seed: number; batchSize: number; accumulationSteps: number; shuffle: boolean; dropLast: boolean; samples: number };
}

/** One batch of the epoch in progress, with its position. */
interface EpochItem<B> {
  batch: B;
  samples: number;
  /** Index of the batch within its epoch. */
  index: number;
  last: boolean;
  /** Batches in the epoch (expected, for an epoch source). */
  count: number;
}

type ResolvedOptions = Required<Omit<TrainOptions, 'runDir' | 'onBatchEnd' | 'onEpochEnd'>> &
  Pick<TrainOptions, 'runDir' | 'onBatchEnd' | 'onEpochEnd'>;

function resolveOptions(options: TrainOptions): ResolvedOptions {
  const resolved: ResolvedOptions = {
    resume: true, maxEpochs: 100, batchSize: 100, lr: 3e-5, weightDecay: 0.1, betas: [0.9, 0.999], eps: 1e-8,
    t0: 10, tMult: 1, etaMin: 3e-6, scheduleStep: 'epoch', accumulationSteps: 4, accumulation: 'sum',
    patience: 10, minDelta: 0, checkpointEveryEpochs: 5, checkpointEverySteps: 0, seed: 0, shuffle: true,
    dropLast: true, restoreBest: false, progress: silentProgress, label: 'training', checkpointWriteDelayMs: 0,
    graph: true, maxGraphs: 8,
    ...Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)),
  };
  const positiveIntegers = ['maxEpochs', 'batchSize', 'accumulationSteps', 'patience', 'maxGraphs'] as const;
  for (const key of positiveIntegers) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 1) {
      throw new Error(`Invalid training option ${key}=${resolved[key]}: expected a positive integer`);
    }
  }
  for (const key of ['checkpointEveryEpochs', 'checkpointEverySteps', 'checkpointWriteDelayMs'] as const) {
    if (!Number.isInteger(resolved[key]) || resolved[key] < 0) {
      throw new Error(`Invalid training option ${key}=${resolved[key]}: expected a non-negative integer`);
    }
  }
  if (!Number.isInteger(resolved.seed)) throw new Error(`Invalid training option seed=${resolved.seed}: expected an integer`);
  if (resolved.scheduleStep !== 'epoch' && resolved.scheduleStep !== 'batch') {
    throw new Error(`Invalid training option scheduleStep="${resolved.scheduleStep}": expected "epoch" or "batch"`);
  }
  if (resolved.accumulation !== 'sum' && resolved.accumulation !== 'mean') {
    throw new Error(`Invalid training option accumulation="${resolved.accumulation}": expected "sum" or "mean"`);
  }
  if (!Number.isFinite(resolved.minDelta) || resolved.minDelta < 0) {
    throw new Error(`Invalid training option minDelta=${resolved.minDelta}: expected a finite non-negative number`);
  }
  return resolved;
}

/** Sample order of one epoch: a shuffle seeded by the run seed and the epoch, or the identity. */
export function epochOrder(samples: number, epoch: number, seed: number, shuffle: boolean): number[] {
  const order = Array.from({ length: samples }, (_, i) => i);
  if (!shuffle) return order;
  return new Rng((seed ^ Math.imul(epoch + 1, 0x9e3779b1)) | 0).shuffle(order);
}

function splitBatches(order: number[], batchSize: number, dropLast: boolean): number[][] {
  const batches: number[][] = [];
  for (let start = 0; start < order.length; start += batchSize) {
    const indices = order.slice(start, start + batchSize);
    if (indices.length < batchSize && dropLast) break;
    batches.push(indices);
  }
  return batches;
}

/** Names the trainable variables by their key in `namedWeights()`. */
function nameTrainables<B>(model: TrainableModel<B>): NamedVariable[] {
  const names = new Map<tf.Variable, string>();
  for (const [name, variable] of model.namedWeights()) names.set(variable, name);
  return model.trainableVariables().map((variable) => {
    const name = names.get(variable);
    if (name === undefined) {
      throw new Error(`Trainable variable "${variable.name}" [${variable.shape}] is not in namedWeights(), so it could not be checkpointed`);
    }
    return { name, variable };
  });
}

function restoreWeights(weights: Map<string, tf.Variable>, saved: Map<string, tf.Tensor>, source: string): void {
  const missing = [...weights.keys()].filter((name) => !saved.has(name));
  const unexpected = [...saved.keys()].filter((name) => !weights.has(name));
  if (missing.length > 0 || unexpected.length > 0) {
    throw new Error(`Checkpoint ${source} does not match the model: ` +
      `missing ${missing.length} (${missing.slice(0, 3).join(', ')}), unexpected ${unexpected.length} (${unexpected.slice(0, 3).join(', ')})`);
  }
  for (const [name, variable] of weights) {
    const tensor = saved.get(name) as tf.Tensor;
    if (tensor.shape.length !== variable.shape.length || tensor.shape.some((size, i) => size !== variable.shape[i])) {
      throw new Error(`Checkpoint ${source}: "${name}" has shape [${tensor.shape}], the model expects [${variable.shape}]`);
    }
    tf.tidy(() => variable.assign(tensor.dtype === variable.dtype ? tensor : tensor.cast(variable.dtype)));
  }
}

/**
 * Trains `model` on `data.train`, validating on `data.validation` after each
 * epoch, and returns how the run ended. With `runDir` set and a checkpoint
 * present, the run continues from it (weights, optimiser, schedule, sample
 * order and generator state), so a resumed run computes the same losses as
 * one that was never stopped. An interrupt request ends the run at the next
 * batch boundary without writing a checkpoint. A NaN or infinite loss raises
 * {@link TrainingDivergedError} before anything is written.
 */
export async function fit<B>(
  model: TrainableModel<B>,
  data: { train: TrainingSource<B>; validation?: TrainingSource<B> },
  options: TrainOptions = {},
): Promise<TrainResult> {
  const settings = resolveOptions(options);
  const trainables = nameTrainables(model);
  const optimizer = new AdamW(trainables, {
    lr: settings.lr, betas: settings.betas, eps: settings.eps, weightDecay: settings.weightDecay,
  });
  const graph = settings.graph && model.prepareBatch !== undefined && graphExecutionAvailable();
  if (settings.graph && !graph) {
    log.debug(model.prepareBatch === undefined
      ? 'training eagerly: the model has no prepareBatch, so its loss may depend on the per-batch seed'
      : 'training eagerly: compiled graphs need the native TensorFlow backend');
  }
  const steps = new TrainingSteps(trainables, optimizer, {
    graph, maxGraphs: settings.maxGraphs, accumulation: settings.accumulation, stateVariables: [...model.namedWeights().values()],
  });
  const bestWeights = new Map<string, tf.Tensor>();
  try {
    return await new TrainingRun(model, data, settings, optimizer, steps, bestWeights).run();
  } finally {
    steps.dispose();
    optimizer.dispose();
    tf.dispose([...bestWeights.values()]);
  }
}

class TrainingRun<B> {
  private readonly schedule: CosineAnnealingWarmRestarts;
  private readonly rng: Rng;
  private state: TrainerState;
  private samplesThisRun = 0;
  private startedAt = 0;

  constructor(
    private readonly model: TrainableModel<B>,
    private readonly data: { train: TrainingSource<B>; validation?: TrainingSource<B> },
    private readonly settings: ResolvedOptions,
    private readonly optimizer: AdamW,
    private readonly steps: TrainingSteps,
    private readonly bestWeights: Map<string, tf.Tensor>,
  ) {
    this.schedule = new CosineAnnealingWarmRestarts({
      baseLr: settings.lr, t0: settings.t0, tMult: settings.tMult, etaMin: settings.etaMin,
    });
    this.rng = new Rng(settings.seed);
    this.optimizer.lr = this.schedule.lr;
    this.state = {
      format: 'more-ts-trainer', version: 1, epoch: 0, batchInEpoch: 0, batchesSeen: 0, optimizerSteps: 0,
      rng: this.rng.getState(), schedule: this.schedule.getState(), lr: this.schedule.lr,
      epochLossSum: 0, epochLossBatches: 0, bestValidationLoss: null, bestEpoch: null,
      earlyStopping: { bestLoss: null, counter: 0 }, stopReason: null, history: [],
      settings: {
        seed: settings.seed, batchSize: settings.batchSize, accumulationSteps: settings.accumulationSteps,
        shuffle: settings.shuffle, dropLast: settings.dropLast, samples: data.train.size,
      },
    };
  }

  async run(): Promise<TrainResult> {
    const { settings } = this;
    if (settings.runDir !== undefined && settings.resume) this.resume(settings.runDir);
    const ended = this.state.stopReason === 'early-stopped' ||
      (this.state.stopReason === 'completed' && this.state.epoch >= settings.maxEpochs);
    if (ended) {
      log.info(`run in ${settings.runDir} already ended (${this.state.stopReason}); nothing to train`);
      return this.result(this.state.stopReason as StopReason);
    }
    // A completed run resumed with a larger maxEpochs trains on.
    this.state.stopReason = null;

    const train = this.data.train;
    const batchesPerEpoch = isEpochBatchSource<B>(train)
      ? train.batchesPerEpoch
      : splitBatches(epochOrder(train.size, 0, 0, false), settings.batchSize, settings.dropLast).length;
    if (batchesPerEpoch === 0) {
      throw new Error(`The training set has ${this.data.train.size} samples, fewer than one batch of ${settings.batchSize} ` +
        '(with dropLast); lower batchSize or set dropLast to false');
    }
    settings.progress.start(settings.label, settings.maxEpochs * batchesPerEpoch, 'batch');
    this.startedAt = performance.now();
    let stopReason: StopReason = 'completed';
    try {
      while (this.state.epoch < settings.maxEpochs) {
        const finished = await this.trainEpoch();
        if (!finished) {
          stopReason = 'interrupted';
          break;
        }
        if (await this.endEpoch()) {
          stopReason = 'early-stopped';
          break;
        }
      }
    } catch (error) {
      settings.progress.end(`failed: ${(error as Error).message}`);
      throw error;
    }
    if (settings.restoreBest) this.restoreBestWeights();
    const result = this.result(stopReason);
    settings.progress.end(`${stopReason} after ${result.epochsCompleted} epochs, ${result.optimizerSteps} optimiser steps` +
      (result.bestValidationLoss !== null ? `, best validation loss ${result.bestValidationLoss.toFixed(4)} (epoch ${result.bestEpoch})` : ''));
    log.info(`training ${stopReason}: ${result.epochsCompleted} epochs, ${result.optimizerSteps} optimiser steps`);
    return result;
  }

  private result(stopReason: StopReason): TrainResult {
    return {
      stopReason,
      epochsCompleted: this.state.history.length,
      optimizerSteps: this.state.optimizerSteps,
      bestValidationLoss: this.state.bestValidationLoss,
      bestEpoch: this.state.bestEpoch,
      history: [...this.state.history],
    };
  }

  private resume(runDir: string): void {
    if (readCheckpointIndex(runDir).latest === null) return;
    const folder = resolveTrainingCheckpoint(runDir, 'latest') as string;
    const checkpoint: LoadedTrainingCheckpoint<TrainerState> = loadTrainingCheckpoint<TrainerState>(folder);
    try {
      const saved = checkpoint.trainer;
      if (saved.format !== 'more-ts-trainer' || saved.version !== 1) {
        throw new Error(`${folder}: trainer.json is not a more-ts trainer state (format "${saved.format}", version ${saved.version})`);
      }
      const current = this.state.settings;
      for (const key of Object.keys(current) as (keyof TrainerState['settings'])[]) {
        if (saved.settings[key] !== current[key]) {
          throw new Error(`Cannot resume from ${folder}: it was saved with ${key}=${saved.settings[key]}, ` +
            `this run has ${key}=${current[key]}; use the same value or a new runDir`);
        }
      }
      restoreWeights(this.model.namedWeights(), checkpoint.weights, folder);
      this.optimizer.setState(checkpoint.optimizer);
      this.schedule.setState(saved.schedule);
      this.rng.setState(saved.rng);
      this.optimizer.lr = saved.lr;
      this.state = { ...saved, history: [...saved.history] };
      log.info(`resumed from ${folder}: epoch ${saved.epoch}, batch ${saved.batchInEpoch}, ${saved.optimizerSteps} optimiser steps`);
    } finally {
      disposeTrainingCheckpoint(checkpoint);
    }
  }

  /** Trains the rest of the current epoch; returns false when an interrupt stopped it. */
  private async trainEpoch(): Promise<boolean> {
    const { settings, state } = this;
    const source = this.data.train;
    const stream = isEpochBatchSource<B>(source) ? this.streamedBatches(source) : this.indexedBatches(source);
    try {
      for (;;) {
        // pollInterrupt yields one event-loop turn, so a SIGINT sent by Jupyter reaches the kernel's handler.
        if (await pollInterrupt()) {
          log.info(`interrupt requested: stopping at epoch ${state.epoch}, batch ${state.batchInEpoch}; the latest checkpoint is unchanged`);
          return false;
        }
        const next = await stream.next();
        if (next.done === true) break;
        const { batch, samples, index: b, last: lastOfEpoch, count } = next.value;

        const context: BatchContext = { training: true, seed: this.rng.nextUint32() };
        let lossTensor: tf.Scalar;
        try {
          lossTensor = this.steps.accumulate(batch, {
            prepare: () => this.model.prepareBatch?.(context, batch),
            loss: () => this.model.batchLoss(batch, context),
            layout: this.model.batchLayout === undefined ? undefined : () => this.model.batchLayout?.(batch),
          });
        } finally {
          this.disposeBatch(source, batch);
        }
        const loss = (await lossTensor.data())[0];
        lossTensor.dispose();
        if (!Number.isFinite(loss)) {
          // The accumulators contain this batch's gradients too, but nothing applies or saves them.
          throw new TrainingDivergedError(`Training loss is ${loss} at epoch ${state.epoch}, batch ${b} ` +
            `(optimiser step ${state.optimizerSteps}); stopped without writing a checkpoint. ` +
            'Lower the learning rate or check the batch for invalid values.');
        }
        state.batchesSeen += 1;
        state.epochLossSum += loss;
        state.epochLossBatches += 1;
        this.samplesThisRun += samples;

        if (this.steps.accumulatedBatches === settings.accumulationSteps || lastOfEpoch) {
          this.steps.apply();
          state.optimizerSteps += 1;
          if (settings.scheduleStep === 'batch') {
            this.optimizer.lr = this.schedule.step(state.epoch + Math.min((b + 1) / count, 1));
          }
        }
        state.batchInEpoch = b + 1;
        this.report(b, loss);

        const stepCheckpoint = settings.checkpointEverySteps > 0 && this.steps.accumulatedBatches === 0 &&
          state.optimizerSteps % settings.checkpointEverySteps === 0 && !lastOfEpoch;
        if (stepCheckpoint && settings.runDir !== undefined) await this.writeCheckpoint({});
      }
    } finally {
      await stream.return(undefined);
    }
    return true;
  }

  /** Loads the remaining batches of the epoch from an index-addressed source, in the run's order. */
  private async *indexedBatches(source: BatchSource<B>): AsyncGenerator<EpochItem<B>, void> {
    const { settings, state } = this;
    const order = epochOrder(source.size, state.epoch, settings.seed, settings.shuffle);
    const batches = splitBatches(order, settings.batchSize, settings.dropLast);
    for (let b = state.batchInEpoch; b < batches.length; b++) {
      const batch = await source.loadBatch(batches[b], this.rng);
      yield { batch, samples: batches[b].length, index: b, last: b + 1 === batches.length, count: batches.length };
    }
  }

  /**
   * Yields the remaining batches of the epoch from a source that yields
   * epochs, reading one batch ahead to know which one is the last. Batches
   * before `batchInEpoch` (a resume inside the epoch) are read and discarded.
   */
  private async *streamedBatches(source: EpochBatchSource<B>): AsyncGenerator<EpochItem<B>, void> {
    const { state } = this;
    const iterable = source.epochBatches(state.epoch);
    const iterator: AsyncIterator<SizedBatch<B>> | Iterator<SizedBatch<B>> = Symbol.asyncIterator in iterable
      ? (iterable as AsyncIterable<SizedBatch<B>>)[Symbol.asyncIterator]()
      : (iterable as Iterable<SizedBatch<B>>)[Symbol.iterator]();
    const skip = state.batchInEpoch;
    if (skip > 0) log.info(`resuming inside epoch ${state.epoch}: reading and discarding its first ${skip} batches`);
    let lookahead: IteratorResult<SizedBatch<B>> | undefined;
    try {
      let current = await iterator.next();
      for (let index = 0; current.done !== true; index++) {
        lookahead = await iterator.next();
        const { batch, samples } = current.value;
        if (index < skip) {
          this.disposeBatch(source, batch);
        } else {
          yield { batch, samples, index, last: lookahead.done === true, count: source.batchesPerEpoch };
        }
        current = lookahead;
        lookahead = undefined;
      }
    } finally {
      // A batch read ahead but never handed out is still ours to free.
      if (lookahead !== undefined && lookahead.done !== true) this.disposeBatch(source, lookahead.value.batch);
      await iterator.return?.();
    }
  }

  private report(batch: number, loss: number): void {
    const { state, settings } = this;
    const seconds = (performance.now() - this.startedAt) / 1000;
    const metrics: Record<string, number> = { epoch: state.epoch + 1, loss, lr: this.optimizer.lr };
    const temperature = this.model.temperature?.();
    if (temperature !== undefined) metrics.temperature = temperature;
    metrics.samples_per_s = seconds > 0 ? this.samplesThisRun / seconds : 0;
    settings.progress.update({ done: state.batchesSeen, metrics });
    settings.onBatchEnd?.({
      epoch: state.epoch, batch, batchesSeen: state.batchesSeen, optimizerSteps: state.optimizerSteps,
      loss, lr: this.optimizer.lr,
    });
  }

  private async validate(): Promise<number | null> {
    const source = this.data.validation;
    if (source === undefined) return null;
    let sum = 0;
    let count = 0;
    const addBatch = async (batch: B): Promise<void> => {
      let lossTensor: tf.Scalar;
      try {
        lossTensor = tf.tidy(() => this.model.batchLoss(batch, { training: false, seed: 0 }));
      } finally {
        this.disposeBatch(source, batch);
      }
      sum += (await lossTensor.data())[0];
      lossTensor.dispose();
      count += 1;
    };
    if (isEpochBatchSource<B>(source)) {
      for await (const { batch } of source.epochBatches(0)) await addBatch(batch);
    } else {
      const batches = splitBatches(epochOrder(source.size, 0, 0, false), this.settings.batchSize, false);
      for (const indices of batches) {
        // Validation batches draw from their own generator so that validating leaves the run's generator untouched.
        await addBatch(await source.loadBatch(indices, new Rng(this.settings.seed)));
      }
    }
    if (count === 0) throw new Error('The validation set is empty; pass no validation set instead');
    return sum / count;
  }

  /** Validates, steps the schedule, updates early stopping and writes checkpoints; returns true to stop early. */
  private async endEpoch(): Promise<boolean> {
    const { state, settings } = this;
    const trainLoss = state.epochLossSum / Math.max(state.epochLossBatches, 1);
    const validationLoss = await this.validate();
    if (validationLoss !== null && !Number.isFinite(validationLoss)) {
      throw new TrainingDivergedError(`Validation loss is ${validationLoss} after epoch ${state.epoch}; ` +
        'stopped without writing a checkpoint. Lower the learning rate or check the validation data.');
    }
    if (settings.scheduleStep === 'epoch') this.optimizer.lr = this.schedule.step();

    // Without validation data the training loss drives early stopping and the best checkpoint.
    const monitored = validationLoss ?? trainLoss;
    const stopping = state.earlyStopping;
    let stop = false;
    if (stopping.bestLoss === null || monitored < stopping.bestLoss - settings.minDelta) {
      stopping.bestLoss = monitored;
      stopping.counter = 0;
    } else {
      stopping.counter += 1;
      stop = stopping.counter >= settings.patience;
    }
    const improved = state.bestValidationLoss === null || monitored < state.bestValidationLoss;
    if (improved) {
      state.bestValidationLoss = monitored;
      state.bestEpoch = state.epoch;
      // With a run folder the best checkpoint contains these weights, so no copy stays in memory.
      if (settings.restoreBest && settings.runDir === undefined) this.keepBestWeights();
    }

    const record: EpochRecord = { epoch: state.epoch, trainLoss, validationLoss, lr: this.optimizer.lr, improved };
    state.history.push(record);
    log.info(`epoch ${state.epoch + 1}: train loss ${trainLoss.toFixed(4)}` +
      `${validationLoss !== null ? `, validation loss ${validationLoss.toFixed(4)}` : ''}, lr ${this.optimizer.lr.toExponential(3)}`);
    state.epoch += 1;
    state.batchInEpoch = 0;
    state.epochLossSum = 0;
    state.epochLossBatches = 0;
    if (stop) {
      state.stopReason = 'early-stopped';
      log.info(`early stopping: no improvement for ${settings.patience} epochs; best loss ${state.bestValidationLoss?.toFixed(4)} at epoch ${(state.bestEpoch ?? 0) + 1}`);
    } else if (state.epoch >= settings.maxEpochs) {
      state.stopReason = 'completed';
    }

    if (settings.runDir !== undefined) {
      const keep = settings.checkpointEveryEpochs > 0 && state.epoch % settings.checkpointEveryEpochs === 0;
      await this.writeCheckpoint({ best: improved, keep });
    }
    settings.onEpochEnd?.(record);
    return stop;
  }

  /** Loads the best epoch's weights: from the best checkpoint with a run folder, else from memory. */
  private restoreBestWeights(): void {
    const runDir = this.settings.runDir;
    const bestFolder = runDir !== undefined ? resolveTrainingCheckpoint(runDir, 'best') : null;
    if (bestFolder !== null) {
      const checkpoint = loadTrainingCheckpoint<TrainerState>(bestFolder);
      try {
        restoreWeights(this.model.namedWeights(), checkpoint.weights, bestFolder);
      } finally {
        disposeTrainingCheckpoint(checkpoint);
      }
      log.info(`restored the best weights from ${bestFolder} (epoch ${(this.state.bestEpoch ?? 0) + 1})`);
    } else if (this.bestWeights.size > 0) {
      restoreWeights(this.model.namedWeights(), this.bestWeights, 'in-memory best weights');
    }
  }

  private keepBestWeights(): void {
    tf.dispose([...this.bestWeights.values()]);
    this.bestWeights.clear();
    for (const [name, variable] of this.model.namedWeights()) this.bestWeights.set(name, variable.clone());
  }

  private async writeCheckpoint(roles: { best?: boolean; keep?: boolean }): Promise<void> {
    const runDir = this.settings.runDir as string;
    this.state.rng = this.rng.getState();
    this.state.schedule = this.schedule.getState();
    this.state.lr = this.optimizer.lr;
    const optimizerState: AdamWState = this.optimizer.getState();
    try {
      const name = `step-${String(this.state.optimizerSteps).padStart(8, '0')}`;
      await saveTrainingCheckpoint(runDir, name, {
        weights: this.model.namedWeights(), optimizer: optimizerState, trainer: this.state,
      }, roles, { delayMs: this.settings.checkpointWriteDelayMs });
      log.debug(`checkpoint ${name} written (${[roles.best ? 'best' : '', roles.keep ? 'kept' : ''].filter(Boolean).join(', ') || 'latest'})`);
    } finally {
      tf.dispose(Object.values(optimizerState.tensors));
    }
  }

  private disposeBatch(source: TrainingSource<B>, batch: B): void {
    if (source.disposeBatch !== undefined) source.disposeBatch(batch);
    else tf.dispose(batch as unknown as tf.TensorContainer);
  }
}
