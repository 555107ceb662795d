#!/usr/bin/env node
// Set-up step for the JupyterLab extension under extension/: builds the prebuilt labextension and installs
// its Python package into the project's venv (.venv), which must exist already. It also installs Debian's
// chromium when it is missing and the script runs as root, because the extension tests drive it.
// The step is idempotent: it skips the build and the install while the source hash in .cache/ matches.
'use strict';
const { spawnSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..', '..');
const extensionDir = path.join(root, 'extension');
const venv = path.join(root, '.venv');
const stampPath = path.join(root, '.cache', 'extension-build.json');
const installedPackage = path.join(venv, 'share', 'jupyter', 'labextensions', 'more-ts-jupyter', 'package.json');
const builtPackage = path.join(extensionDir, 'more_ts_jupyter', 'labextension', 'package.json');
const chromiumPath = '/usr/bin/chromium';

// Files whose content decides the build. The bundle contract in src/viz/mime.ts is compiled into the extension.
const SOURCE_FILES = ['package.json', 'package-lock.json', 'tsconfig.json', 'pyproject.toml', 'install.json', 'more_ts_jupyter/__init__.py'];
const SOURCE_DIRS = ['src', 'style'];
const SHARED_SOURCES = [path.join(root, 'src', 'viz', 'mime.ts')];

function log(message) {
  process.stdout.write(`[setup:extension] ${message}\n`);
}

function listFiles(dir) {
  const files = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) files.push(...listFiles(full));
    else if (entry.isFile()) files.push(full);
  }
  return files;
}

/** Returns the SHA-256 over the extension's sources, their paths and this script. */
function sourceHash() {
  const files = [
    ...SOURCE_FILES.map((name) => path.join(extensionDir, name)),
    ...SOURCE_DIRS.flatMap((name) => listFiles(path.join(extensionDir, name))),
    ...SHARED_SOURCES,
    __filename,
  ].sort();
  const hash = crypto.createHash('sha256');
  for (const file of files) {
    hash.update(path.relative(root, file));
    hash.update('\0');
    hash.update(fs.readFileSync(file));
    hash.update('\0');
  }
  return hash.digest('hex');
}

function readJson(file) {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

/** Reports whether the venv contains the labextension built from the current sources. */
function isInstalledBuildCurrent() {
  const stamp = readJson(stampPath);
  const installed = readJson(installedPackage);
  if (stamp === null || installed === null || !installed.jupyterlab || !installed.jupyterlab._build) return false;
  return stamp.sourceHash === sourceHash() && stamp.remoteEntry === installed.jupyterlab._build.load;
}

function run(command, args, options = {}) {
  log(`${command} ${args.join(' ')}`);
  const result = spawnSync(command, args, { stdio: 'inherit', ...options });
  if (result.error) throw new Error(`${command} could not be started: ${result.error.message}`);
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} failed with exit code ${result.status}`);
}

function ensureChromium() {
  if (fs.existsSync(chromiumPath)) return;
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (!isRoot) {
    log(`NOTE: ${chromiumPath} is missing and this is not root; the extension tests need it: sudo apt-get install chromium`);
    return;
  }
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update', '-q'], { env });
  run('apt-get', ['install', '-y', '-q', 'chromium'], { env });
}

function ensureNodeModules() {
  const lockHash = crypto.createHash('sha256').update(fs.readFileSync(path.join(extensionDir, 'package-lock.json'))).digest('hex');
  const marker = path.join(extensionDir, 'node_modules', '.more-ts-lock-hash');
  if (fs.existsSync(marker) && fs.readFileSync(marker, 'utf8') === lockHash) return;
  // `npm install` follows the committed lock file; the extension's packages stay out of the root package.json.
  run('npm', ['install', '--no-audit', '--no-fund', '--no-save'], { cwd: extensionDir });
  fs.writeFileSync(marker, lockHash);
}

function buildAndInstall() {
  const env = { ...process.env, PATH: `${path.join(venv, 'bin')}${path.delimiter}${process.env.PATH}` };
  run(path.join(extensionDir, 'node_modules', '.bin', 'tsc'), ['-p', 'tsconfig.json'], { cwd: extensionDir, env });
  // A production build; the old static/ chunks are replaced by the builder.
  run(path.join(venv, 'bin', 'jupyter-builder'), ['build', '.'], { cwd: extensionDir, env });
  // The hatch build hook skips its own npm build because the labextension now exists.
  const pip = [path.join(venv, 'bin', 'python'), '-m', 'pip', 'install', '--no-build-isolation', '--no-deps', '--no-index', '-q', extensionDir];
  const lock = path.join(root, '.cache', 'pip.lock');
  if (fs.existsSync('/usr/bin/flock')) run('/usr/bin/flock', [lock, ...pip], { cwd: root, env });
  else run(pip[0], pip.slice(1), { cwd: root, env });
}

function main() {
  if (!fs.existsSync(path.join(venv, 'bin', 'python'))) {
    throw new Error(`the Python venv ${venv} is missing: create it with the project set-up before this step`);
  }
  ensureChromium();
  if (isInstalledBuildCurrent()) {
    log('labextension is up to date, build skipped');
    return;
  }
  ensureNodeModules();
  buildAndInstall();
  const built = readJson(builtPackage);
  if (built === null) throw new Error(`the build wrote no ${builtPackage}`);
  fs.mkdirSync(path.dirname(stampPath), { recursive: true });
  const stamp = { sourceHash: sourceHash(), remoteEntry: built.jupyterlab._build.load };
  const temporary = `${stampPath}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, JSON.stringify(stamp, null, 2));
  fs.renameSync(temporary, stampPath);
  if (!isInstalledBuildCurrent()) throw new Error(`the installed labextension at ${installedPackage} does not match the build`);
  log('labextension built and installed into .venv');
}

module.exports = { isInstalledBuildCurrent, sourceHash };

if (require.main === module) {
  try {
    main();
  } catch (error) {
    process.stderr.write(`[setup:extension] ${error.message}\n`);
    process.exit(1);
  }
}
