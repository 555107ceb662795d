#!/usr/bin/env node
// Installs the more-ts Jupyter kernel spec into the project's virtual
// environment (.venv/share/jupyter/kernels/more-ts/), where JupyterLab and
// nbclient started from .venv find it. Runs after `npm run build` (the spec
// points at dist/kernel/src/launcher.js) and after the Python set-up that
// creates .venv. Running it again rewrites only what changed.
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const KERNEL_NAME = 'more-ts';
const DISPLAY_NAME = 'MoRE (TypeScript)';

const root = path.resolve(__dirname, '..', '..');
const launcher = path.join(root, 'dist', 'kernel', 'src', 'launcher.js');
const venv = path.join(root, '.venv');
const python = path.join(venv, 'bin', 'python');
const specDir = path.join(venv, 'share', 'jupyter', 'kernels', KERNEL_NAME);

function fail(message) {
  process.stderr.write(`scripts/setup/kernel.js: ${message}\n`);
  process.exit(1);
}

function writeIfChanged(file, text) {
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8') === text) return false;
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text);
  fs.renameSync(temporary, file);
  return true;
}

function kernelSpec() {
  return {
    // The absolute path of the Node.js that runs this set-up, so Jupyter starts
    // the kernel with the same Node.js whatever its own PATH is.
    argv: [process.execPath, launcher, '--connection-file', '{connection_file}'],
    display_name: DISPLAY_NAME,
    language: 'typescript',
    // Jupyter sends SIGINT to interrupt; the kernel turns it into a cooperative stop.
    interrupt_mode: 'signal',
    env: {},
    metadata: { debugger: false },
  };
}

function main() {
  if (!fs.existsSync(launcher)) {
    fail(`${path.relative(root, launcher)} is missing: run \`npm run build\` before this step`);
  }
  if (!fs.existsSync(python)) {
    fail(`${path.relative(root, python)} is missing: create the virtual environment first (node scripts/setup/python-env.js)`);
  }
  fs.mkdirSync(specDir, { recursive: true });
  const changed = writeIfChanged(path.join(specDir, 'kernel.json'), `${JSON.stringify(kernelSpec(), null, 2)}\n`);

  // Ask Jupyter itself where it finds the kernel, so a shadowing spec elsewhere on its path is caught here.
  const listing = spawnSync(python, ['-m', 'jupyter_client.kernelspecapp', 'list', '--json'], { encoding: 'utf8' });
  if (listing.status !== 0) {
    fail(`\`${python} -m jupyter_client.kernelspecapp list --json\` failed: ${(listing.stderr || listing.error || '').toString().trim()}`);
  }
  const found = JSON.parse(listing.stdout).kernelspecs[KERNEL_NAME];
  if (found === undefined) fail(`Jupyter in ${venv} does not list the kernel "${KERNEL_NAME}" after installing it in ${specDir}`);
  if (path.resolve(found.resource_dir) !== path.resolve(specDir)) {
    fail(`Jupyter resolves the kernel "${KERNEL_NAME}" to ${found.resource_dir}, not ${specDir}: remove the other spec`);
  }
  process.stdout.write(`Jupyter kernel "${DISPLAY_NAME}" ${changed ? 'installed in' : 'already up to date in'} ${path.relative(root, specDir)}\n`);
}

main();
