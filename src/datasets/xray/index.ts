/** Chest X-ray reading and preprocessing. */

export { augmentXray, gaussianBlur, XrayAugmentOptions } from './augment';
export { ClaheOptions, clipHistogram, equalizeAdapthist, equalizeAdapthistUint8, equalizeAdapthistUint8Js, roundHalfEven } from './clahe';
export { decodeDicom, DicomDecodeOptions, DicomImageInfo, readDicomInfo } from './dicom';
export {
  decodeImageBuffer, decodeResizedNatively, decodeResizedWithLibvips, GrayImage, jpegScaleDenominator, JpegFrame, DECOMPRESSION_BOMB_PIXELS, readJpegFrame,
  resizesWithLibvips, rgbToGray8, XrayDecodeError,
} from './image';
export { NativeGrayImage, nativeImage, NativeImageAddon } from './native';
export { decodeSimplePng, DecodedPng, hasChunkBeforeImageData, isPng, PngHeader, readPngHeader } from './png';
export {
  claheUint8, claheXrayFile, decodeXrayFile, decodeXrayFileResized, looksLikeDicom, normaliseToRgb, preprocessXrayFile, scaleToUnit,
  XRAY_MEAN, XRAY_RESIZE_MODES, XRAY_SIZE, XRAY_STD, XrayPreprocessOptions, XrayResizeMode, XrayResizeOptions,
} from './preprocess';
export { resizeBilinear8, resizeBilinear8Js, resizeBilinearFloat, resizeBilinearFloatJs, resizeGray } from './resize';
