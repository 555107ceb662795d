/**
 * The batch pipeline: seeded shuffling, decoding on worker threads with
 * prefetch, per-modality masks for samples that lack an X-ray or an ECG, and a
 * summary of every sample skipped and why.
 */

import * as os from 'os';
import * as tf from '@tensorflow/tfjs';
import { getLogger } from '../../util/log';
import { Rng } from '../../util/rng';
import { WorkerPool } from './pool';
import { Batch, DecoderSpec, PipelineSummary, SampleRecord } from './types';
import { loadDecoder } from './worker';

const logger = getLogger('datasets.pipeline');

export interface PipelineOptions {
  batchSize: number;
  /** Shuffle the sample order each epoch; default true. */
  shuffle?: boolean;
  /** Seed of the shuffle and of per-sample augmentation seeds; default 0. */
  seed?: number;
  xray?: DecoderSpec;
  ecg?: DecoderSpec;
  /** Batches decoded ahead of the consumer; default 2. */
  prefetch?: number;
  /** Worker threads; 0 decodes on the calling thread. Default: CPU count - 1, between 1 and 4. */
  workers?: number;
  /** Drop a final batch smaller than `batchSize`; default false. */
  dropLast?: boolean;
  /** When a modality fails to decode: skip the sample (default) or keep it with that modality masked. */
  onDecodeError?: 'skip' | 'mask';
  /** Give decoders a per-sample seed so they can augment; default false. */
  augment?: boolean;
  /** Time allowed for one file, in milliseconds; default 120000. */
  taskTimeoutMs?: number;
}

interface DecodedSample {
  record: SampleRecord;
  xray?: Float32Array;
  ecg?: Float32Array;
}

type Modality = 'xray' | 'ecg';
const MODALITY_NAME: Record<Modality, string> = { xray: 'X-ray', ecg: 'ECG' };

function product(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Mixes the pipeline seed, epoch and sample index into one 32-bit seed (splitmix-style). */
function mixSeed(seed: number, epoch: number, index: number): number {
  let z = (seed ^ Math.imul(epoch + 1, 0x9e3779b9) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0;
  z = Math.imul(z ^ (z >>> 16), 0x7feb352d) >>> 0;
  z = Math.imul(z ^ (z >>> 15), 0x846ca68b) >>> 0;
  return (z ^ (z >>> 16)) >>> 0;
}

class SummaryCounter {
  summary: PipelineSummary = { samplesRead: 0, samplesYielded: 0, batches: 0, skipped: {}, masked: {}, examples: {} };

  private example(reason: string, id: string, message?: string): void {
    const list = (this.summary.examples[reason] ??= []);
    if (list.length < 5) list.push(message === undefined ? { id } : { id, message });
  }

  skip(reason: string, id: string, message?: string): void {
    this.summary.skipped[reason] = (this.summary.skipped[reason] ?? 0) + 1;
    this.example(reason, id, message);
  }

  mask(reason: string, id: string, message?: string): void {
    this.summary.masked[reason] = (this.summary.masked[reason] ?? 0) + 1;
    this.example(reason, id, message);
  }
}

/**
 * Turns sample records into batches. Records are taken as given (an array or
 * any iterable, read once); `batches(epoch)` runs one pass. Call `close()`
 * when done to stop the worker threads.
 */
export class BatchPipeline {
  private readonly records: SampleRecord[];
  private readonly pool?: WorkerPool;
  private counter = new SummaryCounter();
  private closed = false;

  constructor(source: Iterable<SampleRecord>, private readonly options: PipelineOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new Error(`Invalid batchSize ${options.batchSize}: expected a positive integer`);
    }
    const prefetch = options.prefetch ?? 2;
    if (!Number.isInteger(prefetch) || prefetch < 1) throw new Error(`Invalid prefetch ${prefetch}: expected a positive integer`);
    if (options.onDecodeError !== undefined && options.onDecodeError !== 'skip' && options.onDecodeError !== 'mask') {
      throw new Error(`Invalid onDecodeError "${options.onDecodeError}": expected skip or mask`);
    }
    this.records = [...source];
    for (const record of this.records) {
      if (record.xrayPath !== undefined && options.xray === undefined) {
        throw new Error(`Sample ${record.id} has an X-ray path but the pipeline has no X-ray decoder: pass options.xray`);
      }
      if (record.ecgPath !== undefined && options.ecg === undefined) {
        throw new Error(`Sample ${record.id} has an ECG path but the pipeline has no ECG decoder: pass options.ecg`);
      }
    }
    const workers = options.workers ?? Math.max(1, Math.min(4, os.cpus().length - 1));
    if (!Number.isInteger(workers) || workers < 0) throw new Error(`Invalid workers ${workers}: expected a non-negative integer`);
    if (workers > 0) this.pool = new WorkerPool(workers, options.taskTimeoutMs ?? 120_000);
  }

  /** Number of records given (before any skipping). */
  get size(): number {
    return this.records.length;
  }

  /** Summary of the latest (or running) pass. */
  get summary(): PipelineSummary {
    return this.counter.summary;
  }

  /** Returns the sample order of an epoch: shuffled with a seed derived from the seed and the epoch, or as given. */
  order(epoch: number): number[] {
    const indices = this.records.map((_, i) => i);
    if (this.options.shuffle === false) return indices;
    return new Rng(mixSeed(this.options.seed ?? 0, epoch, -1)).shuffle(indices);
  }

  private async decode(modality: Modality, filePath: string, seed: number | undefined): Promise<Float32Array> {
    const spec = this.options[modality] as DecoderSpec;
    let data: Float32Array;
    if (this.pool !== undefined) {
      data = await this.pool.run({ module: spec.module, exportName: spec.exportName, filePath, options: spec.options, seed });
    } else {
      data = await loadDecoder(spec.module, spec.exportName)(filePath, spec.options, { seed });
    }
    const expected = product(spec.shape);
    if (data.length !== expected) {
      throw new Error(`decoder ${spec.exportName} returned ${data.length} values for ${filePath}, expected ${expected} (shape ${spec.shape.join(' x ')})`);
    }
    return data;
  }

  /** Decodes one sample; never rejects, so prefetched work cannot raise unhandled errors. */
  private async decodeSample(record: SampleRecord, seed: number | undefined): Promise<DecodedSample | undefined> {
    if (record.xrayPath === undefined && record.ecgPath === undefined) {
      this.counter.skip('no X-ray or ECG path', record.id);
      return undefined;
    }
    const sample: DecodedSample = { record };
    const mask = this.options.onDecodeError === 'mask';
    for (const modality of ['xray', 'ecg'] as const) {
      const filePath = modality === 'xray' ? record.xrayPath : record.ecgPath;
      if (filePath === undefined) continue;
      try {
        sample[modality] = await this.decode(modality, filePath, seed);
      } catch (error) {
        const reason = `${MODALITY_NAME[modality]} decoding failed`;
        const message = (error as Error).message;
        if (!mask) {
          this.counter.skip(reason, record.id, message);
          return undefined;
        }
        this.counter.mask(reason, record.id, message);
      }
    }
    if (sample.xray === undefined && sample.ecg === undefined) {
      this.counter.skip('every modality failed to decode', record.id);
      return undefined;
    }
    return sample;
  }

  private assemble(samples: DecodedSample[]): Batch {
    const count = samples.length;
    const xrayShape = this.options.xray?.shape ?? [0];
    const ecgShape = this.options.ecg?.shape ?? [0];
    const xraySize = product(xrayShape);
    const ecgSize = product(ecgShape);
    const batch: Batch = {
      ids: samples.map((s) => s.record.id),
      texts: samples.map((s) => s.record.text),
      xray: new Float32Array(count * xraySize),
      xrayShape: [count, ...xrayShape],
      xrayMask: new Uint8Array(count),
      ecg: new Float32Array(count * ecgSize),
      ecgShape: [count, ...ecgShape],
      ecgMask: new Uint8Array(count),
    };
    samples.forEach((sample, i) => {
      if (sample.xray !== undefined) {
        batch.xray.set(sample.xray, i * xraySize);
        batch.xrayMask[i] = 1;
      }
      if (sample.ecg !== undefined) {
        batch.ecg.set(sample.ecg, i * ecgSize);
        batch.ecgMask[i] = 1;
      }
    });
    return batch;
  }

  /**
   * Yields the batches of one epoch in order. Up to `prefetch` batches of
   * samples are decoded ahead. Skipped samples do not leave gaps: each batch
   * except possibly the last has `batchSize` samples.
   */
  async *batches(epoch = 0): AsyncGenerator<Batch> {
    if (this.closed) throw new Error('The pipeline is closed');
    this.counter = new SummaryCounter();
    const counter = this.counter;
    const order = this.order(epoch);
    const capacity = this.options.batchSize * (this.options.prefetch ?? 2);
    const augment = this.options.augment ?? false;
    const seed = this.options.seed ?? 0;
    const inFlight: Promise<DecodedSample | undefined>[] = [];
    let next = 0;
    const fill = (): void => {
      while (next < order.length && inFlight.length < capacity) {
        const index = order[next++];
        counter.summary.samplesRead++;
        inFlight.push(this.decodeSample(this.records[index], augment ? mixSeed(seed, epoch, index) : undefined));
      }
    };
    let pending: DecodedSample[] = [];
    fill();
    while (inFlight.length > 0) {
      const sample = await (inFlight.shift() as Promise<DecodedSample | undefined>);
      fill();
      if (sample === undefined) continue;
      pending.push(sample);
      if (pending.length === this.options.batchSize) {
        counter.summary.samplesYielded += pending.length;
        counter.summary.batches++;
        yield this.assemble(pending);
        pending = [];
      }
    }
    if (pending.length > 0 && !this.options.dropLast) {
      counter.summary.samplesYielded += pending.length;
      counter.summary.batches++;
      yield this.assemble(pending);
    } else if (pending.length > 0) {
      for (const sample of pending) counter.skip('dropped with the last partial batch', sample.record.id);
    }
    const skipped = Object.values(counter.summary.skipped).reduce((a, b) => a + b, 0);
    if (skipped > 0) logger.warn(`epoch ${epoch}: skipped ${skipped} samples ${JSON.stringify(counter.summary.skipped)}`);
  }

  /** Stops the worker threads. */
  async close(): Promise<void> {
    this.closed = true;
    await this.pool?.close();
  }
}

/** Tensors of a batch; the caller owns them and must dispose them. A modality without a decoder is null. */
export interface BatchTensors {
  xray: tf.Tensor4D | null;
  xrayMask: tf.Tensor1D;
  ecg: tf.Tensor3D | null;
  ecgMask: tf.Tensor1D;
}

/** Copies a batch into tensors (X-ray NHWC, ECG [B, leads, samples], float32 masks). */
export function batchToTensors(batch: Batch): BatchTensors {
  const hasXray = batch.xray.length > 0;
  const hasEcg = batch.ecg.length > 0;
  if (hasXray && batch.xrayShape.length !== 4) {
    throw new Error(`Invalid X-ray batch shape [${batch.xrayShape.join(', ')}]: expected [B, H, W, C]`);
  }
  if (hasEcg && batch.ecgShape.length !== 3) {
    throw new Error(`Invalid ECG batch shape [${batch.ecgShape.join(', ')}]: expected [B, leads, samples]`);
  }
  return {
    xray: hasXray ? tf.tensor4d(batch.xray, batch.xrayShape as [number, number, number, number], 'float32') : null,
    xrayMask: tf.tensor1d(Float32Array.from(batch.xrayMask), 'float32'),
    ecg: hasEcg ? tf.tensor3d(batch.ecg, batch.ecgShape as [number, number, number], 'float32') : null,
    ecgMask: tf.tensor1d(Float32Array.from(batch.ecgMask), 'float32'),
  };
}
