/** A batch-pipeline decoder for the training tests: reads a file holding one number (a sample index). */
import * as fs from 'fs';

export function decodeSampleIndex(filePath: string): Float32Array {
  const value = Number(fs.readFileSync(filePath, 'utf8').trim());
  if (!Number.isInteger(value)) throw new Error(`${filePath}: expected an integer sample index`);
  return Float32Array.of(value);
}
