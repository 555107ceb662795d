export * from './data';
export * from './embed';
export * from './runner';
