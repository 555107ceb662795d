/**
 * Notebook helpers of the more-ts kernel, imported in cells as
 * `import * as nb from 'more-ts/kernel'`.
 */
export {
  DisplayHandle, displayBundle, showHtml, escapeHtml, showVegaLite, summarizeVegaLite, showDataFrame, dataFrameToHtml,
  showBackend, describeBackend, VEGA_LITE_MIME_TYPE, VEGA_LITE_SCHEMA,
} from './display';
export type { DisplayOptions, VegaLiteSpec, VegaLiteChannel, TabularFrame } from './display';
export { encodePng, showImage, heatmapOverlay, heatColor } from './images';
export type { RawImage, HeatmapOverlayOptions } from './images';
export { showExplanation, showRetrieval, summarizeExplanation, summarizeRetrieval, renderXrayOverlay, renderEcgRelevance, decodeGrayscale } from './bundles';
export { NotebookProgress } from './progress';
export type { NotebookProgressOptions } from './progress';
export type { MimeBundle } from './output';
export { requestInterrupt, interruptRequested, clearInterrupt, pollInterrupt } from '../../src/util/interrupt';
