/**
 * Safe resolution of file paths that come from dataset metadata (CSV cells,
 * WFDB headers). A metadata path is untrusted input: it must name a file inside
 * the dataset root, so absolute paths, `..` steps that climb out of the root and
 * symbolic links that point outside it are rejected.
 */

import * as fs from 'fs';
import * as path from 'path';

/** Error raised when a metadata path would leave its dataset root. */
export class UnsafePathError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnsafePathError';
  }
}

function isInside(root: string, candidate: string): boolean {
  const relative = path.relative(root, candidate);
  return relative === '' || (!relative.startsWith('..') && !path.isAbsolute(relative));
}

/**
 * Resolves `relativePath` against `root` and returns the absolute path.
 * `source` names where the path came from (for example `record_list.csv line 7`)
 * so the error can point at it. Throws `UnsafePathError` when the path is
 * absolute, contains a NUL byte, climbs out of the root, or, where it already
 * exists, resolves through symbolic links to a place outside the real root.
 */
export function resolveInsideRoot(root: string, relativePath: string, source = 'metadata'): string {
  if (relativePath.includes('\0')) {
    throw new UnsafePathError(`Invalid path ${JSON.stringify(relativePath)} in ${source}: it contains a NUL byte`);
  }
  if (relativePath.trim() === '') {
    throw new UnsafePathError(`Invalid path in ${source}: the path is empty`);
  }
  if (path.isAbsolute(relativePath) || path.win32.isAbsolute(relativePath)) {
    throw new UnsafePathError(
      `Rejected path ${JSON.stringify(relativePath)} in ${source}: expected a path relative to the dataset root ${root}`,
    );
  }
  const absoluteRoot = path.resolve(root);
  const candidate = path.resolve(absoluteRoot, relativePath);
  if (!isInside(absoluteRoot, candidate)) {
    throw new UnsafePathError(
      `Rejected path ${JSON.stringify(relativePath)} in ${source}: it resolves to ${candidate}, outside the dataset root ${absoluteRoot}`,
    );
  }
  if (fs.existsSync(candidate) && fs.existsSync(absoluteRoot)) {
    const realRoot = fs.realpathSync(absoluteRoot);
    const realCandidate = fs.realpathSync(candidate);
    if (!isInside(realRoot, realCandidate)) {
      throw new UnsafePathError(
        `Rejected path ${JSON.stringify(relativePath)} in ${source}: a symbolic link leads to ${realCandidate}, outside the dataset root ${realRoot}`,
      );
    }
  }
  return candidate;
}
