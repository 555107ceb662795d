#!/usr/bin/env node
// Fails early, with the fix, when `npm test` runs before the set-up.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const marker = path.join(root, '.cache', 'setup-complete.json');
if (!fs.existsSync(path.join(root, 'node_modules')) || !fs.existsSync(marker)) {
  process.stderr.write('more-ts is not set up on this machine: run `npm ci` in the repository root first.\n');
  process.exit(1);
}
