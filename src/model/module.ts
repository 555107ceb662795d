/**
 * A small module tree in the manner of `torch.nn.Module`: each module owns
 * named variables and named children, so the full names (`blocks.0.attn.qkv.weight`)
 * match a PyTorch `state_dict` and checkpoints load by name without a map.
 */
import * as tf from '@tensorflow/tfjs';

import type { LoadWeightsOptions, LoadWeightsReport, WeightOwner } from './types';

export abstract class Module implements WeightOwner {
  private readonly ownWeights = new Map<string, tf.Variable>();
  private readonly children = new Map<string, Module>();
  private disposed = false;

  /** Registers a variable under `name`. Buffers such as running statistics pass `trainable` false. */
  protected addWeight<R extends tf.Rank>(name: string, initial: tf.Tensor<R>, trainable = true): tf.Variable<R> {
    if (this.ownWeights.has(name) || this.children.has(name)) {
      throw new Error(`Duplicate weight name "${name}" in ${this.constructor.name}`);
    }
    // tf.variable copies the data, so the initial tensor is freed here. Names are left to
    // tfjs (which needs them globally unique); ours live in the map.
    const variable = tf.variable(initial, trainable);
    initial.dispose();
    this.ownWeights.set(name, variable);
    return variable;
  }

  /** Registers a child module whose weights appear under `name.`. */
  protected addChild<M extends Module>(name: string, child: M): M {
    if (this.ownWeights.has(name) || this.children.has(name)) {
      throw new Error(`Duplicate child name "${name}" in ${this.constructor.name}`);
    }
    this.children.set(name, child);
    return child;
  }

  namedWeights(): Map<string, tf.Variable> {
    const result = new Map<string, tf.Variable>();
    for (const [name, variable] of this.ownWeights) result.set(name, variable);
    for (const [prefix, child] of this.children) {
      for (const [name, variable] of child.namedWeights()) result.set(`${prefix}.${name}`, variable);
    }
    return result;
  }

  trainableVariables(): tf.Variable[] {
    return [...this.namedWeights().values()].filter((variable) => variable.trainable);
  }

  /** Number of trainable scalars. */
  parameterCount(): number {
    return this.trainableVariables().reduce((sum, variable) => sum + variable.size, 0);
  }

  loadNamedWeights(weights: Map<string, tf.Tensor>, options: LoadWeightsOptions = {}): LoadWeightsReport {
    return loadInto(this.namedWeights(), weights, options, this.constructor.name);
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const variable of this.ownWeights.values()) variable.dispose();
    for (const child of this.children.values()) child.dispose();
  }
}

/**
 * Copies `weights` into `targets` after checking every name and shape, so a
 * failed load changes nothing. `owner` names the receiver in messages.
 */
export function loadInto(
  targets: Map<string, tf.Variable>,
  weights: Map<string, tf.Tensor>,
  options: LoadWeightsOptions,
  owner: string,
): LoadWeightsReport {
  const strict = options.strict ?? true;
  const missing = [...targets.keys()].filter((name) => !weights.has(name));
  const unexpected = [...weights.keys()].filter((name) => !targets.has(name));
  if (strict && (missing.length > 0 || unexpected.length > 0)) {
    throw new Error(
      `Weights do not match ${owner}: ` +
        `missing ${missing.length} (${listSome(missing)}), unexpected ${unexpected.length} (${listSome(unexpected)}). ` +
        'Pass { strict: false } to load the names that match.',
    );
  }
  const mismatched: string[] = [];
  for (const [name, target] of targets) {
    const source = weights.get(name);
    if (source !== undefined && !tf.util.arraysEqual(source.shape, target.shape)) {
      mismatched.push(`${name}: expected [${target.shape.join(', ')}], got [${source.shape.join(', ')}]`);
    }
  }
  if (mismatched.length > 0) {
    throw new Error(`Weight shapes do not match ${owner}: ${mismatched.join('; ')}`);
  }
  const loaded: string[] = [];
  for (const [name, target] of targets) {
    const source = weights.get(name);
    if (source === undefined) continue;
    // tidy frees the cast copy; the variable keeps its own reference to the data.
    tf.tidy(() => target.assign(source.dtype === target.dtype ? source : tf.cast(source, target.dtype)));
    loaded.push(name);
  }
  return { loaded, missing, unexpected };
}

function listSome(names: string[]): string {
  if (names.length === 0) return 'none';
  const shown = names.slice(0, 8).join(', ');
  return names.length > 8 ? `${shown}, ...` : shown;
}
