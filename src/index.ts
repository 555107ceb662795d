/**
 * more-ts: MoRE multimodal contrastive pre-training (chest X-ray, 12-lead ECG
 * and report) on TensorFlow.js. Each area is a namespace, so names that two
 * areas share (PTB-XL superclasses, CheXpert observations) stay unambiguous:
 * `model`, `datasets`, `tasks` (training, probes, zero-shot, retrieval,
 * explanations, metrics), `viz` (Vega-Lite specs and extension bundles) and
 * `run` (the main job on the shipped samples).
 */
export * from './backend';
export * from './util/log';
export * from './util/progress';
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export { writeFileAtomic } from './util/atomic';
export { clearInterrupt, interruptRequested, requestInterrupt } from './util/interrupt';

export * as model from './model';
export * as datasets from './datasets';
export * as tasks from './tasks';
export * as viz from './viz';
export * as run from './run';
