/** The batch pipeline: seeded shuffling, worker-thread decoding with prefetch, masks and skip summaries. */

export { decodeEcg, decodeXray, ecgDecoder, EcgDecoderOptions, xrayDecoder, XrayDecoderOptions } from './decoders';
export { BatchPipeline, batchToTensors, BatchTensors, PipelineOptions } from './pipeline';
export { Batch, DecodeContext, DecoderFunction, DecoderSpec, PipelineSummary, SampleRecord } from './types';
