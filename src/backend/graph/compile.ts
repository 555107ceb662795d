/**
 * Graph execution on the native backend: {@link compileGraph} turns a
 * function of tensors into one TensorFlow graph per input signature and runs
 * each later call as a single TensorFlow session call.
 *
 * The first call with a new signature runs eagerly while {@link GraphRecorder}
 * records it, and its result is the real result. The recorded operations are
 * written as a SavedModel to a temporary folder, loaded into a TensorFlow
 * session and the folder removed. Later calls feed the inputs, the current
 * values of the variables the function reads and any values registered with
 * `traceFeed`, fetch the outputs, and assign the new values of the variables
 * the function updated. TensorFlow then runs the graph with its own graph
 * optimiser and none of the per-operation cost of eager calls.
 *
 * Like `tf.function` in Python TensorFlow, the graph freezes whatever the
 * function decided in JavaScript during the traced call: branches, shapes,
 * and tensors that are neither inputs, variables nor registered feeds (those
 * become constants). A replayed call has no gradient, so calls under
 * `tf.grad` and calls inside another recording run eagerly. On any other
 * backend, and on the native backend with a GPU, the function always runs
 * eagerly.
 */
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { getLogger } from '../../util/log';
import { ProtoWriter, savedModelProto } from './protobuf';
import { GraphRecorder, isTracing, NativeKernelBackend, RecordedGraph, TraceError } from './trace';

const log = getLogger('backend.graph');

const SAVED_MODEL_TAG = 'serve';

/** Options of {@link compileGraph}. */
export interface CompileGraphOptions {
  /** Name used in log lines and errors. */
  name?: string;
  /** Run eagerly even on the native backend (for comparisons and debugging). */
  eager?: boolean;
  /**
   * Write the variables the function reads into the graph as constants
   * (default false). TensorFlow can then fold and pre-pack them, which
   * speeds up inference. A call after any of them was assigned traces anew.
   */
  freezeVariables?: boolean;
  /**
   * Most input signatures to keep graphs for (default 8). Calls with further
   * signatures run eagerly, so varying shapes cannot pile up sessions.
   */
  maxGraphs?: number;
  /**
   * Promise that the function treats the rows of the first axis of every
   * input and output independently, as plain inference does (default
   * false). The graph then runs the batch as up to one slice per CPU core,
   * each slice's kernels on one thread, and TensorFlow's inter-op threads
   * run the slices side by side. That spares the hand-off between threads
   * inside every operation, which dominates small models: on two cores a
   * batch of 8 through the tiny X-ray encoder took 1.70 ms instead of 2.65 ms. It takes the addon the
   * set-up builds (`sessionConfigSupported`); with any other build the
   * graph runs the whole batch.
   */
  splitBatch?: boolean;
}

const DEFAULT_MAX_GRAPHS = 8;

/** A serialised `ConfigProto` with `intra_op_parallelism_threads` (field 2) set to 1. */
const ONE_INTRA_OP_THREAD = new ProtoWriter().int(2, 1).finish();

/**
 * Returns the sizes of the batch slices for a call of a batch-split
 * function: up to one per core, as equal as possible. It returns none when
 * the inputs do not share a first axis of at least 2, or when the addon
 * cannot give a session its own thread settings.
 */
function batchSlices(backend: NativeKernelBackend, inputs: readonly tf.Tensor[]): number[] {
  const batch = inputs[0]?.shape[0];
  if (batch === undefined || batch < 2 || backend.binding.sessionConfigSupported !== true) return [];
  if (!inputs.every((input) => input.rank > 0 && input.shape[0] === batch)) return [];
  const count = Math.min(batch, os.availableParallelism());
  if (count < 2) return [];
  return Array.from({ length: count }, (_, index) => Math.floor(batch / count) + (index < batch % count ? 1 : 0));
}

/** Calls `fn` on each batch slice of `inputs` and joins each output along its first axis. */
function callOnSlices<R extends tf.Tensor[]>(fn: (...inputs: tf.Tensor[]) => R, inputs: tf.Tensor[], sizes: number[], name: string): R {
  return tf.tidy(() => {
    const slices = inputs.map((input) => tf.split(input, sizes, 0));
    const results = sizes.map((size, part) => {
      const result = fn(...slices.map((parts) => parts[part]));
      checkResult(result, name);
      for (const output of result) {
        if (output.rank === 0 || output.shape[0] !== size) {
          throw new TraceError(`${name} was compiled with splitBatch, but an output of shape [${output.shape}] does not have the batch slice's ${size} rows first`);
        }
      }
      return result;
    });
    return results[0].map((_, index) => tf.concat(results.map((result) => result[index]), 0)) as R;
  });
}

/** A loaded graph: its session and what each replay feeds, fetches and assigns. */
interface LoadedGraph {
  session: number;
  /** Batch slices the graph runs side by side; 1 when it runs the whole batch. */
  slices: number;
  /** The backend that owns the session, which frees it. */
  backend: NativeKernelBackend;
  graph: Omit<RecordedGraph, 'nodes'>;
}

/** Returns the native backend when graphs can run on it, else undefined. */
function nativeBackend(): NativeKernelBackend | undefined {
  const backend = tf.backend() as unknown as Partial<NativeKernelBackend>;
  if (tf.getBackend() !== 'tensorflow' && tf.getBackend() !== 'tensorflow-gpu') return undefined;
  if (typeof backend.loadSavedModelMetaGraph !== 'function' || typeof backend.runSavedModel !== 'function') return undefined;
  // NOTE: graphs have not run on a GPU. tfjs-node's session call resolves every
  // fed tensor to host memory, so a GPU would copy inputs and weights on each
  // call. Compiled functions run eagerly there until that is measured.
  if ((backend.binding as { isUsingGpuDevice?: () => boolean } | undefined)?.isUsingGpuDevice?.() === true) return undefined;
  return backend as NativeKernelBackend;
}

/** Returns true when the current backend can run compiled graphs (the native TensorFlow backend). */
export function graphExecutionAvailable(): boolean {
  return nativeBackend() !== undefined;
}

/**
 * Returns the key of a call's graph: each input's dtype and shape, and which
 * inputs are the same tensor. A graph traced with one tensor passed twice
 * feeds only the first, so it serves only calls that repeat it the same way.
 */
function signatureOf(inputs: readonly tf.Tensor[]): string {
  return inputs.map((tensor, index) => {
    const first = inputs.findIndex((other) => other.dataId === tensor.dataId);
    return `${tensor.dtype}[${tensor.shape.join(',')}]${first < index ? `=${first}` : ''}`;
  }).join(' ');
}

/** Returns true when every variable frozen into the graph still has the data it was traced with. */
function isCurrent(graph: Pick<RecordedGraph, 'frozen'>): boolean {
  for (const [variable, dataId] of graph.frozen) {
    if (variable.isDisposed || variable.dataId !== dataId) return false;
  }
  return true;
}

/**
 * Writes a recorded graph as a SavedModel to a temporary folder and loads it
 * into a session, with `config` (a serialised `ConfigProto`) when given.
 */
function loadGraph(backend: NativeKernelBackend, graph: RecordedGraph, config?: Uint8Array): number {
  let folder: string | undefined;
  try {
    folder = fs.mkdtempSync(path.join(os.tmpdir(), 'more-ts-graph-'));
    const descriptor = fs.openSync(path.join(folder, 'saved_model.pb'), 'w');
    try {
      savedModelProto(graph.nodes, SAVED_MODEL_TAG).writeTo(descriptor);
    } finally {
      fs.closeSync(descriptor);
    }
    return config === undefined ? backend.loadSavedModelMetaGraph(folder, SAVED_MODEL_TAG) : backend.binding.loadSavedModel(folder, SAVED_MODEL_TAG, config);
  } finally {
    if (folder !== undefined) fs.rmSync(folder, { recursive: true, force: true });
  }
}

/** Throws when a compiled function returned anything but an array of tensors. */
function checkResult(result: unknown, name: string): void {
  if (!Array.isArray(result) || !result.every((item) => item instanceof tf.Tensor)) {
    const got = result instanceof Promise ? 'a promise' : Array.isArray(result) ? 'an array holding other values' : typeof result;
    throw new TypeError(`${name} must synchronously return an array of tensors, got ${got}`);
  }
}

/**
 * A function of tensors that runs as one TensorFlow graph per input
 * signature on the native backend. Call {@link dispose} to free the sessions.
 */
export class GraphFunction<R extends tf.Tensor[]> {
  private readonly graphs = new Map<string, LoadedGraph>();
  private readonly name: string;
  private readonly eager: boolean;
  private readonly freezeVariables: boolean;
  private readonly maxGraphs: number;
  private readonly splitBatch: boolean;
  private warnedFull = false;
  /** Signatures whose graph could not be built; they run eagerly. */
  private readonly failed = new Set<string>();
  private lastFailure: Error | undefined;

  constructor(private readonly fn: (...inputs: tf.Tensor[]) => R, options: CompileGraphOptions = {}) {
    this.name = options.name ?? 'a compiled function';
    this.eager = options.eager ?? false;
    this.freezeVariables = options.freezeVariables ?? false;
    this.maxGraphs = options.maxGraphs ?? DEFAULT_MAX_GRAPHS;
    this.splitBatch = options.splitBatch ?? false;
    if (!Number.isInteger(this.maxGraphs) || this.maxGraphs < 0) {
      throw new Error(`Invalid maxGraphs ${this.maxGraphs} for ${this.name}: expected a whole number of at least 0`);
    }
  }

  /** The error of the last signature whose graph could not be built, if any; that signature runs eagerly. */
  get buildFailure(): Error | undefined {
    return this.lastFailure;
  }

  /** Number of input signatures traced so far (one graph each). */
  get graphCount(): number {
    return this.graphs.size;
  }

  /** Batch slices of each graph, in the order they were traced: 1 for a graph that runs the whole batch. */
  get sliceCounts(): number[] {
    return [...this.graphs.values()].map((loaded) => loaded.slices);
  }

  /** Runs the function: eagerly and recorded for a new signature, as a graph afterwards. */
  call(...inputs: tf.Tensor[]): R {
    const backend = this.eager ? undefined : nativeBackend();
    // Inside another trace the calls must be recorded there, and a replay has no gradient for tf.grad.
    if (backend === undefined || isTracing() || tf.engine().state.gradientDepth > 0) return this.fn(...inputs);
    const signature = signatureOf(inputs);
    if (this.failed.has(signature)) return this.fn(...inputs);
    const loaded = this.graphs.get(signature);
    if (loaded !== undefined && isCurrent(loaded.graph)) return this.replay(loaded, inputs);
    if (loaded !== undefined) {
      log.debug(`${this.name}: a frozen variable changed; tracing again`);
      loaded.backend.deleteSavedModel(loaded.session);
      this.graphs.delete(signature);
    }
    if (this.graphs.size >= this.maxGraphs) {
      if (!this.warnedFull) log.debug(`${this.name}: ${this.maxGraphs} graphs kept; inputs ${signature} run eagerly`);
      this.warnedFull = true;
      return this.fn(...inputs);
    }

    const sizes = this.splitBatch ? batchSlices(backend, inputs) : [];
    const fn = sizes.length > 1 ? (...args: tf.Tensor[]) => callOnSlices(this.fn, args, sizes, this.name) : this.fn;
    const recorder = new GraphRecorder(backend, this.freezeVariables);
    let traced: ReturnType<typeof recorder.run<R>>;
    try {
      traced = recorder.run(fn, inputs, (result) => checkResult(result, this.name));
    } catch (error) {
      // An error of the function itself, or of its result, reaches the caller. Once
      // the call has run it must not run again: keep its result and stay eager.
      if (recorder.result === undefined) throw error;
      return this.giveUp(signature, error as Error, recorder.result as R);
    }
    const { result, graph } = traced;
    if (graph === undefined) {
      log.debug(`${this.name}: the call created variables; tracing again on the next call`);
      return result;
    }
    let session: number;
    try {
      session = loadGraph(backend, graph, sizes.length > 1 ? ONE_INTRA_OP_THREAD : undefined);
    } catch (error) {
      return this.giveUp(signature, error as Error, result);
    }
    const { nodes, ...kept } = graph;
    this.graphs.set(signature, { session, backend, slices: Math.max(sizes.length, 1), graph: kept });
    const feeds = graph.placeholders.filter((placeholder) => placeholder.source === 'variable').length;
    log.debug(
      `${this.name}: traced ${graph.operationCount} operations (${nodes.length} nodes) for inputs ${signature} ` +
        (sizes.length > 1 ? `in ${sizes.length} batch slices ` : '') +
        `(${feeds} variables fed, ${graph.updates.length} updated, ${(graph.constantBytes / 1e6).toFixed(2)} MB of constants)`,
    );
    return result;
  }

  /** Marks a signature as eager for good after its graph could not be built, and returns the call's result. */
  private giveUp(signature: string, error: Error, result: R): R {
    this.failed.add(signature);
    this.lastFailure = error;
    log.warn(`${this.name} runs eagerly for inputs ${signature}: its graph could not be built (${error.message})`);
    return result;
  }

  private replay(loaded: LoadedGraph, inputs: tf.Tensor[]): R {
    const { graph, session, backend } = loaded;
    const fresh: tf.Tensor[] = [];
    let fetched: tf.Tensor[];
    try {
      const feeds = graph.placeholders.map((placeholder) => {
        if (placeholder.source === 'input') return inputs[placeholder.index];
        if (placeholder.source === 'variable') {
          const variable = placeholder.variable;
          if (variable.isDisposed) throw new TraceError(`Cannot run ${this.name}: variable ${variable.name} of shape [${variable.shape}] was disposed; compile the function again for the new variables`);
          return variable;
        }
        const value = placeholder.regenerate();
        fresh.push(value);
        if (value.dtype !== placeholder.dtype || !tf.util.arraysEqual(value.shape, placeholder.shape)) {
          throw new TraceError(`Cannot run ${this.name}: a traced feed gave ${value.dtype} [${value.shape}], expected ${placeholder.dtype} [${placeholder.shape}]`);
        }
        return value;
      });
      const infos = graph.placeholders.map((placeholder) => ({ name: `${placeholder.node}:0`, dtype: placeholder.dtype, tfDtype: '' }));
      try {
        fetched = backend.runSavedModel(session, feeds, infos, [...graph.outputs, ...graph.updates.map((update) => update.output)]);
      } catch (error) {
        throw new Error(`Failed to run the graph of ${this.name}: ${(error as Error).message}`);
      }
    } finally {
      tf.dispose(fresh);
    }
    const outputs = fetched.slice(0, graph.outputs.length) as R;
    graph.updates.forEach((update, index) => {
      const value = fetched[graph.outputs.length + index];
      update.variable.assign(value);
      value.dispose();
    });
    return outputs;
  }

  /** Frees the TensorFlow sessions; the function can still be called and traces again. */
  dispose(): void {
    for (const { session, backend } of this.graphs.values()) backend.deleteSavedModel(session);
    this.graphs.clear();
  }
}

/**
 * Compiles `fn`, a synchronous function from tensors to a list of tensors,
 * for graph execution on the native backend. See the file comment for what
 * a graph freezes.
 */
export function compileGraph<R extends tf.Tensor[]>(fn: (...inputs: tf.Tensor[]) => R, options: CompileGraphOptions = {}): GraphFunction<R> {
  return new GraphFunction(fn, options);
}
