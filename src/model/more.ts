/**
 * The MoRE model: an X-ray ViT, an ECG ViT and a report encoder, each with a
 * projection head into one shared space, trained with the report as the
 * anchor (InfoNCE(report, X-ray) + InfoNCE(report, ECG)). The model joins the
 * towers and owns the temperature, and the loss itself lives in `loss.ts`.
 *
 * Weight names follow the reference's `MultiModal` module: `xray_model.vit_model.*`,
 * `ecg_model.vit_model.*`, `text_model.*` (whatever the text encoder names),
 * `projector_xray_text.*`, `projector_ecg_text.*`, `projector_text.*`, and
 * `logit_scale` when the temperature is learnable.
 */
import * as tf from '@tensorflow/tfjs';

import { compileGraph, type GraphFunction } from '../backend/graph';
import { getLogger } from '../util/log';
import { type MoreConfig, type MoreConfigInput, resolveMoreConfig } from './config';
import { EcgEncoder } from './ecg';
import { ProjectionHead } from './heads';
import { withInitialisationSeed } from './layers';
import { Temperature, moreLoss } from './loss';
import { loadInto } from './module';
import type {
  EncoderForwardOptions,
  LoadWeightsOptions,
  LoadWeightsReport,
  ModalityEmbedding,
  ModalityOutput,
  MoreBatch,
  MoreModelApi,
  MoreOutput,
  TextEncoder,
  WeightOwner,
} from './types';
import { VisionTransformer } from './vit';

const log = getLogger('model');

/** Prefixes of each part's weights, as the reference's `state_dict` names them. */
export const MORE_WEIGHT_PREFIXES = {
  image: 'xray_model.vit_model.',
  ecg: 'ecg_model.vit_model.',
  text: 'text_model.',
  imageHead: 'projector_xray_text.',
  ecgHead: 'projector_ecg_text.',
  textHead: 'projector_text.',
} as const;

export interface MoreModelOptions {
  /** Seed of the DropKey masks of both ViTs (the ECG encoder uses seed + 1). Default 0. */
  seed?: number;
  /**
   * Run plain inference calls of `encodeImage`, `encodeEcg` and `encodeText`
   * as compiled TensorFlow graphs on the native backend (default true).
   */
  graphInference?: boolean;
}

/** Returns true when encode options ask for nothing but pooled features and embeddings in inference mode. */
function isPlainInference(options: object): boolean {
  for (const [key, value] of Object.entries(options)) {
    if (value === undefined || (key === 'training' && value === false)) continue;
    return false;
  }
  // A replayed graph has no gradient, so calls under tf.grad run eagerly.
  return tf.engine().state.gradientDepth === 0;
}

export class MoreModel implements MoreModelApi {
  readonly config: MoreConfig;
  readonly image: VisionTransformer;
  readonly ecg: EcgEncoder;
  readonly text: TextEncoder;
  readonly imageHead: ProjectionHead;
  readonly ecgHead: ProjectionHead;
  readonly textHead: ProjectionHead;
  readonly temperature: Temperature;
  private readonly inference?: {
    image: GraphFunction<tf.Tensor2D[]>;
    ecg: GraphFunction<tf.Tensor2D[]>;
    text: GraphFunction<tf.Tensor2D[]>;
  };

  /**
   * Builds the model from a (partial) config; `text` is a built encoder that the
   * model then owns. `textHead.inputDim` defaults to the text encoder's width.
   */
  constructor(config: MoreConfigInput | MoreConfig, text: TextEncoder, options: MoreModelOptions = {}) {
    const input = config as MoreConfigInput;
    this.config = resolveMoreConfig({ ...input, textHead: { inputDim: text.width, ...input.textHead } });
    if (text.width !== this.config.textHead.inputDim) {
      throw new Error(`Text encoder width ${text.width} does not match textHead.inputDim ${this.config.textHead.inputDim}`);
    }
    const seed = options.seed ?? 0;
    // The seed fixes the fresh weights as well as the DropKey masks.
    const parts = withInitialisationSeed(seed, () => ({
      image: new VisionTransformer(this.config.image, { seed }),
      ecg: new EcgEncoder(this.config.ecg, { seed: seed + 1 }),
      imageHead: new ProjectionHead(this.config.imageHead),
      ecgHead: new ProjectionHead(this.config.ecgHead),
      textHead: new ProjectionHead(this.config.textHead),
    }));
    this.image = parts.image;
    this.ecg = parts.ecg;
    this.text = text;
    this.imageHead = parts.imageHead;
    this.ecgHead = parts.ecgHead;
    this.textHead = parts.textHead;
    this.temperature = new Temperature(this.config.temperature);
    if (options.graphInference ?? true) {
      // Weights are frozen into each graph, which speeds up inference; a call after training traces again.
      // Each sample is encoded on its own, so the batch can be split across cores.
      const graph = { freezeVariables: true, splitBatch: true };
      this.inference = {
        image: compileGraph((images) => this.embedded(this.image.forward(images as tf.Tensor4D), this.imageHead), { ...graph, name: 'X-ray inference' }),
        ecg: compileGraph((ecgs) => this.embedded(this.ecg.forward(ecgs as tf.Tensor3D), this.ecgHead), { ...graph, name: 'ECG inference' }),
        text: compileGraph(
          (ids, mask) => this.embedded(this.text.forward(ids as tf.Tensor2D, mask as tf.Tensor2D), this.textHead),
          { ...graph, name: 'report inference' },
        ),
      };
    }
    log.info(
      `MoRE model built: image ${this.image.parameterCount()} parameters, ECG ${this.ecg.parameterCount()}, ` +
        `text ${countScalars(text.trainableVariables())} trainable, temperature ${this.config.temperature.mode} ` +
        `${this.config.temperature.initial}`,
    );
  }

  /** Encodes NHWC X-rays [B, H, W, 3] into features and shared-space embeddings. */
  encodeImage(images: tf.Tensor4D, options: EncoderForwardOptions = {}): ModalityOutput {
    if (this.inference !== undefined && isPlainInference(options)) return asOutput(this.inference.image.call(images));
    return withEmbedding(this.image.forward(images, options), this.imageHead, options.training ?? false);
  }

  /** Encodes leads-first ECGs [B, leads, samples]. */
  encodeEcg(ecgs: tf.Tensor3D, options: EncoderForwardOptions = {}): ModalityOutput {
    if (this.inference !== undefined && isPlainInference(options)) return asOutput(this.inference.ecg.call(ecgs));
    return withEmbedding(this.ecg.forward(ecgs, options), this.ecgHead, options.training ?? false);
  }

  /** Encodes reports given as token ids and attention mask, both [B, T]. */
  encodeText(inputIds: tf.Tensor2D, attentionMask: tf.Tensor2D, options: EncoderForwardOptions = {}): ModalityOutput {
    if (this.inference !== undefined && isPlainInference(options)) return asOutput(this.inference.text.call(inputIds, attentionMask));
    return withEmbedding(this.text.forward(inputIds, attentionMask, options), this.textHead, options.training ?? false);
  }

  /**
   * Embeds a batch. Only the rows that have an X-ray (or ECG) go through that
   * encoder and head, so missing samples never touch BatchNorm statistics.
   */
  forward(batch: MoreBatch, options: { training?: boolean } = {}): MoreOutput {
    const training = options.training ?? false;
    const B = batch.inputIds.shape[0];
    const imageRows = presentRowIndices('images', batch.images, batch.imagePresent, B);
    const ecgRows = presentRowIndices('ecgs', batch.ecgs, batch.ecgPresent, B);
    return tf.tidy(() => {
      const text = this.embedOnly(this.text.forward(batch.inputIds, batch.attentionMask, { training }), this.textHead, training);
      const output: MoreOutput = { text };
      if (batch.images !== undefined && imageRows.length > 0) {
        const images = imageRows.length === B ? batch.images : (tf.gather(batch.images, imageRows) as tf.Tensor4D);
        output.image = this.embedRows(this.image.forward(images, { training }), this.imageHead, training, imageRows);
      }
      if (batch.ecgs !== undefined && ecgRows.length > 0) {
        const ecgs = ecgRows.length === B ? batch.ecgs : (tf.gather(batch.ecgs, ecgRows) as tf.Tensor3D);
        output.ecg = this.embedRows(this.ecg.forward(ecgs, { training }), this.ecgHead, training, ecgRows);
      }
      return output as unknown as tf.TensorContainer;
    }) as unknown as MoreOutput;
  }

  /** InfoNCE(report, X-ray) + InfoNCE(report, ECG) over the present pairs, at the model's temperature. */
  loss(output: MoreOutput): tf.Scalar {
    return moreLoss(output, this.temperature);
  }

  /** Returns every weight under the reference's names (see {@link MORE_WEIGHT_PREFIXES}). */
  namedWeights(): Map<string, tf.Variable> {
    const result = new Map<string, tf.Variable>();
    const parts: [string, WeightOwner | Temperature][] = [
      [MORE_WEIGHT_PREFIXES.image, this.image],
      [MORE_WEIGHT_PREFIXES.ecg, this.ecg],
      [MORE_WEIGHT_PREFIXES.text, this.text],
      [MORE_WEIGHT_PREFIXES.imageHead, this.imageHead],
      [MORE_WEIGHT_PREFIXES.ecgHead, this.ecgHead],
      [MORE_WEIGHT_PREFIXES.textHead, this.textHead],
      ['', this.temperature],
    ];
    for (const [prefix, part] of parts) {
      for (const [name, variable] of part.namedWeights()) result.set(`${prefix}${name}`, variable);
    }
    return result;
  }

  loadNamedWeights(weights: Map<string, tf.Tensor>, options: LoadWeightsOptions = {}): LoadWeightsReport {
    return loadInto(this.namedWeights(), weights, options, 'MoreModel');
  }

  trainableVariables(): tf.Variable[] {
    return [
      ...this.image.trainableVariables(),
      ...this.ecg.trainableVariables(),
      ...this.text.trainableVariables(),
      ...this.imageHead.trainableVariables(),
      ...this.ecgHead.trainableVariables(),
      ...this.textHead.trainableVariables(),
      ...this.temperature.trainableVariables(),
    ];
  }

  dispose(): void {
    if (this.inference !== undefined) {
      for (const compiled of Object.values(this.inference)) compiled.dispose();
    }
    this.image.dispose();
    this.ecg.dispose();
    this.text.dispose();
    this.imageHead.dispose();
    this.ecgHead.dispose();
    this.textHead.dispose();
    this.temperature.dispose();
  }

  /** Returns the pooled features and their inference-mode embedding, for the compiled encode calls. */
  private embedded(encoded: { pooled: tf.Tensor2D }, head: ProjectionHead): tf.Tensor2D[] {
    return [encoded.pooled, head.apply(encoded.pooled, false)];
  }

  private embedOnly(encoded: { pooled: tf.Tensor2D }, head: ProjectionHead, training: boolean): tf.Tensor2D {
    return head.apply(encoded.pooled, training);
  }

  private embedRows(encoded: { pooled: tf.Tensor2D }, head: ProjectionHead, training: boolean, rows: number[]): ModalityEmbedding {
    return { embedding: head.apply(encoded.pooled, training), rows };
  }
}

/** Frees every tensor of a {@link MoreOutput}. */
export function disposeMoreOutput(output: MoreOutput): void {
  tf.dispose([output.text, output.image?.embedding, output.ecg?.embedding].filter((t): t is tf.Tensor2D => t !== undefined));
}

function asOutput([pooled, embedding]: tf.Tensor2D[]): ModalityOutput {
  return { pooled, embedding };
}

function withEmbedding(encoded: ReturnType<VisionTransformer['forward']>, head: ProjectionHead, training: boolean): ModalityOutput {
  const embedding = head.apply(encoded.pooled, training);
  return { ...encoded, embedding };
}

/** Returns the rows of a batch that have `field`, checking the tensor and its presence flags against the batch size. */
export function presentRowIndices(field: string, input: tf.Tensor | undefined, present: boolean[] | undefined, batch: number): number[] {
  if (input === undefined) {
    if (present !== undefined && present.some((flag) => flag)) {
      throw new Error(`Batch flags rows as having ${field} but gives no ${field} tensor`);
    }
    return [];
  }
  if (input.shape[0] !== batch) {
    throw new Error(`Batch ${field} has ${input.shape[0]} rows, expected one per report (${batch})`);
  }
  if (present === undefined) return [...Array(batch).keys()];
  if (present.length !== batch) {
    throw new Error(`Batch ${field} presence flags have length ${present.length}, expected ${batch}`);
  }
  return present.flatMap((flag, row) => (flag ? [row] : []));
}

function countScalars(variables: tf.Variable[]): number {
  return variables.reduce((sum, variable) => sum + variable.size, 0);
}
