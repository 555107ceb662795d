/**
 * The built-in decoders of the batch pipeline, loadable by module path in a
 * worker thread: X-ray files to [224, 224, 3] and WFDB records to [12, 1000].
 */

import { Rng } from '../../util/rng';
import { augmentEcg, EcgAugmentOptions } from '../ecg/augment';
import { loadPreprocessedEcg } from '../ecg/load';
import { EcgPreprocessOptions } from '../ecg/preprocess';
import { XrayAugmentOptions } from '../xray/augment';
import { DicomDecodeOptions } from '../xray/dicom';
import { preprocessXrayFile, XRAY_SIZE, XrayResizeMode } from '../xray/preprocess';
import { DecodeContext, DecoderSpec } from './types';

export interface XrayDecoderOptions {
  /** Output side in pixels; default 224. */
  size?: number;
  /** Apply the training augmentations, seeded per sample by the pipeline; default false. */
  augment?: boolean;
  augmentOptions?: XrayAugmentOptions;
  dicom?: DicomDecodeOptions;
  /** 'fast' (default) or 'pillow' (bit-exact with Pillow + scikit-image); see `XrayPreprocessOptions.resize`. */
  resize?: XrayResizeMode;
}

/** Decodes and preprocesses one radiograph to [size, size, 3]. */
export async function decodeXray(filePath: string, options: XrayDecoderOptions = {}, context: DecodeContext = {}): Promise<Float32Array> {
  const augment = options.augment && context.seed !== undefined
    ? { rng: new Rng(context.seed), options: options.augmentOptions }
    : undefined;
  return preprocessXrayFile(filePath, { size: options.size, dicom: options.dicom, resize: options.resize, augment });
}

export interface EcgDecoderOptions {
  preprocess?: EcgPreprocessOptions;
  /** Apply the training augmentations, seeded per sample by the pipeline; default false. */
  augment?: boolean;
  augmentOptions?: EcgAugmentOptions;
  /** Expected [leads, samples]; default [12, 1000] (10 s at 100 Hz). */
  shape?: [number, number];
}

/** Reads and preprocesses one WFDB record (path without extension) to [leads, samples]. */
export async function decodeEcg(recordPath: string, options: EcgDecoderOptions = {}, context: DecodeContext = {}): Promise<Float32Array> {
  let ecg = await loadPreprocessedEcg(recordPath, { ...options.preprocess, dtype: 'float32' });
  if (options.augment && context.seed !== undefined) ecg = augmentEcg(ecg, new Rng(context.seed), options.augmentOptions);
  const [leads, samples] = options.shape ?? [12, 1000];
  if (ecg.leads !== leads || ecg.samples !== samples) {
    throw new Error(`ECG ${recordPath} preprocesses to ${ecg.leads} x ${ecg.samples}, expected ${leads} x ${samples}`);
  }
  return ecg.data instanceof Float32Array ? ecg.data : Float32Array.from(ecg.data);
}

/** Returns the spec of the built-in X-ray decoder. */
export function xrayDecoder(options: XrayDecoderOptions = {}): DecoderSpec {
  const size = options.size ?? XRAY_SIZE;
  return { module: __filename, exportName: 'decodeXray', options, shape: [size, size, 3] };
}

/** Returns the spec of the built-in ECG decoder. */
export function ecgDecoder(options: EcgDecoderOptions = {}): DecoderSpec {
  return { module: __filename, exportName: 'decodeEcg', options, shape: [...(options.shape ?? [12, 1000])] };
}
