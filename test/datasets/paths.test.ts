import * as assert from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

import { UnsafePathError, resolveInsideRoot } from '../../src/datasets/paths';

describe('datasets/paths', () => {
  let root: string;
  let outside: string;

  before(() => {
    const base = fs.mkdtempSync(path.join(os.tmpdir(), 'more-paths-'));
    root = path.join(base, 'dataset');
    outside = path.join(base, 'outside');
    fs.mkdirSync(path.join(root, 'files'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.txt'), 'x');
    fs.symlinkSync(outside, path.join(root, 'files', 'link'));
  });

  after(() => {
    fs.rmSync(path.dirname(root), { recursive: true, force: true });
  });

  it('resolves a path inside the root', () => {
    assert.strictEqual(resolveInsideRoot(root, 'files/p10/a.hea'), path.join(root, 'files', 'p10', 'a.hea'));
    assert.strictEqual(resolveInsideRoot(root, 'files/../files/a.hea'), path.join(root, 'files', 'a.hea'));
  });

  it('rejects a path climbing out of the root', () => {
    assert.throws(() => resolveInsideRoot(root, '../outside/secret.txt', 'record_list.csv line 2'), (error: Error) => {
      assert.ok(error instanceof UnsafePathError);
      assert.match(error.message, /record_list\.csv line 2/);
      assert.match(error.message, /outside the dataset root/);
      return true;
    });
  });

  it('rejects absolute paths', () => {
    assert.throws(() => resolveInsideRoot(root, '/etc/passwd'), UnsafePathError);
    assert.throws(() => resolveInsideRoot(root, 'C:\\Windows\\win.ini'), UnsafePathError);
  });

  it('rejects empty and NUL paths', () => {
    assert.throws(() => resolveInsideRoot(root, ''), /empty/);
    assert.throws(() => resolveInsideRoot(root, 'a\0b'), /NUL/);
  });

  it('rejects a symbolic link leaving the root', () => {
    assert.throws(() => resolveInsideRoot(root, 'files/link/secret.txt'), /symbolic link/);
  });
});
