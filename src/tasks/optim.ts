/**
 * AdamW (Loshchilov and Hutter, "Decoupled Weight Decay Regularization",
 * ICLR 2019) with the update order of `torch.optim.AdamW` (PyTorch 2.x,
 * single-tensor path): decay the weights by `1 - lr * weightDecay`, update the
 * first and second moments, then take a bias-corrected step
 * `lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)`.
 * The state (step count and moments) can be saved and restored by name.
 */
import * as tf from '@tensorflow/tfjs';

import { traceFeed } from '../backend/graph/trace';

export interface AdamWOptions {
  /** Learning rate. Default 1e-3, as in PyTorch. The trainer passes its own. */
  lr?: number;
  /** Decay rates of the first and second moment estimates. Default [0.9, 0.999]. */
  betas?: [number, number];
  /** Term added to the denominator for numerical stability. Default 1e-8. */
  eps?: number;
  /** Decoupled weight decay coefficient. Default 0.01, as in PyTorch. */
  weightDecay?: number;
  /** Use the maximum of past second moments (AMSGrad). Default false. */
  amsgrad?: boolean;
}

/** A trainable variable under the name its optimiser state is saved with. */
export interface NamedVariable {
  name: string;
  variable: tf.Variable;
}

/** Saved optimiser state: hyper-parameters, step counts and one tensor per moment. */
export interface AdamWState {
  /** Number of {@link AdamW.step} calls. */
  step: number;
  /**
   * Updates each variable has received (PyTorch's per-parameter `state['step']`);
   * it lags behind `step` for a variable that had no gradient at some step.
   */
  variableSteps: Record<string, number>;
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  /** Moments keyed `<variable name>.exp_avg`, `.exp_avg_sq` and, with AMSGrad, `.max_exp_avg_sq`. */
  tensors: Record<string, tf.Tensor>;
}

interface Slot {
  name: string;
  variable: tf.Variable;
  /** Updates this variable has received, which its bias correction uses. */
  steps: number;
  expAvg: tf.Variable;
  expAvgSq: tf.Variable;
  maxExpAvgSq?: tf.Variable;
}

const MOMENT_KEYS = ['exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'] as const;

export class AdamW {
  /** Learning rate of the next {@link step}. A schedule sets it between steps. */
  lr: number;
  readonly betas: [number, number];
  readonly eps: number;
  readonly weightDecay: number;
  readonly amsgrad: boolean;
  private stepCount = 0;
  private readonly slots: Slot[];
  private readonly slotByName = new Map<string, Slot>();
  private disposed = false;

  constructor(variables: NamedVariable[], options: AdamWOptions = {}) {
    const { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 0.01, amsgrad = false } = options;
    checkRange('lr', lr, 0, Infinity);
    checkRange('betas[0]', betas[0], 0, 1);
    checkRange('betas[1]', betas[1], 0, 1);
    checkRange('eps', eps, 0, Infinity);
    checkRange('weightDecay', weightDecay, 0, Infinity);
    this.lr = lr;
    this.betas = [betas[0], betas[1]];
    this.eps = eps;
    this.weightDecay = weightDecay;
    this.amsgrad = amsgrad;

    this.slots = variables.map(({ name, variable }) => {
      if (this.slotByName.has(name)) {
        throw new Error(`Duplicate variable name "${name}": each optimised variable needs a unique name`);
      }
      if (variable.dtype !== 'float32') {
        throw new Error(`Variable "${name}" has dtype ${variable.dtype}: AdamW expects float32 variables`);
      }
      const slot: Slot = {
        name,
        variable,
        steps: 0,
        expAvg: zerosVariable(variable),
        expAvgSq: zerosVariable(variable),
        maxExpAvgSq: amsgrad ? zerosVariable(variable) : undefined,
      };
      this.slotByName.set(name, slot);
      return slot;
    });
  }

  /** Number of steps taken so far (PyTorch's `state['step']`). */
  get steps(): number {
    return this.stepCount;
  }

  /** Names of the optimised variables, in the order given to the constructor. */
  get variableNames(): string[] {
    return this.slots.map((slot) => slot.name);
  }

  /**
   * Applies one update. `gradients` maps variable names to gradients; a
   * variable without a gradient is left untouched, its moments included, as
   * PyTorch skips parameters whose `.grad` is None. The caller keeps
   * ownership of the gradient tensors.
   */
  step(gradients: Map<string, tf.Tensor> | Record<string, tf.Tensor>): void {
    this.checkUsable();
    const byName = gradients instanceof Map ? gradients : new Map(Object.entries(gradients));
    for (const name of byName.keys()) {
      if (!this.slotByName.has(name)) {
        throw new Error(`Gradient for unknown variable "${name}": expected one of the ${this.slots.length} optimised variables`);
      }
    }
    const updated = this.slots.filter((slot) => byName.has(slot.name));
    for (const slot of updated) {
      const gradient = byName.get(slot.name) as tf.Tensor;
      if (!arraysEqual(gradient.shape, slot.variable.shape)) {
        throw new Error(`Gradient for "${slot.name}" has shape [${gradient.shape}], expected [${slot.variable.shape}]`);
      }
    }
    const [beta1, beta2] = this.betas;
    // The numbers that change every step enter as one tensor. A compiled graph
    // feeds it afresh on each replay, which advances the step counts.
    const scalars = traceFeed(tf.tensor1d(this.advance(updated)), () => tf.tensor1d(this.advance(updated)));
    tf.tidy(() => {
      const [decay, ...perSlot] = tf.unstack(scalars);
      updated.forEach((slot, index) => {
        const gradient = byName.get(slot.name) as tf.Tensor;
        const stepSize = perSlot[2 * index];
        const biasCorrection2Sqrt = perSlot[2 * index + 1];
        const weights = this.weightDecay !== 0 ? slot.variable.mul(decay) : slot.variable;
        const expAvg = slot.expAvg.add(gradient.sub(slot.expAvg).mul(1 - beta1));
        const expAvgSq = slot.expAvgSq.mul(beta2).add(gradient.square().mul(1 - beta2));
        slot.expAvg.assign(expAvg);
        slot.expAvgSq.assign(expAvgSq);
        let second: tf.Tensor = expAvgSq;
        if (slot.maxExpAvgSq !== undefined) {
          second = tf.maximum(slot.maxExpAvgSq, expAvgSq);
          slot.maxExpAvgSq.assign(second);
        }
        const denominator = second.sqrt().div(biasCorrection2Sqrt).add(this.eps);
        slot.variable.assign(weights.sub(expAvg.div(denominator).mul(stepSize)));
      });
    });
    scalars.dispose();
  }

  /**
   * Counts one step for the optimiser and for each of `updated`. Returns the
   * step's numbers in double precision: the decay factor `1 - lr * weightDecay`,
   * then per slot the step size `lr / (1 - beta1^t)` and `sqrt(1 - beta2^t)`.
   */
  private advance(updated: readonly Slot[]): number[] {
    const [beta1, beta2] = this.betas;
    this.stepCount += 1;
    const values = [1 - this.lr * this.weightDecay];
    for (const slot of updated) {
      slot.steps += 1;
      values.push(this.lr / (1 - beta1 ** slot.steps), Math.sqrt(1 - beta2 ** slot.steps));
    }
    return values;
  }

  /**
   * Returns the state. The tensors are copies owned by the caller (dispose
   * them), so the state stays valid while training goes on.
   */
  getState(): AdamWState {
    this.checkUsable();
    const tensors: Record<string, tf.Tensor> = {};
    for (const slot of this.slots) {
      tensors[`${slot.name}.exp_avg`] = slot.expAvg.clone();
      tensors[`${slot.name}.exp_avg_sq`] = slot.expAvgSq.clone();
      if (slot.maxExpAvgSq !== undefined) tensors[`${slot.name}.max_exp_avg_sq`] = slot.maxExpAvgSq.clone();
    }
    return {
      step: this.stepCount,
      variableSteps: Object.fromEntries(this.slots.map((slot) => [slot.name, slot.steps])),
      lr: this.lr,
      betas: [...this.betas],
      eps: this.eps,
      weightDecay: this.weightDecay,
      amsgrad: this.amsgrad,
      tensors,
    };
  }

  /**
   * Restores a state saved by {@link getState}. Every optimised variable must
   * have its moments in the state with matching shapes, and the state may not
   * name variables this optimiser does not have. The caller keeps ownership of
   * the state's tensors.
   */
  setState(state: AdamWState): void {
    this.checkUsable();
    if (!Number.isInteger(state.step) || state.step < 0) {
      throw new Error(`Invalid optimiser state: step ${state.step} is not a non-negative integer`);
    }
    if (state.amsgrad !== this.amsgrad) {
      throw new Error(`Optimiser state was saved with amsgrad=${state.amsgrad}, but this optimiser has amsgrad=${this.amsgrad}`);
    }
    const expected = new Set<string>();
    for (const slot of this.slots) {
      for (const key of MOMENT_KEYS) {
        if (key === 'max_exp_avg_sq' && !this.amsgrad) continue;
        const tensorName = `${slot.name}.${key}`;
        expected.add(tensorName);
        const tensor = state.tensors[tensorName];
        if (tensor === undefined) {
          throw new Error(`Optimiser state is missing "${tensorName}"; it was saved for a different set of variables`);
        }
        if (!arraysEqual(tensor.shape, slot.variable.shape)) {
          throw new Error(`Optimiser state "${tensorName}" has shape [${tensor.shape}], expected [${slot.variable.shape}]`);
        }
      }
    }
    for (const slot of this.slots) {
      const steps = state.variableSteps?.[slot.name];
      if (!Number.isInteger(steps) || steps < 0 || steps > state.step) {
        throw new Error(`Optimiser state has no valid step count for "${slot.name}" (got ${steps}, expected an integer in [0, ${state.step}])`);
      }
    }
    const unknown = Object.keys(state.tensors).filter((name) => !expected.has(name));
    if (unknown.length > 0) {
      throw new Error(`Optimiser state has tensors for unknown variables: ${unknown.slice(0, 5).join(', ')}` +
        `${unknown.length > 5 ? ` and ${unknown.length - 5} more` : ''}`);
    }
    for (const slot of this.slots) {
      slot.steps = state.variableSteps[slot.name];
      slot.expAvg.assign(state.tensors[`${slot.name}.exp_avg`]);
      slot.expAvgSq.assign(state.tensors[`${slot.name}.exp_avg_sq`]);
      if (slot.maxExpAvgSq !== undefined) slot.maxExpAvgSq.assign(state.tensors[`${slot.name}.max_exp_avg_sq`]);
    }
    this.stepCount = state.step;
    this.lr = state.lr;
  }

  /** Releases the moment variables; the optimised variables stay. */
  dispose(): void {
    if (this.disposed) return;
    for (const slot of this.slots) {
      slot.expAvg.dispose();
      slot.expAvgSq.dispose();
      slot.maxExpAvgSq?.dispose();
    }
    this.disposed = true;
  }

  private checkUsable(): void {
    if (this.disposed) throw new Error('This AdamW optimiser was disposed; build a new one');
  }
}

function checkRange(name: string, value: number, low: number, high: number): void {
  if (!(Number.isFinite(value) && value >= low && value < high)) {
    throw new Error(`Invalid AdamW ${name} ${value}: expected a finite number in [${low}, ${high === Infinity ? 'inf' : high})`);
  }
}

function zerosVariable(like: tf.Variable): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(like), false));
}

function arraysEqual(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, i) => value === b[i]);
}
