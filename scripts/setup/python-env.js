#!/usr/bin/env node
/**
 * Set-up step: the project's own Python environment in `.venv`, with
 * JupyterLab, nbclient and the extension builder from `requirements/jupyter.txt`.
 * With `--reference`, it also installs the reference tools of
 * `requirements/reference.txt` (PyTorch, timm, transformers, peft,
 * scikit-learn, ...) that regenerate test fixtures and serve as the baseline
 * in bench/. A requirements file whose hash matches the last install is skipped,
 * so re-runs cost a second.
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..', '..');
const VENV = path.join(ROOT, '.venv');
const VENV_PYTHON = path.join(VENV, 'bin', 'python');

function log(message) {
  process.stderr.write(`[more-ts setup] python: ${message}\n`);
}

function run(command, args) {
  const result = childProcess.spawnSync(command, args, { stdio: ['ignore', 'inherit', 'inherit'] });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed with exit code ${result.status}`);
}

function ensureVenv() {
  if (fs.existsSync(VENV_PYTHON)) return;
  const python = process.env.PYTHON || 'python3';
  log(`creating ${VENV} with ${python}`);
  run(python, ['-m', 'venv', VENV]);
}

function installRequirements(name) {
  const file = path.join(ROOT, 'requirements', `${name}.txt`);
  const hash = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
  const stamp = path.join(VENV, `.more-ts-${name}.sha256`);
  if (fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === hash) {
    log(`requirements/${name}.txt already installed`);
    return;
  }
  log(`installing requirements/${name}.txt into .venv`);
  run(VENV_PYTHON, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', '-r', file]);
  fs.writeFileSync(stamp, `${hash}\n`);
}

function main() {
  const args = process.argv.slice(2);
  const unknown = args.filter((arg) => arg !== '--reference');
  if (unknown.length > 0) {
    process.stderr.write(`usage: node scripts/setup/python-env.js [--reference] (unknown: ${unknown.join(' ')})\n`);
    process.exit(2);
  }
  try {
    ensureVenv();
    installRequirements('jupyter');
    if (args.includes('--reference')) installRequirements('reference');
  } catch (error) {
    process.stderr.write(`[more-ts setup] python FAILED: ${error.message}\n`);
    process.exit(1);
  }
}

main();
