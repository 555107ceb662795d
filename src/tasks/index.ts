export * from './metrics';
export * from './retrieval';
export * from './prompts';
export * from './zeroshot';
export * from './explain';
export * from './tables';
