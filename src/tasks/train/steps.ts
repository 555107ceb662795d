/**
 * The two steps of the training loop, each runnable as a compiled TensorFlow
 * graph on the native backend. The batch step computes the loss and the
 * gradients and adds them to accumulator variables. The optimiser step
 * applies AdamW to the accumulated gradients and clears them.
 *
 * The call that traces a graph runs eagerly, and TensorFlow's graph
 * optimiser can round differently from eager operations. So that every
 * step of a run comes from a graph, whichever step a resumed run starts
 * at, the state is put back after a trace and the graph replays the step.
 *
 * A graph freezes everything its function decided in JavaScript, so each
 * graph serves one batch layout: the shapes and dtypes of the batch's
 * tensors and every other value in the batch, such as MoRE's presence
 * flags. A batch of a new layout is traced into a new graph until
 * `maxGraphs` graphs exist. Batches of further layouts run eagerly, through
 * the same function, so the results do not depend on which path ran.
 */
import * as tf from '@tensorflow/tfjs';

import { compileGraph, GraphFunction } from '../../backend/graph';
import { getLogger } from '../../util/log';
import type { AdamW, AdamWState, NamedVariable } from '../optim';

const log = getLogger('tasks.train.steps');

/** The tensors of a batch, in a fixed order, and a string naming its layout. */
export interface BatchLayout {
  tensors: tf.Tensor[];
  key: string;
}

function isPlainObject(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/**
 * Splits a batch into its tensors and a key naming everything else: the
 * shape and dtype of each tensor and the value of each number, string,
 * boolean and null, within nested arrays and plain objects. Returns
 * undefined for a batch with other contents (class instances, typed arrays,
 * functions), which then trains eagerly.
 */
export function batchLayout(batch: unknown): BatchLayout | undefined {
  const tensors: tf.Tensor[] = [];
  const describe = (value: unknown): string | undefined => {
    if (value instanceof tf.Tensor) {
      tensors.push(value);
      return `${value.dtype}[${value.shape.join(',')}]`;
    }
    if (value === undefined) return 'undefined';
    if (value === null || typeof value === 'number' || typeof value === 'string' || typeof value === 'boolean') {
      return JSON.stringify(value);
    }
    if (typeof value !== 'object') return undefined;
    if (Array.isArray(value)) {
      const items = value.map(describe);
      return items.includes(undefined) ? undefined : `[${items.join(',')}]`;
    }
    if (!isPlainObject(value)) return undefined;
    const fields: string[] = [];
    for (const name of Object.keys(value).sort()) {
      const item = describe((value as Record<string, unknown>)[name]);
      if (item === undefined) return undefined;
      fields.push(`${JSON.stringify(name)}:${item}`);
    }
    return `{${fields.join(',')}}`;
  };
  const key = describe(batch);
  return key === undefined ? undefined : { tensors, key };
}

/** Settings of {@link TrainingSteps}. */
export interface TrainingStepsOptions {
  /** Run the steps as compiled graphs (where the backend can). */
  graph: boolean;
  /** Graphs kept per step kind; batches of further layouts run eagerly. */
  maxGraphs: number;
  /** `sum` adds the batch gradients; `mean` divides the sum by the number of batches. */
  accumulation: 'sum' | 'mean';
  /** Every variable a step may change besides the trainable ones and the optimiser's, such as BatchNorm statistics. */
  stateVariables: tf.Variable[];
}

/** Functions of one training batch: `prepare` sets per-batch state outside the graph, and `loss` is traced. */
export interface BatchFunctions {
  prepare(): void;
  loss(): tf.Scalar;
  /** The batch's graph inputs and layout key; default {@link batchLayout} of the batch. */
  layout?(): BatchLayout | undefined;
}

interface BatchGraph {
  graph: GraphFunction<[tf.Scalar]>;
  /** Names of the variables that get a gradient from batches of this layout. */
  names?: string[];
}

/**
 * Accumulates gradients over batches and applies AdamW to their sum. Owns
 * one accumulator variable per trainable variable; call {@link dispose}
 * when training ends.
 */
export class TrainingSteps {
  private readonly accumulators = new Map<string, tf.Variable>();
  private readonly batchGraphs = new Map<string, BatchGraph>();
  private readonly updateGraphs = new Map<string, GraphFunction<[]>>();
  private readonly variables: tf.Variable[];
  /** Names of the variables that got a gradient since the last optimiser step. */
  private readonly pending = new Set<string>();
  private batches = 0;
  private current: { loss: () => tf.Scalar; names?: string[] } | undefined;
  private readonly snapshotVariables: tf.Variable[];
  /** False once a step could not be traced: the rest of the run is eager. */
  private graph: boolean;
  /** Calls of each compiled function that ended without a graph, such as a graph TensorFlow could not load. */
  private readonly failedTraces = new Map<GraphFunction<tf.Tensor[]>, number>();
  private layoutsRunEagerly = 0;
  private batchesRunEagerly = 0;
  private batchesReplayed = 0;

  constructor(
    private readonly trainables: NamedVariable[],
    private readonly optimizer: AdamW,
    private readonly options: TrainingStepsOptions,
  ) {
    this.graph = options.graph;
    this.variables = trainables.map((entry) => entry.variable);
    for (const { name, variable } of trainables) {
      this.accumulators.set(name, tf.tidy(() => tf.variable(tf.zerosLike(variable), false)));
    }
    this.snapshotVariables = [...new Set([...this.variables, ...options.stateVariables, ...this.accumulators.values()])];
  }

  /** Batches accumulated since the last optimiser step. */
  get accumulatedBatches(): number {
    return this.batches;
  }

  /** Number of compiled graphs kept, batch and optimiser steps together. */
  get graphCount(): number {
    let count = 0;
    for (const { graph } of this.batchGraphs.values()) count += graph.graphCount;
    for (const graph of this.updateGraphs.values()) count += graph.graphCount;
    return count;
  }

  /**
   * Calls `prepare`, computes `loss()` for `batch` and its gradients, adds
   * them to the accumulators and returns the loss. `loss` must depend only
   * on the batch's tensors, the variables and what `prepare` set, because a
   * replayed graph does not call it.
   */
  accumulate(batch: unknown, functions: BatchFunctions): tf.Scalar {
    let names: string[];
    let value: tf.Scalar;
    try {
      functions.prepare();
      this.current = { loss: functions.loss };
      let layout: BatchLayout | undefined;
      if (this.graph) layout = functions.layout !== undefined ? functions.layout() : batchLayout(batch);
      const entry = layout === undefined ? undefined : this.batchGraph(layout.key);
      const result = layout === undefined || entry === undefined ? undefined : this.callGraph(entry.graph, layout.tensors, functions.prepare);
      if (entry === undefined || result === undefined) {
        if (this.graph) this.batchesRunEagerly += 1;
        [value, names] = this.eagerBatchStep();
      } else {
        [value] = result;
        this.batchesReplayed += 1;
        // The function ran when the call traced it; a replay uses the names of that trace.
        if (this.current.names !== undefined) entry.names = this.current.names;
        if (entry.names === undefined) throw new Error('A replayed batch step has no recorded gradient names');
        names = entry.names;
      }
    } finally {
      this.current = undefined;
    }
    for (const name of names) this.pending.add(name);
    this.batches += 1;
    return value;
  }

  /** Applies AdamW to the accumulated gradients (their mean with `mean`) and clears them. */
  apply(): void {
    const names = this.trainables.map((entry) => entry.name).filter((name) => this.pending.has(name));
    const divisor = this.options.accumulation === 'mean' && this.batches > 1 ? this.batches : 1;
    const update = (): [] => {
      tf.tidy(() => {
        const gradients = new Map<string, tf.Tensor>();
        for (const name of names) {
          const sum = this.accumulators.get(name) as tf.Variable;
          gradients.set(name, divisor > 1 ? tf.mul(sum, 1 / divisor) : sum);
        }
        this.optimizer.step(gradients);
        for (const name of names) {
          const sum = this.accumulators.get(name) as tf.Variable;
          sum.assign(tf.zerosLike(sum));
        }
      });
      return [];
    };
    const key = `${divisor} ${names.join(' ')}`;
    let graph = this.updateGraphs.get(key);
    if (graph === undefined && this.graph && this.updateGraphs.size < this.options.maxGraphs) {
      graph = compileGraph(update, { name: 'the optimiser step' });
      this.updateGraphs.set(key, graph);
    }
    // The function is fixed per graph, so each graph closes over its own names and divisor.
    const result = graph === undefined ? undefined : this.callGraph(graph, [], () => undefined);
    if (result === undefined) update();
    this.pending.clear();
    this.batches = 0;
  }

  /** Frees the accumulators and the graphs. */
  dispose(): void {
    if (this.options.graph && this.batchesReplayed + this.batchesRunEagerly > 0) {
      log.info(`compiled graphs of ${this.batchGraphs.size} batch layouts ran ${this.batchesReplayed} batches; ` +
        `${this.batchesRunEagerly} batches ran eagerly`);
    }
    for (const { graph } of this.batchGraphs.values()) graph.dispose();
    for (const graph of this.updateGraphs.values()) graph.dispose();
    this.batchGraphs.clear();
    this.updateGraphs.clear();
    tf.dispose([...this.accumulators.values()]);
    this.accumulators.clear();
  }

  /**
   * Calls `graph`. When the call traces it, puts the variables and the
   * optimiser state back, calls `prepare` again and replays the step. When
   * the step cannot be traced, the call has run it eagerly: graphs are turned
   * off and its result is returned.
   */
  private callGraph<R extends tf.Tensor[]>(graph: GraphFunction<R>, inputs: tf.Tensor[], prepare: () => void): R | undefined {
    if (graph.graphCount > 0) return graph.call(...inputs);
    // After two calls without a graph (the first may only have created variables), the step stays eager.
    const failures = this.failedTraces.get(graph) ?? 0;
    if (failures >= 2) return undefined;
    const saved = this.snapshotVariables.map((variable) => variable.clone());
    const optimizerState: AdamWState = this.optimizer.getState();
    const restore = (): void => {
      this.snapshotVariables.forEach((variable, index) => variable.assign(saved[index]));
      this.optimizer.setState(optimizerState);
      prepare();
    };
    try {
      const traced = graph.call(...inputs);
      if (graph.buildFailure !== undefined) {
        // The call already ran the step eagerly, so its result is kept.
        log.warn(`training eagerly from here on: ${graph.buildFailure.message}`);
        this.graph = false;
        return traced;
      }
      if (graph.graphCount === 0) {
        this.failedTraces.set(graph, failures + 1);
        return traced;
      }
      tf.dispose(traced);
      restore();
      return graph.call(...inputs);
    } finally {
      tf.dispose(saved);
      tf.dispose(Object.values(optimizerState.tensors));
    }
  }

  private batchGraph(key: string): BatchGraph | undefined {
    const existing = this.batchGraphs.get(key);
    if (existing !== undefined) return existing;
    if (this.batchGraphs.size >= this.options.maxGraphs) {
      this.layoutsRunEagerly += 1;
      if (this.layoutsRunEagerly === 1) {
        log.info(`${this.options.maxGraphs} batch layouts have compiled graphs; batches of other layouts train eagerly`);
      }
      return undefined;
    }
    const entry: BatchGraph = { graph: compileGraph(() => this.batchStep(), { name: 'the batch step' }) };
    this.batchGraphs.set(key, entry);
    return entry;
  }

  /** Runs {@link batchStep} eagerly; returns the loss and the names of the variables that got a gradient. */
  private eagerBatchStep(): [tf.Scalar, string[]] {
    const current = this.current as { names?: string[] };
    current.names = undefined;
    const [value] = this.batchStep();
    return [value, current.names ?? []];
  }

  /** Runs the loss of the current batch with its gradients and adds them to the accumulators. */
  private batchStep(): [tf.Scalar] {
    const current = this.current;
    if (current === undefined) throw new Error('The batch step ran outside TrainingSteps.accumulate');
    const { value, grads } = tf.variableGrads(current.loss, this.variables);
    const names: string[] = [];
    for (const { name, variable } of this.trainables) {
      // Variables the loss does not reach get no gradient and, as in PyTorch, no update.
      const gradient = grads[variable.name];
      if (gradient === undefined || gradient === null) continue;
      const sum = this.accumulators.get(name) as tf.Variable;
      tf.tidy(() => sum.assign(tf.add(sum, gradient)));
      names.push(name);
    }
    tf.dispose(Object.values(grads));
    current.names = names;
    return [value];
  }
}
