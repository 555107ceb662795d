/**
 * Batch sources that yield whole epochs in their own order, such as the
 * worker-thread {@link BatchPipeline} of the datasets module, as opposed to
 * index-addressed sources (`BatchSource`) whose order the trainer chooses.
 */
import type { Batch } from '../../datasets/pipeline/types';

/** One batch of an epoch with the number of samples in it. */
export interface SizedBatch<B> {
  batch: B;
  samples: number;
}

/**
 * A dataset that yields the batches of an epoch itself. Resumption is exact
 * only if `epochBatches(e)` yields the same batches every time it is called
 * for the same `e` (a seeded order and seeded augmentation).
 */
export interface EpochBatchSource<B> {
  /** Number of samples. */
  readonly size: number;
  /**
   * Expected batches per epoch, for the progress total and fractional
   * schedule steps. The actual count may be lower when samples are skipped.
   */
  readonly batchesPerEpoch: number;
  epochBatches(epoch: number): AsyncIterable<SizedBatch<B>> | Iterable<SizedBatch<B>>;
  /** Frees a batch; without it the trainer uses `tf.dispose`. */
  disposeBatch?(batch: B): void;
}

/** Returns true when `source` yields whole epochs rather than loading batches by index. */
export function isEpochBatchSource<B>(source: object): source is EpochBatchSource<B> {
  return typeof (source as Partial<EpochBatchSource<B>>).epochBatches === 'function';
}

/** The part of `BatchPipeline` the adapter uses. */
export interface EpochPipeline {
  readonly size: number;
  batches(epoch: number): AsyncIterable<Batch>;
}

/**
 * Turns a batch pipeline into a training source: each pipeline batch goes
 * through `toBatch` (tokenise the texts, copy the arrays into tensors) and
 * is handed to the trainer. `batchSize` and `dropLast` must be the
 * pipeline's own settings, which give the expected number of batches.
 */
export function pipelineBatchSource<B>(
  pipeline: EpochPipeline,
  toBatch: (batch: Batch) => B,
  options: { batchSize: number; dropLast?: boolean },
): EpochBatchSource<B> {
  const { batchSize, dropLast = false } = options;
  if (!Number.isInteger(batchSize) || batchSize < 1) {
    throw new Error(`Invalid batchSize ${batchSize}: expected the pipeline's positive integer batch size`);
  }
  const full = Math.floor(pipeline.size / batchSize);
  return {
    size: pipeline.size,
    batchesPerEpoch: dropLast || pipeline.size % batchSize === 0 ? full : full + 1,
    async *epochBatches(epoch: number): AsyncGenerator<SizedBatch<B>> {
      for await (const batch of pipeline.batches(epoch)) {
        yield { batch: toBatch(batch), samples: batch.ids.length };
      }
    },
  };
}
