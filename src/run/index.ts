/** The main job on the shipped sample data, and its parts. */
export * from './corpus';
export * from './ecg_samples';
export * from './xray_samples';
export * from './data';
export * from './evaluate';
export * from './checkpoint';
export * from './main';
export * from './table';
export * from './showcase';
export * from './report';
