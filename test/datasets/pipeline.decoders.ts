// Decoders for the pipeline tests, loaded by module path inside worker threads.
import * as fs from 'fs';
import { threadId } from 'worker_threads';
import type { DecodeContext } from '../../src/datasets/pipeline';

/**
 * Reads a small text file: a number gives [number, threadId, seed or -1, 7];
 * "crash" ends the worker thread, "hang" spins until the pool's timeout, and
 * anything else throws.
 */
export function decodeProbe(filePath: string, _options: unknown, context: DecodeContext): Float32Array {
  const text = fs.readFileSync(filePath, 'utf8').trim();
  if (text === 'crash') process.exit(3);
  if (text === 'hang') {
    for (;;) {
      // Busy loop: only terminating the worker stops it.
    }
  }
  const value = Number(text);
  if (!Number.isFinite(value)) throw new Error(`Invalid probe file ${filePath}: "${text}" is not a number`);
  return new Float32Array([value, threadId, context.seed ?? -1, 7]);
}
