/** Chest X-ray reading and preprocessing. */

export { augmentXray, gaussianBlur, XrayAugmentOptions } from './augment';
export { ClaheOptions, clipHistogram, equalizeAdapthist, roundHalfEven } from './clahe';
export { decodeDicom, DicomDecodeOptions, DicomImageInfo, readDicomInfo } from './dicom';
export { decodeImageBuffer, GrayImage, rgbToGray8, XrayDecodeError } from './image';
export {
  claheUint8, decodeXrayFile, looksLikeDicom, normaliseToRgb, preprocessXrayFile, scaleToUnit,
  XRAY_MEAN, XRAY_SIZE, XRAY_STD, XrayPreprocessOptions,
} from './preprocess';
export { resizeBilinear8, resizeBilinearFloat, resizeGray } from './resize';
