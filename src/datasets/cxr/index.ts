/** Chest X-ray dataset manifests: MIMIC-CXR-JPG, CheXpert, edema severity, and X-ray/ECG pairing. */

export { ChexpertManifest, ChexpertOptions, ChexpertRecord, loadChexpertManifest } from './chexpert';
export { columnIndex, CsvError, CsvTable, findTable, parseCsv, readCsv } from './csv';
export { EdemaLabelSource, EdemaManifest, EdemaOptions, EdemaRecord, loadEdemaSeverity } from './edema';
export {
  applyUncertaintyPolicy, CHEXPERT_COMPETITION, CHEXPERT_OBSERVATIONS, PolicyLabels, RawLabel, UNCERTAINTY_POLICIES, UncertaintyPolicy,
} from './labels';
export {
  CxrSplit, loadMimicCxrManifest, mimicCxrColumns, MimicCxrManifest, MimicCxrOptions, MimicCxrRecord, mimicStudyFolder, parseStudyDateTime,
} from './mimicCxr';
export { PairColumns, pairXrayEcg, PairingOptions, TimedRecord, XrayEcgPair, XrayEcgPairing } from './pairing';
export { formatSummary, ManifestSummary, SkipCounter } from './summary';
