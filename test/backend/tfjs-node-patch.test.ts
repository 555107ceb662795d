/**
 * The set-up's source patch of tfjs-node's addon (scripts/setup/tfjs-node-patch.js),
 * applied to small files that contain exactly the passages it replaces.
 */

import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { patchBinding, EDITS, MARKER } = require('../../scripts/setup/tfjs-node-patch.js') as {
  patchBinding: (packageDir: string) => void;
  EDITS: { file: string; from: string; to: string }[];
  MARKER: string;
};

describe('setup/tfjs-node-patch', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'more-tfjs-patch-'));
    fs.mkdirSync(path.join(dir, 'binding'));
    const texts = new Map<string, string>();
    for (const edit of EDITS) texts.set(edit.file, `${texts.get(edit.file) ?? '// start\n'}${edit.from}\n// between\n`);
    for (const [name, text] of texts) fs.writeFileSync(path.join(dir, 'binding', name), text);
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const read = (name: string): string => fs.readFileSync(path.join(dir, 'binding', name), 'utf8');

  it('patches each passage once', () => {
    patchBinding(dir);
    const once = EDITS.map((edit) => read(edit.file));
    patchBinding(dir);
    for (const [index, edit] of EDITS.entries()) {
      assert.ok(read(edit.file).includes(edit.to), `${edit.file}: replacement missing`);
      assert.ok(read(edit.file).includes(MARKER), `${edit.file}: marker missing`);
      assert.equal(read(edit.file), once[index], `${edit.file}: changed by a second run`);
    }
  });

  it('leaves every file unchanged on a missing passage', () => {
    const before = new Map(EDITS.map((edit) => [edit.file, read(edit.file)]));
    const last = EDITS[EDITS.length - 1];
    fs.writeFileSync(path.join(dir, 'binding', last.file), read(last.file).replace(last.from, '// removed'));
    before.set(last.file, read(last.file));

    const file = path.join(dir, 'binding', last.file);
    assert.throws(() => patchBinding(dir), (error: Error) => {
      assert.ok(error.message.startsWith(`cannot patch ${file}: the passage to replace is missing`), error.message);
      return true;
    });
    for (const [name, text] of before) assert.equal(read(name), text, `${name} was written`);
  });

  it('rejects a file patched by another version', () => {
    const first = EDITS[0];
    const file = path.join(dir, 'binding', first.file);
    fs.writeFileSync(file, read(first.file).replace(first.from, `${MARKER.replace(/\d+$/, '0')}\n${first.from}`));
    assert.throws(() => patchBinding(dir), (error: Error) => {
      assert.ok(error.message.startsWith(`cannot patch ${file}: it carries another version of the more-ts patch`), error.message);
      return true;
    });
  });
});
