#!/usr/bin/env node
/**
 * Set-up step: builds the native image addon (`native/image`: CLAHE, Pillow's
 * bilinear resize and JPEG/PNG decoding through TensorFlow's C API) and
 * copies it to `native/image/build/more_image.node`, where
 * `src/datasets/xray/native.ts` loads it.
 *
 * The addon links against the TensorFlow library of the tfjs-node addon
 * (`node_modules/@tensorflow/tfjs-node/deps/lib`, set up by
 * native-backend.js), so it runs before this step. node-gyp compiles it once
 * per combination of addon sources, TensorFlow version and library folder,
 * and Node ABI. The result is cached under `$MORE_TS_CACHE/addons/<hash>`
 * (default `~/.cache/more-ts`), so `npm ci` after wiping node_modules costs
 * a copy.
 *
 * A failure here does not fail the set-up: it prints a warning with the
 * reason, removes any stale copy, and the library uses its TypeScript kernels
 * (and logs that at the first X-ray).
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { nodedirArguments } = require('./node-headers');

const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = process.env.MORE_TS_CACHE || path.join(os.homedir(), '.cache', 'more-ts');
const ADDON_DIR = path.join(ROOT, 'native', 'image');
const TARGET = path.join(ADDON_DIR, 'build', 'more_image.node');
const TFJS_NODE = path.join(ROOT, 'node_modules', '@tensorflow', 'tfjs-node');

function log(message) {
  process.stderr.write(`[more-ts setup] native image addon: ${message}\n`);
}

function run(command, args, options = {}) {
  const result = childProcess.spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  return result;
}

/** Finds the TensorFlow library folders and headers that the tfjs-node addon was built with. */
function findTensorflow() {
  const linkDir = path.join(TFJS_NODE, 'deps', 'lib');
  const library = path.join(linkDir, 'libtensorflow.so');
  if (!fs.existsSync(library)) {
    throw new Error(`${library} is missing; the native TensorFlow backend step (scripts/setup/native-backend.js) must succeed first`);
  }
  const runtimeDir = path.dirname(fs.realpathSync(library));
  // The PyPI route links deps/include to the wheel's headers; the prebuilt route unpacks the C headers there.
  const candidates = [path.join(TFJS_NODE, 'deps', 'include'), path.join(runtimeDir, 'include')];
  const include = candidates.find((dir) => fs.existsSync(path.join(dir, 'tensorflow', 'c', 'eager', 'c_api.h')));
  if (include === undefined) {
    throw new Error(`no TensorFlow C headers (tensorflow/c/eager/c_api.h) under ${candidates.join(' or ')}`);
  }
  return { linkDir, runtimeDir, include: fs.realpathSync(include), version: tensorflowVersion(library) };
}

/** Reads the TensorFlow version from the backend step's record, or identifies the library file when there is none. */
function tensorflowVersion(library) {
  try {
    const record = JSON.parse(fs.readFileSync(path.join(ROOT, '.cache', 'native-backend.json'), 'utf8'));
    if (record.cpu && typeof record.cpu.tf === 'string') return record.cpu.tf;
  } catch {
    // No record: fall back to the library's size and time below.
  }
  const stat = fs.statSync(fs.realpathSync(library));
  return `unknown-${stat.size}-${stat.mtimeMs}`;
}

function cacheKey(tensorflow) {
  const hash = crypto.createHash('sha256');
  const files = ['binding.gyp', ...fs.readdirSync(path.join(ADDON_DIR, 'src')).sort().map((name) => path.join('src', name))];
  for (const file of files) {
    hash.update(`${file}\0`);
    hash.update(fs.readFileSync(path.join(ADDON_DIR, file)));
  }
  // The RUNPATH names the library folder, so a different folder is a different build.
  hash.update([tensorflow.version, tensorflow.runtimeDir, process.versions.modules, process.versions.napi, process.arch, process.platform].join('|'));
  return hash.digest('hex').slice(0, 16);
}

function compile(tensorflow, cachedAddon) {
  log(`compiling with node-gyp against TensorFlow ${tensorflow.version} in ${tensorflow.runtimeDir}`);
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] });
  const build = run(process.execPath, [nodeGyp, 'rebuild', '--silent', ...nodedirArguments(),
    `--tensorflow_include=${tensorflow.include}`, `--tensorflow_link_dir=${tensorflow.linkDir}`,
    `--tensorflow_runtime_dir=${tensorflow.runtimeDir}`],
  { cwd: ADDON_DIR, stdio: ['ignore', 'inherit', 'inherit'] });
  if (build.status !== 0) {
    throw new Error(`node-gyp could not compile native/image (exit ${build.status}); it needs make and a C++17 compiler (apt-get install build-essential)`);
  }
  fs.mkdirSync(path.dirname(cachedAddon), { recursive: true });
  fs.copyFileSync(path.join(ADDON_DIR, 'build', 'Release', 'more_image.node'), `${cachedAddon}.tmp`);
  fs.renameSync(`${cachedAddon}.tmp`, cachedAddon);
}

/** Loads the addon in a child process and checks one CLAHE result and the TensorFlow link; returns the TensorFlow version. */
function verify(file) {
  const script = `
    const addon = require(${JSON.stringify(file)});
    const ramp = Uint8Array.from({ length: 64 }, (_, i) => i * 4);
    const out = addon.clahe8(ramp, 8, 8, 2, 2, 256, 0.01);
    if (out.length !== 64 || out[63] !== 255) throw new Error('unexpected CLAHE output ' + Array.from(out.slice(56)));
    process.stdout.write(addon.tensorflowVersion());
  `;
  const result = run(process.execPath, ['-e', script], { cwd: ROOT });
  if (result.status !== 0) {
    const reason = (result.stderr || '').split('\n').filter((line) => /Error/.test(line)).slice(0, 2).join(' | ');
    throw new Error(`the built addon does not load: ${reason || `exit code ${result.status}`}`);
  }
  return result.stdout.trim();
}

function main() {
  try {
    const tensorflow = findTensorflow();
    const cachedAddon = path.join(CACHE, 'addons', cacheKey(tensorflow), 'more_image.node');
    if (fs.existsSync(cachedAddon)) {
      log(`reusing the cached build ${cachedAddon}`);
    } else {
      compile(tensorflow, cachedAddon);
    }
    fs.mkdirSync(path.dirname(TARGET), { recursive: true });
    // Through a temporary name, so a process that has the old file mapped keeps a whole copy.
    fs.copyFileSync(cachedAddon, `${TARGET}.tmp`);
    fs.renameSync(`${TARGET}.tmp`, TARGET);
    const version = verify(TARGET);
    log(`${path.relative(ROOT, TARGET)} works on TensorFlow ${version}`);
  } catch (error) {
    fs.rmSync(TARGET, { force: true });
    log(`WARNING: not built, so X-ray preprocessing uses the slower TypeScript kernels: ${error.message}`);
  }
}

main();
