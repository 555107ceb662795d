export { compileGraph, graphExecutionAvailable, GraphFunction, type CompileGraphOptions } from './compile';
export { isTracing, traceFeed, TraceError } from './trace';
