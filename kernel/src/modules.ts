/**
 * Makes `import ... from 'more-ts'` and `from 'more-ts/kernel'` work in cells,
 * whatever folder the notebook is in, without a `node_modules/more-ts` entry
 * that npm would prune.
 *
 * Two hooks are needed because tslab resolves a cell's imports twice:
 * - Type checking: tslab's TypeScript host reads files through the `sys`
 *   object of its bundled compiler and resolves packages with the Node10
 *   rules, starting at `<cwd>/node_modules`. We map `<cwd>/node_modules/more-ts`
 *   onto the repository root, so the compiler reads our package.json (`types`:
 *   dist/src/index.d.ts) and kernel/package.json for `more-ts/kernel`.
 * - Running: tslab passes cells a `require` function in `globalThis.__tslab__`.
 *   We wrap it so `more-ts` and `more-ts/<path>` load from the repository root.
 *
 * NOTE: Both hooks rely on internals of tslab 1.0.22 (the compiler's `sys`
 * being shared, and the `__tslab__` global). A local `.ts` file imported from a
 * cell is loaded by tslab with its own `require`, so `more-ts` does not resolve
 * at run time from inside such a file.
 */
import * as path from 'path';

export const PACKAGE_NAME = 'more-ts';

interface CompilerSys {
  fileExists(file: string): boolean;
  directoryExists(dir: string): boolean;
  readFile(file: string, encoding?: string): string | undefined;
  readDirectory(dir: string, ...rest: unknown[]): string[];
  getDirectories(dir: string): string[];
  realpath?(file: string): string;
}

interface TslabGlobal {
  require: NodeJS.Require;
}

/** Returns the path under `repositoryRoot` that `file` stands for, or undefined when `file` is outside `virtualRoot`. */
export function mapVirtualPath(file: string, virtualRoot: string, repositoryRoot: string): string | undefined {
  const normalized = file.replace(/\\/g, '/');
  const root = virtualRoot.replace(/\\/g, '/');
  if (normalized === root) return repositoryRoot;
  if (!normalized.startsWith(`${root}/`)) return undefined;
  return path.join(repositoryRoot, normalized.slice(root.length + 1));
}

/** Loads the TypeScript compiler instance that tslab itself uses. */
function loadTslabCompiler(): { sys: CompilerSys } {
  const tslabDir = path.dirname(require.resolve('tslab/package.json'));
  const compilerPath = require.resolve('@tslab/typescript-for-tslab', { paths: [tslabDir] });
  return require(compilerPath) as { sys: CompilerSys };
}

/**
 * Redirects the compiler's file system view of `<cwd>/node_modules/more-ts`
 * to `repositoryRoot`. Must run before tslab creates its converters.
 */
export function installTypeResolution(repositoryRoot: string, cwd: string = process.cwd()): void {
  const sys = loadTslabCompiler().sys;
  const virtualRoot = path.join(cwd, 'node_modules', PACKAGE_NAME);
  const map = (file: string): string => mapVirtualPath(file, virtualRoot, repositoryRoot) ?? file;

  const { fileExists, directoryExists, readFile, readDirectory, getDirectories, realpath } = sys;
  sys.fileExists = (file) => fileExists.call(sys, map(file));
  sys.directoryExists = (dir) => directoryExists.call(sys, map(dir));
  sys.readFile = (file, encoding) => readFile.call(sys, map(file), encoding);
  sys.readDirectory = (dir, ...rest) => readDirectory.call(sys, map(dir), ...rest);
  sys.getDirectories = (dir) => getDirectories.call(sys, map(dir));
  // Resolving to the real path makes the compiler watch the real dist/ files,
  // so a rebuild of the library is seen by the next cell.
  if (realpath !== undefined) sys.realpath = (file) => realpath.call(sys, map(file));
}

/**
 * Wraps the `require` that tslab gives cells so that `more-ts` resolves to
 * `repositoryRoot`. Must run after tslab created its executor.
 */
export function installRuntimeResolution(repositoryRoot: string): void {
  const holder = (globalThis as unknown as { __tslab__?: TslabGlobal }).__tslab__;
  if (holder === undefined) {
    throw new Error('tslab did not define globalThis.__tslab__: create the executor before installing module resolution');
  }
  const cellRequire = holder.require;
  const wrapped = new Proxy(cellRequire, {
    apply(target, thisArg, args: unknown[]) {
      const id = args[0];
      if (args.length === 1 && typeof id === 'string') {
        if (id === PACKAGE_NAME) return require(repositoryRoot);
        if (id.startsWith(`${PACKAGE_NAME}/`)) return require(path.join(repositoryRoot, id.slice(PACKAGE_NAME.length + 1)));
      }
      return Reflect.apply(target, thisArg, args);
    },
  });
  holder.require = wrapped;
}
