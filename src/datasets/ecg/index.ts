export * from './filters';
export * from './preprocess';
export * from './augment';
export * from './load';
