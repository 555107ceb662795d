#!/usr/bin/env node
/**
 * Set-up step: makes the native TensorFlow backend of TensorFlow.js loadable.
 *
 * `@tensorflow/tfjs-node` normally downloads a prebuilt libtensorflow 2.9.1 and
 * a prebuilt addon from Google's storage host during its install script. Where
 * that host is reachable, this step runs that script. Where it is not, the C
 * library and its headers come from PyPI's TensorFlow wheel: `tensorflow-cpu`,
 * or `tensorflow` with CUDA packages on a machine with an NVIDIA GPU. Its
 * `libtensorflow_cc.so.2` exports the C and eager C APIs that the addon calls,
 * so node-gyp compiles the addon against it, with a small source change
 * (tfjs-node-patch.js) that lets the library give a session its own thread
 * settings.
 *
 * Everything fetched goes to a cache (`$MORE_TS_CACHE`, default
 * `~/.cache/more-ts`), keyed by the TensorFlow and addon versions, so a
 * re-run, or `npm ci` wiping node_modules, costs seconds. Safe to re-run.
 *
 * Environment:
 *   MORE_TS_TF_ROUTE=auto|prebuilt|pypi   which route to take (default auto:
 *                                         prebuilt first, PyPI when it fails)
 *   MORE_TS_GPU=auto|1|0                  build the CUDA addon too (default
 *                                         auto: when `nvidia-smi -L` lists a GPU)
 *   MORE_TS_TF_VERSION                    TensorFlow wheel version (default below)
 */
'use strict';

const childProcess = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const os = require('os');
const path = require('path');

const { nodedirArguments } = require('./node-headers');
const { patchBinding, PATCH_VERSION } = require('./tfjs-node-patch');

const ROOT = path.resolve(__dirname, '..', '..');
const CACHE = process.env.MORE_TS_CACHE || path.join(os.homedir(), '.cache', 'more-ts');
const TF_VERSION = process.env.MORE_TS_TF_VERSION || '2.21.0';
const PREBUILT_TIMEOUT_MS = 120000;

function log(message) {
  process.stderr.write(`[more-ts setup] native backend: ${message}\n`);
}

function fail(message) {
  process.stderr.write(`[more-ts setup] native backend FAILED: ${message}\n`);
  process.exit(1);
}

function run(command, args, options = {}) {
  const result = childProcess.spawnSync(command, args, { encoding: 'utf8', ...options });
  if (result.error) throw new Error(`${command} could not start: ${result.error.message}`);
  return result;
}

function findPython() {
  for (const candidate of [process.env.PYTHON, 'python3', 'python']) {
    if (!candidate) continue;
    const probe = run(candidate, ['-c', 'import sys; print(sys.version_info[0])']);
    if (probe.status === 0 && probe.stdout.trim() === '3') return candidate;
  }
  throw new Error('no Python 3 interpreter found (needed for pip, to fetch the TensorFlow wheel from PyPI); install python3 and pip');
}

/** Variant of the addon: the CPU package or the GPU package of tfjs-node. */
function variants() {
  const setting = (process.env.MORE_TS_GPU || 'auto').toLowerCase();
  if (!['auto', '1', '0'].includes(setting)) {
    throw new Error(`invalid MORE_TS_GPU "${process.env.MORE_TS_GPU}": expected auto, 1 or 0`);
  }
  let gpu = setting === '1';
  if (setting === 'auto') {
    const smi = childProcess.spawnSync('nvidia-smi', ['-L'], { encoding: 'utf8' });
    gpu = smi.status === 0 && /GPU \d+:/.test(smi.stdout);
  }
  const list = [{ kind: 'cpu', packageName: '@tensorflow/tfjs-node', wheel: 'tensorflow-cpu', extras: '' }];
  if (gpu) list.push({ kind: 'gpu', packageName: '@tensorflow/tfjs-node-gpu', wheel: 'tensorflow', extras: '[and-cuda]' });
  return list;
}

function packageDir(packageName) {
  const dir = path.join(ROOT, 'node_modules', ...packageName.split('/'));
  if (!fs.existsSync(path.join(dir, 'package.json'))) {
    throw new Error(`${packageName} is not installed in ${path.join(ROOT, 'node_modules')}; run npm ci first`);
  }
  return dir;
}

function addonPath(dir) {
  // node-pre-gyp picks the highest N-API version listed in package.json that Node supports.
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const supported = pkg.binary.napi_versions.filter((v) => v <= Number(process.versions.napi));
  const napi = Math.max(...supported);
  return { napi, file: path.join(dir, pkg.binary.module_path.replace('{napi_build_version}', String(napi)), 'tfjs_binding.node') };
}

/** Loads the addon in a child process and runs one matmul; returns the TensorFlow version or throws with the reason. */
function verify(variant) {
  const script = `
    const tf = require(${JSON.stringify(variant.packageName)});
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const product = Array.from(tf.matMul(a, a).dataSync());
    if (product.join() !== '7,10,15,22') throw new Error('wrong matmul result ' + product);
    const binding = tf.backend().binding;
    process.stdout.write(JSON.stringify({ tf: binding.TF_Version, gpu: tf.backend().isUsingGpuDevice, sessionConfig: binding.sessionConfigSupported === true }));
  `;
  const result = run(process.execPath, ['-e', script], { cwd: ROOT, env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (result.status !== 0) {
    const reason = (result.stderr || '').split('\n').filter((line) => /Error|error/.test(line)).slice(0, 3).join(' | ');
    throw new Error(reason || `exit code ${result.status}`);
  }
  return JSON.parse(result.stdout.trim().split('\n').pop());
}

function tryPrebuilt(variant, dir) {
  log(`trying the prebuilt download of ${variant.packageName} (libtensorflow from its own host)`);
  const args = [path.join(dir, 'scripts', 'install.js')];
  if (variant.kind === 'gpu') args.push('gpu', 'download');
  const result = run(process.execPath, args, { cwd: dir, timeout: PREBUILT_TIMEOUT_MS });
  if (result.status !== 0) {
    const lines = `${result.stdout}\n${result.stderr}`.split('\n');
    const reason = lines.find((line) => /ENOTFOUND|ECONNREFUSED|ETIMEDOUT|EAI_AGAIN|Error:/.test(line)) || `exit code ${result.status}`;
    throw new Error(`prebuilt download failed: ${reason.trim()}`);
  }
  return verify(variant);
}

/** Downloads the TensorFlow wheel (and, for the GPU variant, its CUDA packages) into the cache; returns the folder holding `tensorflow/`. */
function fetchWheel(variant, python) {
  const target = path.join(CACHE, 'pypi', `${variant.wheel}-${TF_VERSION}`);
  const done = path.join(target, '.complete');
  if (fs.existsSync(done)) return target;
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target, { recursive: true });
  log(`fetching ${variant.wheel}${variant.extras}==${TF_VERSION} from PyPI into ${target}`);
  if (variant.kind === 'cpu') {
    // Only the shared libraries and headers are needed: unpack the wheel, skip its Python dependencies.
    const wheels = path.join(CACHE, 'pypi', 'wheels');
    fs.mkdirSync(wheels, { recursive: true });
    const download = run(python, ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '-d', wheels,
      `${variant.wheel}==${TF_VERSION}`], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (download.status !== 0) throw new Error(`pip download of ${variant.wheel}==${TF_VERSION} failed (exit ${download.status})`);
    const wheel = fs.readdirSync(wheels).find((name) => name.startsWith(`${variant.wheel.replace(/-/g, '_')}-${TF_VERSION}-`) && name.endsWith('.whl'));
    if (!wheel) throw new Error(`pip reported success but no ${variant.wheel} ${TF_VERSION} wheel is in ${wheels}`);
    const unpack = run(python, ['-c', `
import sys, zipfile
wanted = ('tensorflow/include/', 'tensorflow/libtensorflow_cc.so', 'tensorflow/libtensorflow_framework.so')
with zipfile.ZipFile(sys.argv[1]) as archive:
    names = [n for n in archive.namelist() if n.startswith(wanted)]
    archive.extractall(sys.argv[2], members=names)
print(len(names))
`, path.join(wheels, wheel), target]);
    if (unpack.status !== 0) throw new Error(`unpacking ${wheel} failed: ${unpack.stderr.trim()}`);
  } else {
    // The CUDA build needs the nvidia-* runtime packages next to `tensorflow/`,
    // where the library's RUNPATH ($ORIGIN/../nvidia/*/lib) looks for them.
    const install = run(python, ['-m', 'pip', 'install', '--no-compile', '--target', target,
      `${variant.wheel}${variant.extras}==${TF_VERSION}`], { stdio: ['ignore', 'inherit', 'inherit'] });
    if (install.status !== 0) throw new Error(`pip install of ${variant.wheel}${variant.extras}==${TF_VERSION} failed (exit ${install.status})`);
  }
  for (const name of ['libtensorflow_cc.so.2', 'libtensorflow_framework.so.2']) {
    if (!fs.existsSync(path.join(target, 'tensorflow', name))) {
      throw new Error(`the ${variant.wheel} ${TF_VERSION} wheel has no tensorflow/${name}; this route needs a Linux wheel of TensorFlow 2.x`);
    }
  }
  fs.writeFileSync(done, new Date().toISOString());
  return target;
}

/**
 * Points the package's `deps/` (where binding.gyp looks for headers and
 * libraries) at the unpacked wheel: `deps/include` and `deps/lib` with the two
 * libraries under the names the linker flags use.
 */
function linkDeps(dir, wheelRoot) {
  const tensorflowDir = path.join(wheelRoot, 'tensorflow');
  const deps = path.join(dir, 'deps');
  fs.rmSync(deps, { recursive: true, force: true });
  fs.mkdirSync(path.join(deps, 'lib'), { recursive: true });
  fs.symlinkSync(path.join(tensorflowDir, 'include'), path.join(deps, 'include'));
  const links = {
    'libtensorflow.so': 'libtensorflow_cc.so.2',
    'libtensorflow_cc.so.2': 'libtensorflow_cc.so.2',
    'libtensorflow_framework.so': 'libtensorflow_framework.so.2',
    'libtensorflow_framework.so.2': 'libtensorflow_framework.so.2',
  };
  for (const [name, target] of Object.entries(links)) {
    fs.symlinkSync(path.join(tensorflowDir, target), path.join(deps, 'lib', name));
  }
  return tensorflowDir;
}

function buildAddon(variant, dir, wheelRoot) {
  const tensorflowDir = linkDeps(dir, wheelRoot);
  const { napi, file } = addonPath(dir);
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
  const key = crypto.createHash('sha256')
    .update([variant.kind, pkg.version, variant.wheel, TF_VERSION, napi, process.arch, process.platform, `patch ${PATCH_VERSION}`].join('|'))
    .digest('hex').slice(0, 16);
  const cachedAddon = path.join(CACHE, 'addons', key, 'tfjs_binding.node');
  fs.mkdirSync(path.dirname(file), { recursive: true });

  if (!fs.existsSync(cachedAddon)) {
    patchBinding(dir);
    log(`compiling the ${variant.kind} addon of ${variant.packageName} ${pkg.version} against TensorFlow ${TF_VERSION} with node-gyp`);
    const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js', { paths: [ROOT] });
    // The extra RUNPATH entry lets the addon find the libraries in the cache
    // even if the deps/ links are removed; deps/lib stays first.
    const env = { ...process.env, LDFLAGS: `-Wl,-rpath,${tensorflowDir}` };
    const build = run(process.execPath, [nodeGyp, 'rebuild', ...nodedirArguments(), '--module_name=tfjs_binding',
      `--module_path=${path.dirname(file)}`, `--napi_build_version=${napi}`, '--silent'],
    { cwd: dir, env, stdio: ['ignore', 'inherit', 'inherit'] });
    if (build.status !== 0) {
      throw new Error(`node-gyp could not compile the addon (exit ${build.status}); it needs make and a C++ compiler (apt-get install build-essential)`);
    }
    const built = path.join(dir, 'build', 'Release', 'tfjs_binding.node');
    fs.mkdirSync(path.dirname(cachedAddon), { recursive: true });
    fs.copyFileSync(built, `${cachedAddon}.tmp`);
    fs.renameSync(`${cachedAddon}.tmp`, cachedAddon);
  } else {
    log(`reusing the cached ${variant.kind} addon ${cachedAddon}`);
  }
  // Through a temporary name, so a process that has the old addon mapped keeps a whole copy.
  fs.copyFileSync(cachedAddon, `${file}.tmp`);
  fs.renameSync(`${file}.tmp`, file);
  return verify(variant);
}

function setUpVariant(variant, python) {
  const dir = packageDir(variant.packageName);
  try {
    const info = verify(variant);
    // A build from before the session config patch is replaced; a prebuilt addon never has it.
    if (info.sessionConfig || process.env.MORE_TS_TF_ROUTE === 'prebuilt') {
      log(`${variant.packageName} already loads (TensorFlow ${info.tf})`);
      return { ...info, route: 'existing' };
    }
    log(`${variant.packageName} loads but lacks the session config patch; setting it up again`);
  } catch {
    // Not built yet: continue below.
  }

  const route = (process.env.MORE_TS_TF_ROUTE || 'auto').toLowerCase();
  if (!['auto', 'prebuilt', 'pypi'].includes(route)) {
    throw new Error(`invalid MORE_TS_TF_ROUTE "${process.env.MORE_TS_TF_ROUTE}": expected auto, prebuilt or pypi`);
  }
  if (route !== 'pypi') {
    try {
      const info = tryPrebuilt(variant, dir);
      log(`prebuilt ${variant.packageName} works (TensorFlow ${info.tf})`);
      return { ...info, route: 'prebuilt' };
    } catch (error) {
      if (route === 'prebuilt') throw error;
      log(`${error.message}; building against PyPI's ${variant.wheel} wheel instead`);
    }
  }
  const wheelRoot = fetchWheel(variant, python);
  const info = buildAddon(variant, dir, wheelRoot);
  log(`${variant.packageName} works on TensorFlow ${info.tf} from PyPI's ${variant.wheel} wheel${info.gpu ? ' on the GPU' : ''}`);
  return { ...info, route: 'pypi' };
}

function main() {
  const results = {};
  let python;
  for (const variant of variants()) {
    try {
      python = python || findPython();
      results[variant.kind] = setUpVariant(variant, python);
    } catch (error) {
      if (variant.kind === 'gpu') {
        // The CPU addon still works; the backend selection reports why the GPU one is missing.
        log(`the GPU addon could not be set up: ${error.message}`);
        results.gpu = { error: error.message };
      } else {
        fail(error.message);
      }
    }
  }
  fs.mkdirSync(path.join(ROOT, '.cache'), { recursive: true });
  fs.writeFileSync(path.join(ROOT, '.cache', 'native-backend.json'), `${JSON.stringify(results, null, 2)}\n`);
}

main();
