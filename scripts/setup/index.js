#!/usr/bin/env node
/**
 * The set-up that `npm ci` (or `npm install`) runs after installing packages:
 * the native TensorFlow backend, the native image addon, the Python/Jupyter environment, a
 * pretrained text encoder for the sample runs, the TypeScript build, the notebook kernel and the JupyterLab extension, in that
 * order. Every step is idempotent and caches its work, so a re-run is fast.
 * `MORE_TS_SKIP_SETUP=1` skips it (for installing a single package).
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');

const STEPS = [
  { name: 'native TensorFlow backend', command: [process.execPath, path.join(__dirname, 'native-backend.js')] },
  { name: 'native image addon', command: [process.execPath, path.join(__dirname, 'native-image.js')] },
  { name: 'Python environment', command: [process.execPath, path.join(__dirname, 'python-env.js')] },
  { name: 'pretrained text encoder', command: [process.execPath, path.join(__dirname, 'models.js')] },
  { name: 'TypeScript build', command: [process.execPath, require.resolve('typescript/bin/tsc', { paths: [ROOT] }), '-p', path.join(ROOT, 'tsconfig.json')] },
  { name: 'notebook kernel', command: [process.execPath, path.join(__dirname, 'kernel.js')], optionalFile: path.join(__dirname, 'kernel.js') },
  { name: 'JupyterLab extension', command: [process.execPath, path.join(__dirname, 'extension.js')], optionalFile: path.join(__dirname, 'extension.js') },
];

function main() {
  if (process.env.MORE_TS_SKIP_SETUP === '1') {
    process.stderr.write('[more-ts setup] skipped (MORE_TS_SKIP_SETUP=1)\n');
    return;
  }
  const marker = path.join(ROOT, '.cache', 'setup-complete.json');
  fs.rmSync(marker, { force: true });
  const started = Date.now();
  for (const step of STEPS) {
    if (step.optionalFile && !fs.existsSync(step.optionalFile)) continue;
    const stepStarted = Date.now();
    process.stderr.write(`[more-ts setup] ${step.name}...\n`);
    const result = childProcess.spawnSync(step.command[0], step.command.slice(1), { cwd: ROOT, stdio: 'inherit' });
    if (result.status !== 0) {
      process.stderr.write(`[more-ts setup] step "${step.name}" failed (exit ${result.status ?? result.signal}); fix the error above and run \`npm ci\` again\n`);
      process.exit(1);
    }
    process.stderr.write(`[more-ts setup] ${step.name} done in ${((Date.now() - stepStarted) / 1000).toFixed(0)} s\n`);
  }
  fs.mkdirSync(path.dirname(marker), { recursive: true });
  fs.writeFileSync(marker, `${JSON.stringify({ completed: new Date().toISOString(), seconds: (Date.now() - started) / 1000 })}\n`);
  process.stderr.write(`[more-ts setup] complete in ${((Date.now() - started) / 1000).toFixed(0)} s\n`);
}

main();
