export * from './sections';
export * from './ecg_report';
export * from './labels';
export * from './pairs';
