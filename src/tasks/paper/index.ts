export * from './data';
export * from './embed';
export * from './finetune';
export * from './runner';
