import * as fs from 'fs';
import * as path from 'path';

let cached: string | undefined;

/**
 * Returns the repository root (the folder whose package.json names
 * `more-ts`), found by walking up from this file. It is the same whether the
 * code runs from `src/` through tsx or from the compiled `dist/src/`.
 */
export function repositoryRoot(): string {
  if (cached !== undefined) return cached;
  let dir = __dirname;
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (fs.existsSync(manifest)) {
      try {
        if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'more-ts') {
          cached = dir;
          return dir;
        }
      } catch {
        // An unreadable package.json belongs to something else; keep walking up.
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`No more-ts package.json found above ${__dirname}`);
    dir = parent;
  }
}
