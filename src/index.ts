/** more-ts: MoRE multimodal contrastive pre-training on TensorFlow.js. */
export * from './backend';
export * from './util/log';
export * from './util/progress';
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export { writeFileAtomic } from './util/atomic';
