export * from './header';
export * from './formats';
export * from './record';
export * from './leads';
