/**
 * Test harness for the JupyterLab extension: a real JupyterLab server from the project's Python venv on
 * 127.0.0.1, and Debian's headless Chromium driven by playwright-core. Both are confined to loopback: the
 * server listens on 127.0.0.1 only and the browser aborts every request to another host.
 */
import { ChildProcess, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'fs';
import { createServer } from 'net';
import { tmpdir } from 'os';
import { join, resolve } from 'path';
import { BrowserContext, chromium } from 'playwright-core';

export const REPO_ROOT = resolve(__dirname, '..', '..');
export const VENV = join(REPO_ROOT, '.venv');
export const CHROMIUM = '/usr/bin/chromium';
const SETUP_HINT = 'run `node scripts/setup/extension.js` in the repository root';

/**
 * The few DOM types that functions passed to `page.evaluate` use. Those functions run in the browser, but
 * the repository type-checks them without the DOM library, so they cast to these shapes.
 */
export interface PageCanvas {
  width: number;
  height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, width: number, height: number): { data: Uint8ClampedArray } } | null;
}

export interface PageElement {
  getAttribute(name: string): string | null;
  parentElement: PageElement | null;
  style: { backgroundColor: string };
}

export interface PageWindow {
  document: {
    body: PageElement;
    activeElement: PageElement | null;
    querySelector(selector: string): PageElement | null;
  };
  getComputedStyle(element: unknown): { color: string };
  /** The JupyterLab application, exposed by `--LabApp.expose_app_in_browser=True`. */
  jupyterapp: { commands: { execute(id: string, args?: unknown): Promise<unknown> } };
}

/** Throws with the fix when the venv, the installed labextension or Chromium is missing or stale. */
export function checkPrerequisites(): void {
  if (!existsSync(join(VENV, 'bin', 'jupyter-lab'))) {
    throw new Error(`JupyterLab was not found in ${VENV}: create the venv with the project set-up, then ${SETUP_HINT}`);
  }
  const installed = join(VENV, 'share', 'jupyter', 'labextensions', 'more-ts-jupyter', 'package.json');
  if (!existsSync(installed)) throw new Error(`the more-ts-jupyter labextension is not installed (${installed} is missing): ${SETUP_HINT}`);
  // The set-up script is plain CommonJS, so the tests reuse its source hash to detect a stale build.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const setup = require(join(REPO_ROOT, 'scripts', 'setup', 'extension.js')) as { isInstalledBuildCurrent(): boolean };
  if (!setup.isInstalledBuildCurrent()) throw new Error(`the installed labextension is older than extension/ sources: ${SETUP_HINT}`);
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium was not found at ${CHROMIUM}: install Debian's chromium package (apt-get install chromium)`);
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** A temporary JupyterLab home: notebooks root, user settings, workspaces and Jupyter dirs. */
export interface LabHome {
  base: string;
  root: string;
  settings: string;
}

export function createLabHome(): LabHome {
  const base = mkdtempSync(join(tmpdir(), 'more-ts-lab-'));
  const home = { base, root: join(base, 'root'), settings: join(base, 'settings') };
  for (const dir of [home.root, home.settings, join(base, 'workspaces'), join(base, 'config'), join(base, 'runtime')]) {
    mkdirSync(dir, { recursive: true });
  }
  return home;
}

/** Writes the JupyterLab theme setting that the next page load picks up. */
export function setTheme(home: LabHome, theme: 'JupyterLab Light' | 'JupyterLab Dark'): void {
  const dir = join(home.settings, '@jupyterlab', 'apputils-extension');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'themes.jupyterlab-settings'), JSON.stringify({ theme, 'theme-scrollbars': false }));
  // No update checks and no news: both would contact hosts other than loopback.
  writeFileSync(join(dir, 'notification.jupyterlab-settings'), JSON.stringify({ checkForUpdates: false, fetchNews: 'false' }));
}

/** A running JupyterLab server. */
export interface LabServer {
  port: number;
  token: string;
  url(path: string): string;
  stop(): Promise<void>;
}

async function waitForStatus(port: number, token: string, child: ChildProcess, log: () => string): Promise<void> {
  const deadline = Date.now() + 90_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`JupyterLab exited with code ${child.exitCode} before it was ready:\n${log()}`);
    try {
      const response = await fetch(`http://127.0.0.1:${port}/api/status`, { headers: { Authorization: `token ${token}` } });
      if (response.ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((done) => setTimeout(done, 250));
  }
  throw new Error(`JupyterLab did not respond to /api/status on port ${port} within 90 s:\n${log()}`);
}

/** Starts JupyterLab on a free port of 127.0.0.1 with a random token and no kernels. */
export async function startLab(home: LabHome): Promise<LabServer> {
  const port = await freePort();
  const token = randomBytes(24).toString('hex');
  const args = [
    '--ServerApp.ip=127.0.0.1',
    `--ServerApp.port=${port}`,
    '--ServerApp.port_retries=0',
    `--IdentityProvider.token=${token}`,
    '--ServerApp.open_browser=False',
    `--ServerApp.root_dir=${home.root}`,
    `--LabApp.user_settings_dir=${home.settings}`,
    `--LabApp.workspaces_dir=${join(home.base, 'workspaces')}`,
    '--LabApp.news_url=',
    '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
    // The default extension manager searches PyPI; the read-only one lists installed extensions only.
    '--LabApp.extension_manager=readonly',
    // Lets a test run JupyterLab commands, such as a theme switch, through window.jupyterapp.
    '--LabApp.expose_app_in_browser=True',
    // No kernel spec is allowed, so opening a notebook starts no kernel.
    '--KernelSpecManager.allowed_kernelspecs=["none"]',
  ];
  // Containers and CI machines often run tests as root, which Jupyter Server rejects without this flag.
  if (typeof process.getuid === 'function' && process.getuid() === 0) args.push('--ServerApp.allow_root=True');
  const child = spawn(join(VENV, 'bin', 'jupyter-lab'), args, {
    cwd: home.root,
    env: {
      ...process.env,
      JUPYTER_CONFIG_DIR: join(home.base, 'config'),
      JUPYTER_RUNTIME_DIR: join(home.base, 'runtime'),
      JUPYTER_PLATFORM_DIRS: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const append = (chunk: Buffer): void => {
    output = (output + chunk.toString()).slice(-20_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
  const stop = async (): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((done) => child.once('exit', () => done()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await waitForStatus(port, token, child, () => output);
  } catch (error) {
    await stop();
    throw error;
  }
  return { port, token, url: (path) => `http://127.0.0.1:${port}${path}${path.includes('?') ? '&' : '?'}token=${token}`, stop };
}

/** Headless Chromium with a fresh profile; every request to a host other than 127.0.0.1 is aborted. */
export async function launchBrowser(home: LabHome): Promise<{ context: BrowserContext; blocked: string[] }> {
  // launchPersistentContext passes the fresh profile folder to Chromium as --user-data-dir.
  const context = await chromium.launchPersistentContext(join(home.base, 'chromium-profile'), {
    executablePath: CHROMIUM,
    headless: true,
    // Tall enough that both views fit on screen, so element screenshots are not clipped.
    viewport: { width: 1280, height: 2400 },
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const blocked: string[] = [];
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    const local = url.hostname === '127.0.0.1' || url.protocol === 'data:' || url.protocol === 'blob:';
    if (local) return route.continue();
    blocked.push(route.request().url());
    return route.abort();
  });
  return { context, blocked };
}

/** Writes a notebook with one markdown cell and one code cell per bundle, each with its saved output. */
export function writeNotebook(path: string, outputs: { mimeType: string; bundle: unknown; source: string }[]): void {
  const cells = [
    { id: 'intro', cell_type: 'markdown', metadata: {}, source: ['Saved MoRE outputs, rendered without a kernel.'] },
    ...outputs.map((output, index) => ({
      id: `output-${index + 1}`,
      cell_type: 'code',
      execution_count: index + 1,
      metadata: {},
      source: [output.source],
      outputs: [
        {
          output_type: 'display_data',
          metadata: {},
          data: { [output.mimeType]: output.bundle, 'text/plain': [`<${output.mimeType}>`] },
        },
      ],
    })),
  ];
  const notebook = { nbformat: 4, nbformat_minor: 5, metadata: {}, cells };
  writeFileSync(path, JSON.stringify(notebook, null, 1));
}

export function readFixture<T>(name: string): T {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'test', 'fixtures', 'extension', name), 'utf8')) as T;
}
