/**
 * Training checkpoints on disk. A checkpoint folder contains the model weights
 * (`model.safetensors`), the optimiser state (`optimizer.safetensors`, with
 * the step count and hyper-parameters in its metadata) and the trainer state
 * (`trainer.json`).
 *
 * Layout of a run folder:
 *
 *     checkpoints.json      index: which folder is the latest, the best, the kept ones
 *     step-00000040/        one folder per saved optimiser step
 *     ...
 *
 * A checkpoint is written into a hidden temporary folder, flushed and renamed
 * to `step-<n>`, and only then does an atomic rewrite of `checkpoints.json`
 * make it current. A process killed at any moment therefore leaves the index
 * naming complete folders only. Folders the index no longer names are removed
 * after the index is written.
 */
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { encodeSafetensors, readSafetensors, TensorToWrite } from '../../model/safetensors';
import { writeFileAtomic } from '../../util/atomic';
import { getLogger } from '../../util/log';
import { AdamWState } from '../optim';

const log = getLogger('tasks.train.checkpoint');

export const TRAINING_CHECKPOINT_INDEX = 'checkpoints.json';
export const TRAINING_MODEL_FILE = 'model.safetensors';
export const TRAINING_OPTIMIZER_FILE = 'optimizer.safetensors';
export const TRAINING_STATE_FILE = 'trainer.json';

/** `checkpoints.json`: folder names (relative to the run folder) by role. */
export interface CheckpointIndex {
  format: 'more-ts-checkpoints';
  version: 1;
  /** The most recent checkpoint, the one a resumed run starts from. */
  latest: string | null;
  /** The checkpoint with the lowest validation loss so far. */
  best: string | null;
  /** Checkpoints kept for good (the periodic ones), oldest first. */
  kept: string[];
}

/** Roles of a checkpoint being written besides the latest, which it always becomes. */
export interface CheckpointRoles {
  best?: boolean;
  keep?: boolean;
}

/** One checkpoint read back; the caller disposes the tensors (see {@link disposeTrainingCheckpoint}). */
export interface LoadedTrainingCheckpoint<S> {
  folder: string;
  weights: Map<string, tf.Tensor>;
  optimizer: AdamWState;
  trainer: S;
}

/** Test hook: a pause after each file of a checkpoint, so a test can kill the writer mid-write. */
export interface TrainingCheckpointWriteOptions {
  delayMs?: number;
}

function emptyIndex(): CheckpointIndex {
  return { format: 'more-ts-checkpoints', version: 1, latest: null, best: null, kept: [] };
}

/** Reads `checkpoints.json` of a run folder; a folder without one has no checkpoints. */
export function readCheckpointIndex(runDir: string): CheckpointIndex {
  const file = path.join(runDir, TRAINING_CHECKPOINT_INDEX);
  if (!fs.existsSync(file)) return emptyIndex();
  let parsed: unknown;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`${file}: invalid JSON (${(error as Error).message})`);
  }
  const index = parsed as Partial<CheckpointIndex>;
  if (index.format !== 'more-ts-checkpoints' || index.version !== 1 || !Array.isArray(index.kept)) {
    throw new Error(`${file}: not a more-ts checkpoint index (expected format "more-ts-checkpoints", version 1)`);
  }
  return { format: index.format, version: index.version, latest: index.latest ?? null, best: index.best ?? null, kept: index.kept };
}

// Integer tensors (counters such as BatchNorm's batch count) are stored as F32, which represents
// integers up to 2^24 exactly; the trainer casts them back to the variable's dtype on load.
async function tensorToWrite(tensor: tf.Tensor, name: string): Promise<TensorToWrite> {
  if (tensor.dtype !== 'float32' && tensor.dtype !== 'int32') {
    throw new Error(`Cannot save "${name}": dtype ${tensor.dtype}, expected float32 or int32`);
  }
  const values = await tensor.data();
  const data = values instanceof Float32Array ? values : Float32Array.from(values as Int32Array);
  return { dtype: 'F32', shape: [...tensor.shape], data };
}

function writeFlushed(file: string, data: string | Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, typeof data === 'string' ? Buffer.from(data, 'utf8') : data);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function fsyncDirectory(dir: string): void {
  const fd = fs.openSync(dir, 'r');
  try {
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function pause(ms: number | undefined): Promise<void> {
  return ms !== undefined && ms > 0 ? new Promise((resolve) => setTimeout(resolve, ms)) : Promise.resolve();
}

/**
 * Writes a checkpoint named `name` (for example `step-00000040`) into
 * `runDir` and makes it the latest, plus the best or a kept one as `roles`
 * requests. Then it removes folders that no role names any more. The
 * tensors stay owned by the caller.
 */
export async function saveTrainingCheckpoint(
  runDir: string,
  name: string,
  content: { weights: Map<string, tf.Tensor>; optimizer: AdamWState; trainer: object },
  roles: CheckpointRoles = {},
  options: TrainingCheckpointWriteOptions = {},
): Promise<void> {
  if (!/^[A-Za-z0-9_.-]+$/.test(name) || name.startsWith('.')) {
    throw new Error(`Invalid checkpoint name "${name}": expected letters, digits, '_', '-' or '.', not starting with '.'`);
  }
  fs.mkdirSync(runDir, { recursive: true });
  const temporary = path.join(runDir, `.tmp-${name}-${process.pid}-${Date.now()}`);
  fs.mkdirSync(temporary);

  try {
    const weights: Record<string, TensorToWrite> = {};
    for (const [weightName, tensor] of content.weights) weights[weightName] = await tensorToWrite(tensor, weightName);
    writeFlushed(path.join(temporary, TRAINING_MODEL_FILE), encodeSafetensors(weights, { format: 'pt' }));
    await pause(options.delayMs);

    const { tensors, ...hyper } = content.optimizer;
    const moments: Record<string, TensorToWrite> = {};
    for (const [momentName, tensor] of Object.entries(tensors)) moments[momentName] = await tensorToWrite(tensor, momentName);
    writeFlushed(path.join(temporary, TRAINING_OPTIMIZER_FILE), encodeSafetensors(moments, { adamw: JSON.stringify(hyper) }));
    await pause(options.delayMs);

    writeFlushed(path.join(temporary, TRAINING_STATE_FILE), `${JSON.stringify(content.trainer, null, 1)}\n`);
    fsyncDirectory(temporary);
    await pause(options.delayMs);

    const target = path.join(runDir, name);
    // A folder of this name can only be a leftover that no index names (a run killed after the
    // rename and before the index update, then resumed from an earlier checkpoint).
    const index = readCheckpointIndex(runDir);
    if (fs.existsSync(target)) {
      if (index.latest === name || index.best === name || index.kept.includes(name)) {
        throw new Error(`Checkpoint ${target} already exists and is in use, so it was not overwritten`);
      }
      fs.rmSync(target, { recursive: true, force: true });
    }
    fs.renameSync(temporary, target);
    fsyncDirectory(runDir);
    await pause(options.delayMs);

    index.latest = name;
    if (roles.best === true) index.best = name;
    if (roles.keep === true && !index.kept.includes(name)) index.kept.push(name);
    writeFileAtomic(path.join(runDir, TRAINING_CHECKPOINT_INDEX), `${JSON.stringify(index, null, 1)}\n`);
  } catch (error) {
    fs.rmSync(temporary, { recursive: true, force: true });
    throw error;
  }
  removeUnusedCheckpoints(runDir);
}

/** Deletes checkpoint folders and temporary folders that `checkpoints.json` does not name. */
export function removeUnusedCheckpoints(runDir: string): void {
  const index = readCheckpointIndex(runDir);
  const used = new Set([index.latest, index.best, ...index.kept].filter((entry): entry is string => entry !== null));
  for (const entry of fs.readdirSync(runDir, { withFileTypes: true })) {
    if (!entry.isDirectory() || used.has(entry.name)) continue;
    const ours = /^step-\d+$/.test(entry.name) || entry.name.startsWith('.tmp-');
    if (!ours) continue;
    // A temporary folder of another live process in the same run folder is not ours to delete.
    const owner = /^\.tmp-.*-(\d+)-\d+$/.exec(entry.name);
    if (owner !== null && Number(owner[1]) !== process.pid && processAlive(Number(owner[1]))) continue;
    fs.rmSync(path.join(runDir, entry.name), { recursive: true, force: true });
    log.debug(`removed unused checkpoint folder ${entry.name}`);
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Resolves a role (`latest`, `best`) or a folder name to a checkpoint folder, or null when the role is unset. */
export function resolveTrainingCheckpoint(runDir: string, which: 'latest' | 'best' | string): string | null {
  if (which === 'latest' || which === 'best') {
    const name = readCheckpointIndex(runDir)[which];
    return name === null ? null : path.join(runDir, name);
  }
  return path.join(runDir, which);
}

/** Reads a checkpoint folder: weights, optimiser state and the trainer state JSON. */
export function loadTrainingCheckpoint<S>(folder: string): LoadedTrainingCheckpoint<S> {
  for (const file of [TRAINING_MODEL_FILE, TRAINING_OPTIMIZER_FILE, TRAINING_STATE_FILE]) {
    if (!fs.existsSync(path.join(folder, file))) {
      throw new Error(`Checkpoint ${folder} is incomplete: ${file} not found`);
    }
  }
  const trainerFile = path.join(folder, TRAINING_STATE_FILE);
  let trainer: S;
  try {
    trainer = JSON.parse(fs.readFileSync(trainerFile, 'utf8')) as S;
  } catch (error) {
    throw new Error(`${trainerFile}: invalid JSON (${(error as Error).message})`);
  }

  const optimizerFile = path.join(folder, TRAINING_OPTIMIZER_FILE);
  const optimizerRead = readSafetensors(optimizerFile);
  const hyperText = optimizerRead.metadata.adamw;
  if (hyperText === undefined) throw new Error(`${optimizerFile}: metadata "adamw" not found; not a more-ts optimiser state`);
  const hyper = JSON.parse(hyperText) as Omit<AdamWState, 'tensors'>;
  const weightsRead = readSafetensors(path.join(folder, TRAINING_MODEL_FILE));

  const weights = new Map<string, tf.Tensor>();
  for (const [name, decoded] of weightsRead.tensors) weights.set(name, tf.tensor(decoded.data, decoded.shape, 'float32'));
  const tensors: Record<string, tf.Tensor> = {};
  for (const [name, decoded] of optimizerRead.tensors) tensors[name] = tf.tensor(decoded.data, decoded.shape, 'float32');
  return { folder, weights, optimizer: { ...hyper, tensors }, trainer };
}

export function disposeTrainingCheckpoint(checkpoint: LoadedTrainingCheckpoint<unknown>): void {
  tf.dispose([...checkpoint.weights.values()]);
  tf.dispose(Object.values(checkpoint.optimizer.tensors));
}
