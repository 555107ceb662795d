/** Shared types of the batch pipeline: sample records, decoder specifications and batches. */

/** One training sample: paths of the modalities it has, and its report text. */
export interface SampleRecord {
  id: string;
  xrayPath?: string;
  ecgPath?: string;
  text: string;
}

/** Per-call context passed to a decoder besides the path and its options. */
export interface DecodeContext {
  /** Per-sample seed for augmentation; absent when augmentation is off. */
  seed?: number;
}

/** A decoder function: reads one file and returns its values (row-major, `shape` of the spec). */
export type DecoderFunction = (filePath: string, options: unknown, context: DecodeContext) => Float32Array | Promise<Float32Array>;

/**
 * A decoder named by module and export, so worker threads can load it:
 * functions cannot be sent to a worker, module paths can. `options` must be
 * structured-cloneable.
 */
export interface DecoderSpec {
  /** Absolute path of the module (a `.ts` file works when the process runs under tsx). */
  module: string;
  exportName: string;
  options?: unknown;
  /** Shape of one decoded sample, for example [224, 224, 3]. */
  shape: number[];
}

/** A batch: per-modality values stacked on a leading batch axis, with masks (1 present, 0 missing or failed). */
export interface Batch {
  ids: string[];
  texts: string[];
  /** [B, ...xray shape] float32, zeros where `xrayMask` is 0. */
  xray: Float32Array;
  xrayShape: number[];
  xrayMask: Uint8Array;
  /** [B, ...ecg shape] float32, zeros where `ecgMask` is 0. */
  ecg: Float32Array;
  ecgShape: number[];
  ecgMask: Uint8Array;
}

/** Counts of samples skipped or masked during the latest pass, by reason. */
export interface PipelineSummary {
  samplesRead: number;
  samplesYielded: number;
  batches: number;
  skipped: Record<string, number>;
  /** Samples kept with one modality masked after it failed to decode, by reason. */
  masked: Record<string, number>;
  /** Up to five examples per reason, with the error message where there was one. */
  examples: Record<string, { id: string; message?: string }[]>;
}
