/**
 * TensorFlow.js backend selection. The order is the native TensorFlow addon
 * on a CUDA GPU (`@tensorflow/tfjs-node-gpu`), the native addon on the CPU
 * (`@tensorflow/tfjs-node`), WebAssembly, then the plain JavaScript CPU
 * backend. `MORE_TS_BACKEND` forces one choice; a forced choice that cannot
 * load is an error, never a silent fallback. The choice is logged once.
 */
import * as fs from 'fs';
import * as path from 'path';

import * as tf from '@tensorflow/tfjs';

import { getLogger } from '../util/log';

const log = getLogger('backend');

// TensorFlow's C++ logging prints start-up notices (CPU feature hints) on
// stderr; keep warnings and errors unless the user set a level.
process.env.TF_CPP_MIN_LOG_LEVEL ??= '2';
// oneDNN kernels split every call across TensorFlow's intra-op threads, and by
// default the calling thread waits for them. With this setting it runs one
// part itself, which shortens the small operations of the tiny presets.
// Both settings here apply only when set before the addon loads, and a value
// the user set is kept.
process.env.TF_ONEDNN_THREADPOOL_USE_CALLER_THREAD ??= '1';
// Each session gets its own intra-op thread pool, sized by its config. Batch-split
// graphs then run one thread per slice, while eager operations keep every core
// (`splitBatch` in graph/compile.ts).
process.env.TF_OVERRIDE_GLOBAL_THREADPOOL ??= '1';

export const BACKEND_CHOICES = ['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

export interface BackendInfo {
  /** Our name for the route taken, one of {@link BACKEND_CHOICES}. */
  choice: BackendChoice;
  /** The TensorFlow.js backend name (`tensorflow`, `wasm`, `cpu`). */
  name: string;
  /** Device the kernels run on, for example `GPU (CUDA)`, `CPU (native TensorFlow 2.21.0)` or `CPU (WebAssembly)`. */
  device: string;
  /** Reasons the routes tried before this one could not be used. */
  skipped: { choice: BackendChoice; reason: string }[];
}

interface NativeBinding {
  TF_Version?: string;
  isUsingGpuDevice(): boolean;
}

interface NativeBackend {
  binding: NativeBinding;
  isUsingGpuDevice: boolean;
}

/** Capabilities of the JavaScript routes, stated once for both warnings. */
const SLOW_BACKEND_NOTE =
  'The JavaScript backends are one to two orders of magnitude slower than the native one: ' +
  'cpu can train small models, and wasm serves inference only (it lacks kernels that gradients need, such as UnsortedSegmentSum).';

let current: BackendInfo | undefined;
let pending: Promise<BackendInfo> | undefined;

function parseChoice(value: string): BackendChoice {
  const choice = value.trim().toLowerCase();
  if ((BACKEND_CHOICES as readonly string[]).includes(choice)) return choice as BackendChoice;
  throw new Error(`Invalid MORE_TS_BACKEND "${value}": expected one of ${BACKEND_CHOICES.join(', ')}`);
}

function errorText(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  return text.split('\n')[0];
}

/** Path of the package's compiled addon, or undefined when the set-up did not build it. */
function builtAddon(packageName: string): string | undefined {
  let root: string;
  try {
    root = path.dirname(require.resolve(`${packageName}/package.json`));
  } catch {
    return undefined;
  }
  const lib = path.join(root, 'lib');
  if (!fs.existsSync(lib)) return undefined;
  for (const folder of fs.readdirSync(lib)) {
    const addon = path.join(lib, folder, 'tfjs_binding.node');
    if (fs.existsSync(addon)) return addon;
  }
  return undefined;
}

async function tryNative(packageName: '@tensorflow/tfjs-node' | '@tensorflow/tfjs-node-gpu', requireGpu: boolean): Promise<string> {
  // Loading a package registers its kernels under the `tensorflow` backend
  // name, so a package whose addon is missing is never loaded: that would
  // leave a half-registered backend behind for the next route.
  if (builtAddon(packageName) === undefined) {
    throw new Error(`${packageName} has no compiled addon (the set-up builds it; run npm ci)`);
  }
  require(packageName);
  if (!(await tf.setBackend('tensorflow'))) {
    throw new Error(`${packageName} loaded but the tensorflow backend failed to initialise`);
  }
  const backend = tf.backend() as unknown as NativeBackend;
  const version = backend.binding.TF_Version ?? 'unknown';
  if (requireGpu && !backend.isUsingGpuDevice) {
    throw new Error(`${packageName} loaded but TensorFlow ${version} found no CUDA device`);
  }
  return backend.isUsingGpuDevice ? `GPU (CUDA, native TensorFlow ${version})` : `CPU (native TensorFlow ${version})`;
}

async function tryWasm(): Promise<string> {
  require('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend failed to initialise');
  return 'CPU (WebAssembly)';
}

async function tryCpu(): Promise<string> {
  if (!(await tf.setBackend('cpu'))) throw new Error('the JavaScript CPU backend failed to initialise');
  return 'CPU (JavaScript)';
}

async function tryChoice(choice: BackendChoice): Promise<string> {
  switch (choice) {
    case 'tensorflow-gpu':
      return tryNative('@tensorflow/tfjs-node-gpu', true);
    case 'tensorflow':
      return tryNative('@tensorflow/tfjs-node', false);
    case 'wasm':
      return tryWasm();
    case 'cpu':
      return tryCpu();
  }
}

async function select(forced: BackendChoice | undefined): Promise<BackendInfo> {
  const order: readonly BackendChoice[] = forced === undefined ? BACKEND_CHOICES : [forced];
  const skipped: BackendInfo['skipped'] = [];
  for (const choice of order) {
    try {
      const device = await tryChoice(choice);
      const info: BackendInfo = { choice, name: tf.getBackend(), device, skipped };
      for (const skip of skipped) log.debug(`backend ${skip.choice} not used: ${skip.reason}`);
      const slow = choice === 'wasm' || choice === 'cpu';
      const message = `TensorFlow.js backend: ${info.name} on ${device}${forced ? ' (forced by MORE_TS_BACKEND)' : ''}`;
      if (slow && forced !== undefined) {
        log.warn(`${message}. ${SLOW_BACKEND_NOTE}`);
      } else if (slow) {
        const reasons = skipped.map((skip) => `${skip.choice}: ${skip.reason}`).join('; ');
        log.warn(`${message}, because the native backend could not load (${reasons}). ${SLOW_BACKEND_NOTE} ` +
          'Run `npm ci` to build the native addon.');
      } else {
        log.info(message);
      }
      return info;
    } catch (error) {
      if (forced !== undefined) {
        throw new Error(`MORE_TS_BACKEND=${forced} could not be loaded: ${errorText(error)}`);
      }
      skipped.push({ choice, reason: errorText(error) });
    }
  }
  throw new Error(`No TensorFlow.js backend could be loaded: ${skipped.map((s) => `${s.choice}: ${s.reason}`).join('; ')}`);
}

/**
 * Chooses and activates the backend once per process and returns what was
 * chosen. Later calls return the same result. `MORE_TS_BACKEND` (one of
 * tensorflow-gpu, tensorflow, wasm, cpu) forces the choice.
 */
export function initBackend(): Promise<BackendInfo> {
  if (current !== undefined) return Promise.resolve(current);
  if (pending === undefined) {
    const forcedText = process.env.MORE_TS_BACKEND;
    let forced: BackendChoice | undefined;
    try {
      forced = forcedText === undefined || forcedText === '' ? undefined : parseChoice(forcedText);
    } catch (error) {
      return Promise.reject(error);
    }
    pending = select(forced).then(
      (info) => {
        current = info;
        return info;
      },
      (error: unknown) => {
        pending = undefined;
        throw error;
      },
    );
  }
  return pending;
}

/** Returns the backend chosen by {@link initBackend}, or undefined before it has run. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

export { tf };
export * from './graph';
