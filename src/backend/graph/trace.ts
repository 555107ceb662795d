/**
 * Records the TensorFlow operations that a function runs on the native
 * backend, so that they can be replayed as one TensorFlow graph.
 *
 * The native TensorFlow.js backend runs each operation eagerly through its
 * binding's `executeOp`, which costs tens of microseconds per call on top of
 * the arithmetic. While a trace is active, every call is recorded as a graph
 * node with its TensorFlow op name, attributes and inputs, and still runs,
 * so the traced call produces its real result. An input that no recorded
 * node produced becomes a placeholder when it is a declared input, a
 * variable or a value registered with {@link traceFeed}, and a constant
 * otherwise.
 */
import * as tf from '@tensorflow/tfjs';

import { AttrInput, GraphNode, tensorProto, TF_DTYPE } from './protobuf';

/** The binding's attribute record, as `executeOp` receives it. */
interface BindingAttr {
  name: string;
  type: number;
  value: unknown;
}

interface OutputMetadata {
  id: number;
  shape: number[];
  dtype: number;
}

/** The parts of the native binding that tracing wraps and reads. */
export interface NativeBinding {
  executeOp(name: string, attrs: BindingAttr[], inputIds: number[], outputCount: number): OutputMetadata[];
  TF_ATTR_STRING: number;
  TF_ATTR_INT: number;
  TF_ATTR_FLOAT: number;
  TF_ATTR_BOOL: number;
  TF_ATTR_TYPE: number;
  TF_ATTR_SHAPE: number;
  /** Present on the addon the set-up builds: `loadSavedModel` then takes a serialised `ConfigProto`. */
  sessionConfigSupported?: boolean;
  loadSavedModel(path: string, tags: string, config?: Uint8Array): number;
}

/** The parts of tfjs-node's `NodeJSKernelBackend` that tracing and replay use. */
export interface NativeKernelBackend {
  binding: NativeBinding;
  tensorMap: { get(dataId: object): { id: number; values: unknown } | undefined };
  getInputTensorIds(tensors: tf.Tensor[]): number[];
  loadSavedModelMetaGraph(path: string, tags: string): number;
  runSavedModel(id: number, inputs: tf.Tensor[], infos: { name: string; dtype: string; tfDtype: string }[], outputs: string[]): tf.Tensor[];
  deleteSavedModel(id: number): void;
}

/** A placeholder of a trace: what feeds it on every replay. */
export type TracePlaceholder =
  | { node: string; source: 'input'; index: number; dtype: string; shape: number[] }
  | { node: string; source: 'variable'; variable: tf.Variable; dtype: string; shape: number[] }
  | { node: string; source: 'feed'; regenerate: () => tf.Tensor; dtype: string; shape: number[] };

/** The contents of a finished trace. */
export interface RecordedGraph {
  nodes: GraphNode[];
  placeholders: TracePlaceholder[];
  /** `node:index` of each output of the traced function, in order. */
  outputs: string[];
  /** Variables the function assigned, with the `node:index` of their new value. */
  updates: { variable: tf.Variable; output: string }[];
  /** Variables written into the graph as constants, with the data they had. */
  frozen: Map<tf.Variable, object>;
  /** Number of recorded operations, constants not counted. */
  operationCount: number;
  /** Bytes of the constants frozen into the graph. */
  constantBytes: number;
}

/** Error raised when a function cannot be expressed as one graph. The message gives the reason. */
export class TraceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TraceError';
  }
}

/**
 * Type attributes that tfjs-node leaves for eager TensorFlow to infer from
 * the inputs, which a graph node must state: attribute name -> input index.
 */
const INFERRED_TYPE_ATTRS: Record<string, Record<string, number>> = {
  ExpandDims: { T: 0, Tdim: 1 },
  Where: { T: 0 },
};

/**
 * Bytes of variable data one graph freezes at most; variables beyond it are
 * fed. Each frozen graph keeps its own copy of the data inside TensorFlow.
 */
export const FROZEN_BYTES_LIMIT = 64 * 2 ** 20;

let active: GraphRecorder | undefined;

/**
 * Marks a tensor that must be drawn afresh for every replay of a traced
 * graph, such as a random mask computed in JavaScript. Outside a trace it
 * returns `tensor` unchanged. Inside one, the tensor becomes a placeholder,
 * and each replay calls `regenerate` (in the order of the trace) for the
 * value to feed, so the replays draw the same numbers as eager calls would.
 */
export function traceFeed<T extends tf.Tensor>(tensor: T, regenerate: () => T): T {
  active?.registerFeed(tensor, regenerate);
  return tensor;
}

/** Returns true while a trace records, for code that must behave differently then. */
export function isTracing(): boolean {
  return active !== undefined;
}

function dtypeCode(dtype: string, context: string): number {
  const code = (TF_DTYPE as Record<string, number>)[dtype];
  if (code === undefined) throw new TraceError(`Cannot trace ${context}: dtype ${dtype} has no graph form (expected ${Object.keys(TF_DTYPE).join(', ')})`);
  return code;
}

/** Recorder of one function call: create it, call `run` and read the returned graph. */
export class GraphRecorder {
  private readonly nodes: GraphNode[] = [];
  private readonly placeholders: TracePlaceholder[] = [];
  private readonly produced = new Map<number, string>();
  private readonly constants = new Map<number, string>();
  private readonly placeholderByData = new Map<object, string>();
  private readonly placeholderByVariable = new Map<tf.Variable, string>();
  /** Variables by their data at the start; several variables may share one buffer. */
  private readonly variablesByData = new Map<object, tf.Variable[]>();
  private readonly startData = new Map<tf.Variable, object>();
  /** TensorFlow dtype code of every named graph value. */
  private readonly dtypes = new Map<string, number>();
  private pendingInputs: tf.Tensor[] | undefined;
  /** The function's result once it has run, so that a later failure need not run it again. */
  result: tf.Tensor[] | undefined;
  /** The first error met while recording; the function still runs to its end. */
  private failure: Error | undefined;
  private operationCount = 0;
  private constantBytes = 0;
  private counter = 0;

  private readonly frozen = new Map<tf.Variable, object>();

  /**
   * `freezeVariables` writes the variables the function reads into the graph
   * as constants, which lets TensorFlow fold and pre-pack them. The graph is
   * then valid only while those variables keep their values.
   */
  constructor(private readonly backend: NativeKernelBackend, private readonly freezeVariables = false) {}

  private handleOf(tensor: tf.Tensor): number | undefined {
    if ((tensor as unknown as { valueArray?: Int32Array }).valueArray !== undefined) return undefined;
    return this.backend.tensorMap.get(tensor.dataId)?.id;
  }

  private nextName(op: string): string {
    return `${op}_${this.counter++}`;
  }

  private addPlaceholder(tensor: tf.Tensor, make: (node: string) => TracePlaceholder, byData = true): string {
    const node = this.nextName('placeholder');
    const placeholder = make(node);
    const role = placeholder.source === 'input'
      ? `input ${placeholder.index}`
      : placeholder.source === 'variable' ? `variable ${placeholder.variable.name}` : 'a traceFeed value';
    const dtype = dtypeCode(tensor.dtype, role);
    this.nodes.push({
      name: node,
      op: 'Placeholder',
      inputs: [],
      attrs: { dtype: { kind: 'type', value: dtype }, shape: { kind: 'shape', value: tensor.shape } },
    });
    this.placeholders.push(placeholder);
    if (byData) this.placeholderByData.set(tensor.dataId, node);
    this.dtypes.set(`${node}:0`, dtype);
    return `${node}:0`;
  }

  registerFeed(tensor: tf.Tensor, regenerate: () => tf.Tensor): void {
    // A second registration of the same tensor would draw twice per replay.
    if (this.placeholderByData.has(tensor.dataId)) return;
    this.addPlaceholder(tensor, (node) => ({ node, source: 'feed', regenerate, dtype: tensor.dtype, shape: tensor.shape }));
  }

  private addConstant(tensor: tf.Tensor, handle?: number): string {
    const node = this.nextName('constant');
    let dtype: number;
    let content: Uint8Array;
    const int64 = (tensor as unknown as { valueArray?: Int32Array }).valueArray;
    if (int64 !== undefined) {
      // tfjs-node's Int64Scalar: the low and high 32-bit words, little endian.
      dtype = TF_DTYPE.int64;
      content = new Uint8Array(int64.buffer, int64.byteOffset, 8).slice();
    } else {
      dtype = dtypeCode(tensor.dtype, `a constant of shape [${tensor.shape}]`);
      const values = tensor.dataSync() as Float32Array | Int32Array | Uint8Array;
      content = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
    }
    this.constantBytes += content.byteLength;
    this.nodes.push({
      name: node,
      op: 'Const',
      inputs: [],
      attrs: { dtype: { kind: 'type', value: dtype }, value: { kind: 'tensor', value: tensorProto(dtype, tensor.shape, content) } },
    });
    if (handle !== undefined) this.constants.set(handle, `${node}:0`);
    this.dtypes.set(`${node}:0`, dtype);
    return `${node}:0`;
  }

  /**
   * Returns the graph value of a variable's data at the start of the call: a
   * placeholder fed on every replay, or undefined when the variable is frozen
   * into the graph as a constant.
   */
  private variableValue(variable: tf.Variable): string | undefined {
    const known = this.placeholderByVariable.get(variable);
    if (known !== undefined) return `${known}:0`;
    const bytes = variable.size * 4;
    if (this.freezeVariables && (this.frozen.has(variable) || this.constantBytes + bytes <= FROZEN_BYTES_LIMIT)) {
      this.frozen.set(variable, variable.dataId);
      return undefined;
    }
    const name = this.addPlaceholder(variable, (node) => ({ node, source: 'variable', variable, dtype: variable.dtype, shape: variable.shape }), false);
    this.placeholderByVariable.set(variable, name.slice(0, -2));
    return name;
  }

  /** Returns the name of the graph value behind one input of a recorded operation. */
  private inputName(handle: number, tensor: tf.Tensor | undefined, op: string, index: number): string {
    const produced = this.produced.get(handle);
    if (produced !== undefined) return produced;
    if (tensor !== undefined) {
      const value = this.sourceValue(tensor);
      if (value !== undefined) return value;
    }
    const constant = this.constants.get(handle);
    if (constant !== undefined) return constant;
    if (tensor === undefined) throw new TraceError(`Cannot trace ${op}: its input ${index} is a native tensor that TensorFlow.js does not track`);
    return this.addConstant(tensor, handle);
  }

  /**
   * Returns the placeholder or variable value behind a tensor that no recorded
   * operation produced, or undefined when it is a constant. A variable is
   * matched by object first. A plain tensor that shares a variable's buffer
   * (a clone) stands for that variable's value at the start of the call.
   */
  private sourceValue(tensor: tf.Tensor): string | undefined {
    if (tensor instanceof tf.Variable && this.startData.get(tensor) === tensor.dataId) return this.variableValue(tensor);
    const placeholder = this.placeholderByData.get(tensor.dataId);
    if (placeholder !== undefined) return `${placeholder}:0`;
    const sharing = this.variablesByData.get(tensor.dataId);
    if (sharing !== undefined) return this.variableValue(sharing[0]);
    return undefined;
  }

  private attribute(attr: BindingAttr, op: string): AttrInput {
    const binding = this.backend.binding;
    const value = attr.value;
    switch (attr.type) {
      case binding.TF_ATTR_STRING: return { kind: 'string', value: value as string };
      case binding.TF_ATTR_INT: return { kind: 'int', value: value as number | number[] };
      case binding.TF_ATTR_FLOAT: return { kind: 'float', value: value as number | number[] };
      case binding.TF_ATTR_BOOL: return { kind: 'bool', value: value as boolean | boolean[] };
      case binding.TF_ATTR_TYPE: return { kind: 'type', value: value as number | number[] };
      case binding.TF_ATTR_SHAPE: return { kind: 'shape', value: value as number[] };
      default: throw new TraceError(`Cannot trace ${op}: attribute ${attr.name} has binding type ${attr.type}, which graphs here do not support`);
    }
  }

  /**
   * Runs one operation and records it. A failure to record is kept for the
   * end of the call rather than thrown here, so the function itself always
   * runs to completion and never stops halfway through its side effects.
   */
  private record(original: NativeBinding['executeOp'], op: string, attrs: BindingAttr[], inputIds: number[], outputCount: number): OutputMetadata[] {
    const tensors = this.pendingInputs;
    this.pendingInputs = undefined;
    let inputs: string[] | undefined;
    if (this.failure === undefined) {
      try {
        // The tensors are those of this call only when their handles are the ids passed.
        const matching = tensors !== undefined && tensors.length === inputIds.length &&
          tensors.every((tensor, index) => this.handleOf(tensor) === inputIds[index]);
        inputs = inputIds.map((handle, index) => this.inputName(handle, matching ? tensors[index] : undefined, op, index));
      } catch (error) {
        this.failure = error as Error;
      }
    }
    const outputs = original(op, attrs, inputIds, outputCount);
    if (inputs === undefined || this.failure !== undefined) return outputs;
    try {
      const converted: Record<string, AttrInput> = {};
      for (const attr of attrs) converted[attr.name] = this.attribute(attr, op);
      for (const [name, input] of Object.entries(INFERRED_TYPE_ATTRS[op] ?? {})) {
        converted[name] ??= { kind: 'type', value: this.dtypes.get(inputs[input]) as number };
      }
      const node = this.nextName(op);
      this.nodes.push({ name: node, op, inputs, attrs: converted });
      outputs.forEach((output, index) => {
        this.produced.set(output.id, `${node}:${index}`);
        this.dtypes.set(`${node}:${index}`, output.dtype);
      });
      this.operationCount += 1;
    } catch (error) {
      this.failure = error as Error;
    }
    return outputs;
  }

  /**
   * Returns the name of a fetchable graph value that contains `tensor` now,
   * for an output or a variable update. TensorFlow cannot fetch a fed
   * placeholder, so those get an Identity node; a tensor that no operation
   * produced becomes a constant.
   */
  private valueName(tensor: tf.Tensor): string {
    const info = this.backend.tensorMap.get(tensor.dataId);
    const produced = info !== undefined && info.values == null ? this.produced.get(info.id) : undefined;
    if (produced !== undefined) return produced;
    const source = this.sourceValue(tensor);
    if (source === undefined) return this.addConstant(tensor);
    const node = this.nextName('identity');
    this.nodes.push({ name: node, op: 'Identity', inputs: [source], attrs: { T: { kind: 'type', value: this.dtypes.get(source) as number } } });
    this.dtypes.set(`${node}:0`, this.dtypes.get(source) as number);
    return `${node}:0`;
  }

  /**
   * Runs `fn` on `inputs` while recording. Returns the eager result and the
   * graph, or `graph: undefined` when the call created variables (an
   * optimiser's first step does): those only exist from the next call on.
   */
  run<R extends tf.Tensor[]>(fn: (...inputs: tf.Tensor[]) => R, inputs: tf.Tensor[], check?: (result: unknown) => void): { result: R; graph?: RecordedGraph } {
    if (active !== undefined) throw new TraceError('Cannot trace a function while another trace is recording');
    const registered = tf.engine().state.registeredVariables;
    const before = new Set(Object.keys(registered));
    for (const variable of Object.values(registered)) {
      const sharing = this.variablesByData.get(variable.dataId);
      if (sharing === undefined) this.variablesByData.set(variable.dataId, [variable]);
      else sharing.push(variable);
      this.startData.set(variable, variable.dataId);
    }
    try {
      inputs.forEach((tensor, index) => {
        if (!this.placeholderByData.has(tensor.dataId)) {
          this.addPlaceholder(tensor, (node) => ({ node, source: 'input', index, dtype: tensor.dtype, shape: tensor.shape }));
        }
      });
    } catch (error) {
      this.failure = error as Error;
    }

    const backend = this.backend;
    const binding = backend.binding;
    const originalExecute = binding.executeOp.bind(binding);
    const originalInputIds = backend.getInputTensorIds;
    // The binding's methods are read-only properties, so the wrapper is a
    // child object that shadows `executeOp`.
    const wrapped = Object.create(binding) as NativeBinding;
    Object.defineProperty(wrapped, 'executeOp', {
      value: (op: string, attrs: BindingAttr[], ids: number[], count: number) => this.record(originalExecute, op, attrs, ids, count),
    });
    backend.getInputTensorIds = (tensors: tf.Tensor[]) => {
      this.pendingInputs = tensors;
      return originalInputIds.call(backend, tensors);
    };
    backend.binding = wrapped;
    active = this;
    let result: R;
    try {
      result = fn(...inputs);
    } finally {
      active = undefined;
      backend.binding = binding;
      backend.getInputTensorIds = originalInputIds;
    }
    check?.(result);
    this.result = result;
    if (this.failure !== undefined) throw this.failure;

    const current = tf.engine().state.registeredVariables;
    if (Object.keys(current).some((name) => !before.has(name))) return { result };
    const outputs = result.map((tensor) => this.valueName(tensor));
    const updates: RecordedGraph['updates'] = [];
    for (const [variable, dataId] of this.startData) {
      if (variable.isDisposed || variable.dataId === dataId) continue;
      if (this.frozen.has(variable)) {
        throw new TraceError(`Cannot freeze variable ${variable.name} of shape [${variable.shape}]: the function assigns it`);
      }
      updates.push({ variable, output: this.valueName(variable) });
    }
    return {
      result,
      graph: {
        nodes: this.nodes,
        placeholders: this.placeholders,
        outputs,
        updates,
        frozen: this.frozen,
        operationCount: this.operationCount,
        constantBytes: this.constantBytes,
      },
    };
  }
}
