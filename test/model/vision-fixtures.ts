// Reads the safetensors fixtures that reference/model_vision.py writes.
import * as path from 'path';

import { tf } from '../../src/backend';
import { readSafetensors } from '../../src/model/safetensors';

export const FIXTURE_DIR = path.join(__dirname, '..', 'fixtures', 'model', 'vision');

export interface Fixture {
  tensors: Map<string, { shape: number[]; data: Float32Array }>;
  metadata: Record<string, string>;
}

/** Reads one fixture file. */
export function readFixture(name: string): Fixture {
  return readSafetensors(path.join(FIXTURE_DIR, name));
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
