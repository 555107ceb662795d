#!/usr/bin/env node
// Opens JupyterLab from the project's .venv, bound to 127.0.0.1, with
// notebooks/ as its root folder, the more-ts kernel and the more-ts-jupyter
// extension. Extra arguments go to `jupyter lab` (for example --port=8890 or
// --ServerApp.root_dir=DIR).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawn } = require('child_process');

const root = path.resolve(__dirname, '..');
const jupyter = path.join(root, '.venv', 'bin', 'jupyter');
const kernelSpec = path.join(root, '.venv', 'share', 'jupyter', 'kernels', 'more-ts', 'kernel.json');
const extension = path.join(root, '.venv', 'share', 'jupyter', 'labextensions', 'more-ts-jupyter');
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

function fail(message) {
  process.stderr.write(`npm run lab: ${message}\n`);
  process.exit(1);
}

if (!fs.existsSync(jupyter)) fail(`${jupyter} is missing: run the set-up first (npm ci)`);
if (!fs.existsSync(kernelSpec)) fail(`the kernel spec ${kernelSpec} is missing: run \`npm run build && node scripts/setup/kernel.js\``);
if (!fs.existsSync(extension)) {
  process.stderr.write(`npm run lab: the extension is not installed in ${extension}; explanations and retrieval results will show as text only\n`);
}

const extra = process.argv.slice(2);
// Both `--ip=ADDRESS` and `--ip ADDRESS` (traitlets accepts either form) must name a loopback address.
extra.forEach((arg, index) => {
  const joined = /^--(?:ServerApp\.)?ip=(.*)$/.exec(arg);
  const separate = /^--(?:ServerApp\.)?ip$/.test(arg) ? extra[index + 1] : undefined;
  const address = joined ? joined[1] : separate;
  if (address !== undefined && !LOOPBACK.has(address)) fail(`JupyterLab binds only to 127.0.0.1 here; got ${arg} ${separate ?? ''}`.trim());
  if (/^--(?:ServerApp\.)?ip$/.test(arg) && separate === undefined) fail(`${arg} needs an address`);
});

// Jupyter rejects a second root folder option, so a root folder given by the caller replaces ours.
const callerSetsRoot = extra.some((arg) => /^--(?:ServerApp\.root_dir|notebook-dir)(?:=|$)/.test(arg));
const rootArgs = callerSetsRoot ? [] : [`--ServerApp.root_dir=${path.join(root, 'notebooks')}`];
const args = ['lab', '--ServerApp.ip=127.0.0.1', ...rootArgs, ...extra];
const child = spawn(jupyter, args, { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
