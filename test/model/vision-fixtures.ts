// Reads the float32 safetensors fixtures that reference/model_vision.py writes.
import * as fs from 'fs';
import * as path from 'path';

import { tf } from '../../src/backend';

export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'model', 'vision');

export interface Fixture {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

/** Reads one fixture file; every tensor in these files is F32. */
export function readFixture(name: string): Fixture {
  const file = path.join(FIXTURE_DIR, name);
  const bytes = fs.readFileSync(file);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<string, unknown>;
  const dataStart = 8 + headerLength;
  const tensors: Fixture['tensors'] = new Map();
  let metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(header)) {
    if (key === '__metadata__') {
      metadata = value as Record<string, string>;
      continue;
    }
    const entry = value as { dtype: string; shape: number[]; data_offsets: [number, number] };
    if (entry.dtype !== 'F32') throw new Error(`${file}: tensor ${key} has dtype ${entry.dtype}, expected F32`);
    const [begin, end] = entry.data_offsets;
    const copy = new Uint8Array(bytes.subarray(dataStart + begin, dataStart + end));
    tensors.set(key, { shape: entry.shape, data: new Float32Array(copy.buffer) });
  }
  return { tensors, metadata };
}

/** Returns the named tensor of a fixture as a tf tensor (the caller disposes it). */
export function fixtureTensor<T extends tf.Tensor = tf.Tensor>(fixture: Fixture, name: string): T {
  const entry = fixture.tensors.get(name);
  if (entry === undefined) throw new Error(`Fixture has no tensor ${name}`);
  return tf.tensor(entry.data, entry.shape) as T;
}

/** Returns the fixture's tensors whose names start with `prefix`, with the prefix removed. */
export function fixtureWeights(fixture: Fixture, prefix = ''): Map<string, tf.Tensor> {
  const result = new Map<string, tf.Tensor>();
  for (const name of fixture.tensors.keys()) {
    if (name.startsWith(prefix)) result.set(name.slice(prefix.length), fixtureTensor(fixture, name));
  }
  return result;
}

/** Largest absolute difference between a tensor and expected values. */
export function maxAbsDiff(actual: tf.Tensor, expected: { data: Float32Array; shape: number[] } | tf.Tensor): number {
  const expectedShape = expected.shape;
  if (!tf.util.arraysEqual(actual.shape, expectedShape)) {
    throw new Error(`Shape [${actual.shape.join(', ')}] differs from the expected [${expectedShape.join(', ')}]`);
  }
  const values = actual.dataSync();
  const reference = expected instanceof tf.Tensor ? expected.dataSync() : expected.data;
  let worst = 0;
  for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(values[i] - reference[i]));
  return worst;
}

/** Largest absolute difference divided by the largest expected magnitude (floored at 1e-6). */
export function relativeDiff(actual: tf.Tensor, expected: { data: Float32Array; shape: number[] }): number {
  let scale = 1e-6;
  for (const value of expected.data) scale = Math.max(scale, Math.abs(value));
  return maxAbsDiff(actual, expected) / scale;
}

/** The expected tensor of a fixture, failing with its name when absent. */
export function expected(fixture: Fixture, name: string): { shape: number[]; data: Float32Array } {
  const entry = fixture.tensors.get(name);
  if (entry === undefined) throw new Error(`Fixture has no tensor ${name}`);
  return entry;
}
