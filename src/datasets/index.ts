/** Dataset readers: WFDB ECG records, ECG preprocessing, report text, tokenisation and manifests. */

export * from './paths';
export * from './wfdb';
export * from './ecg';
export * from './reports';
export * from './tokenizer';
export * from './tokenizer_files';
export * from './ptbxl';
export * from './mimic_ecg';
export * from './xray';
export * from './cxr';
export * from './pipeline';
