/**
 * Worker-thread side of the decoding pool: loads the requested decoder module
 * once, runs it on each task and posts the values back, transferring the
 * buffer instead of copying it.
 */

import { parentPort } from 'worker_threads';
import type { DecoderFunction } from './types';

export interface DecodeTask {
  taskId: number;
  module: string;
  exportName: string;
  filePath: string;
  options: unknown;
  seed?: number;
}

export type DecodeReply =
  | { taskId: number; ok: true; data: Float32Array }
  | { taskId: number; ok: false; message: string };

const decoders = new Map<string, DecoderFunction>();

/** Loads `exportName` from `module`, caching it, or throws naming both. */
export function loadDecoder(module: string, exportName: string): DecoderFunction {
  const key = `${module}#${exportName}`;
  const cached = decoders.get(key);
  if (cached !== undefined) return cached;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const loaded = require(module) as Record<string, unknown>;
  const decoder = loaded[exportName];
  if (typeof decoder !== 'function') {
    throw new Error(`Decoder ${exportName} not found in ${module}: expected an exported function`);
  }
  decoders.set(key, decoder as DecoderFunction);
  return decoder as DecoderFunction;
}

/** Runs one task and returns the reply; errors become `ok: false` replies. */
export async function runTask(task: DecodeTask): Promise<DecodeReply> {
  try {
    const decoder = loadDecoder(task.module, task.exportName);
    const data = await decoder(task.filePath, task.options, { seed: task.seed });
    if (!(data instanceof Float32Array)) {
      return { taskId: task.taskId, ok: false, message: `decoder ${task.exportName} returned ${Object.prototype.toString.call(data)}, expected a Float32Array` };
    }
    return { taskId: task.taskId, ok: true, data };
  } catch (error) {
    return { taskId: task.taskId, ok: false, message: (error as Error).message };
  }
}

if (parentPort !== null) {
  const port = parentPort;
  port.postMessage({ ready: true });
  port.on('message', (task: DecodeTask) => {
    void runTask(task).then((reply) => {
      if (reply.ok) {
        // Copy when the array is a view of a larger or shared buffer, so only its own bytes move.
        const own = reply.data.byteOffset === 0 && reply.data.byteLength === reply.data.buffer.byteLength
          && reply.data.buffer instanceof ArrayBuffer ? reply.data : Float32Array.from(reply.data);
        port.postMessage({ ...reply, data: own }, [own.buffer as ArrayBuffer]);
      } else {
        port.postMessage(reply);
      }
    });
  });
}
