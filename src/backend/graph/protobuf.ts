/**
 * The few pieces of TensorFlow's protocol buffers that a traced graph needs
 * (SavedModel, MetaGraphDef, GraphDef, NodeDef, AttrValue, TensorProto,
 * TensorShapeProto), written with a minimal proto3 encoder. Field numbers
 * come from TensorFlow's `.proto` files under `tensorflow/core/framework`
 * and `tensorflow/core/protobuf`.
 */
import * as fs from 'fs';

/** TensorFlow's `DataType` enum values for the dtypes a graph can carry. */
export const TF_DTYPE = { float32: 1, int32: 3, uint8: 4, bool: 10, int64: 9 } as const;
export type GraphDtype = keyof typeof TF_DTYPE;

const WIRE_VARINT = 0;
const WIRE_LENGTH = 2;
const WIRE_FIXED32 = 5;

/**
 * Appends proto3 fields to a list of byte chunks. A nested message adds the
 * child's chunks by reference, so a large tensor's bytes are copied once, by
 * `finish` or not at all by `writeTo`.
 */
export class ProtoWriter {
  private pending: number[] = [];
  private readonly chunks: Uint8Array[] = [];
  private length = 0;

  private flush(): void {
    if (this.pending.length === 0) return;
    this.chunks.push(Buffer.from(this.pending));
    this.length += this.pending.length;
    this.pending = [];
  }

  private append(chunk: Uint8Array): void {
    this.flush();
    this.chunks.push(chunk);
    this.length += chunk.byteLength;
  }

  private varint(value: number | bigint): void {
    let rest = BigInt.asUintN(64, BigInt(value));
    while (rest >= 0x80n) {
      this.pending.push(Number(rest & 0x7fn) | 0x80);
      rest >>= 7n;
    }
    this.pending.push(Number(rest));
  }

  private key(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  /** Size of the message written so far, in bytes. */
  get byteLength(): number {
    return this.length + this.pending.length;
  }

  int(field: number, value: number | bigint): this {
    this.key(field, WIRE_VARINT);
    this.varint(value);
    return this;
  }

  float(field: number, value: number): this {
    this.key(field, WIRE_FIXED32);
    const bytes = Buffer.alloc(4);
    bytes.writeFloatLE(value);
    this.append(bytes);
    return this;
  }

  bytes(field: number, value: Uint8Array): this {
    this.key(field, WIRE_LENGTH);
    this.varint(value.byteLength);
    this.append(value);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, Buffer.from(value, 'utf8'));
  }

  message(field: number, value: ProtoWriter): this {
    value.flush();
    this.key(field, WIRE_LENGTH);
    this.varint(value.length);
    this.flush();
    for (const chunk of value.chunks) this.chunks.push(chunk);
    this.length += value.length;
    return this;
  }

  finish(): Buffer {
    this.flush();
    return Buffer.concat(this.chunks);
  }

  /** Writes the message to an open file descriptor without joining its chunks. */
  writeTo(descriptor: number): void {
    this.flush();
    for (const chunk of this.chunks) {
      let offset = 0;
      while (offset < chunk.byteLength) offset += fs.writeSync(descriptor, chunk, offset, chunk.byteLength - offset);
    }
  }
}

/** TensorShapeProto: one `Dim { size }` per axis. */
export function shapeProto(shape: readonly number[]): ProtoWriter {
  const proto = new ProtoWriter();
  for (const size of shape) proto.message(2, new ProtoWriter().int(1, size));
  return proto;
}

/** TensorProto holding the raw little-endian bytes of a tensor. */
export function tensorProto(dtype: number, shape: readonly number[], content: Uint8Array): ProtoWriter {
  return new ProtoWriter().int(1, dtype).message(2, shapeProto(shape)).bytes(4, content);
}

/** One attribute value, in the forms the native TensorFlow.js binding passes to eager ops. */
export type AttrInput =
  | { kind: 'string'; value: string }
  | { kind: 'int'; value: number | number[] }
  | { kind: 'float'; value: number | number[] }
  | { kind: 'bool'; value: boolean | boolean[] }
  | { kind: 'type'; value: number | number[] }
  | { kind: 'shape'; value: number[] }
  | { kind: 'tensor'; value: ProtoWriter };

/** AttrValue for one attribute; a list value becomes `AttrValue.list`. */
export function attrValue(attr: AttrInput): ProtoWriter {
  const proto = new ProtoWriter();
  if (Array.isArray(attr.value) && attr.kind !== 'shape') {
    const list = new ProtoWriter();
    for (const item of attr.value) {
      if (attr.kind === 'int') list.int(3, item as number);
      else if (attr.kind === 'float') list.float(4, item as number);
      else if (attr.kind === 'bool') list.int(5, item ? 1 : 0);
      else list.int(6, item as number);
    }
    return proto.message(1, list);
  }
  switch (attr.kind) {
    case 'string': return proto.string(2, attr.value);
    case 'int': return proto.int(3, attr.value as number);
    case 'float': return proto.float(4, attr.value as number);
    case 'bool': return proto.int(5, attr.value ? 1 : 0);
    case 'type': return proto.int(6, attr.value as number);
    case 'shape': return proto.message(7, shapeProto(attr.value));
    case 'tensor': return proto.message(8, attr.value);
  }
}

/** One node of a GraphDef. Inputs name producer outputs as `node:index`. */
export interface GraphNode {
  name: string;
  op: string;
  inputs: string[];
  attrs: Record<string, AttrInput>;
}

/** NodeDef bytes: name, op, inputs and the attribute map. */
function nodeProto(node: GraphNode): ProtoWriter {
  const proto = new ProtoWriter().string(1, node.name).string(2, node.op);
  for (const input of node.inputs) proto.string(3, input);
  for (const [name, attr] of Object.entries(node.attrs)) {
    proto.message(5, new ProtoWriter().string(1, name).message(2, attrValue(attr)));
  }
  return proto;
}

/**
 * GraphDef producer version written into the graph. Any version the loading
 * TensorFlow accepts works; this one is older than every TensorFlow 2 release.
 */
const GRAPH_PRODUCER = 1700;

/** Encodes a `saved_model.pb` with one meta graph, tagged `tag`, that contains `nodes`. */
export function savedModelProto(nodes: readonly GraphNode[], tag: string): ProtoWriter {
  const graph = new ProtoWriter();
  for (const node of nodes) graph.message(1, nodeProto(node));
  graph.message(4, new ProtoWriter().int(1, GRAPH_PRODUCER));
  const metaGraph = new ProtoWriter().message(1, new ProtoWriter().string(4, tag)).message(2, graph);
  return new ProtoWriter().int(1, 1).message(2, metaGraph);
}
