/**
 * Entry point of the more-ts Jupyter kernel (the `argv` of its kernel spec):
 *
 *   node dist/kernel/src/launcher.js --connection-file <file>
 *
 * It starts tslab's TypeScript executor and ZeroMQ server in this process,
 * after selecting the TensorFlow.js backend, making `more-ts` importable from
 * cells (modules.ts) and routing execute requests through our handler
 * (handler.ts) for interrupts, errors and display helpers.
 */
import * as fs from 'fs';
import * as path from 'path';
import { createConverter, Converter } from 'tslab/dist/converter';
import { createExecutor, ConverterSet } from 'tslab/dist/executor';
import { JupyterHandlerImpl, ZmqServer } from 'tslab/dist/jupyter';

import { BackendInfo, initBackend } from '../../src/backend';
import { CellConsole } from './cell-console';
import { describeBackend, showBackend } from './display';
import { KernelHandler } from './handler';
import { InterruptController } from './interrupts';
import { installRuntimeResolution, installTypeResolution } from './modules';

const DEFAULT_INTERRUPT_GRACE_MS = 10_000;
const LOOPBACK_ADDRESSES = new Set(['127.0.0.1', 'localhost', '::1']);

/** The repository root: this file is compiled to <root>/dist/kernel/src/launcher.js. */
export const REPOSITORY_ROOT = path.resolve(__dirname, '..', '..', '..');

function fail(message: string): never {
  process.stderr.write(`more-ts kernel: ${message}\n`);
  process.exit(1);
}

/** Reads `--connection-file <file>` (or tslab's `--config-path <file>`) from the command line. */
export function parseConnectionFile(args: string[]): string {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    for (const flag of ['--connection-file', '--config-path']) {
      if (arg === flag && i + 1 < args.length) return args[i + 1];
      if (arg.startsWith(`${flag}=`)) return arg.slice(flag.length + 1);
    }
  }
  throw new Error(`missing --connection-file <file>; got arguments: ${args.join(' ') || '(none)'}`);
}

/** Reads the grace period between an interrupt request and abandoning the cell from MORE_TS_INTERRUPT_GRACE_MS. */
export function parseGraceMs(value: string | undefined): number {
  if (value === undefined || value === '') return DEFAULT_INTERRUPT_GRACE_MS;
  const ms = Number(value);
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`Invalid MORE_TS_INTERRUPT_GRACE_MS "${value}": expected milliseconds >= 0`);
  return ms;
}

/** Rejects a connection file that would bind the kernel's sockets beyond the loopback interface. */
function checkLoopback(connectionFile: string): void {
  let info: { ip?: unknown; transport?: unknown };
  try {
    info = JSON.parse(fs.readFileSync(connectionFile, 'utf8')) as typeof info;
  } catch (error) {
    fail(`cannot read the connection file ${connectionFile}: ${(error as Error).message}`);
  }
  if (info.transport === 'tcp' && !LOOPBACK_ADDRESSES.has(String(info.ip))) {
    fail(`the connection file ${connectionFile} asks to bind ${String(info.ip)}; this kernel binds only to 127.0.0.1 or ::1`);
  }
}

function packageVersion(): string {
  const manifest = JSON.parse(fs.readFileSync(path.join(REPOSITORY_ROOT, 'package.json'), 'utf8')) as { version?: string };
  return manifest.version ?? 'unknown';
}

class LazyConverters implements ConverterSet {
  private nodeConverter: Converter | undefined;
  private browserConverter: Converter | undefined;

  get node(): Converter {
    this.nodeConverter ??= createConverter({ isJS: false, isBrowser: false });
    return this.nodeConverter;
  }

  get browser(): Converter {
    this.browserConverter ??= createConverter({ isJS: false, isBrowser: true });
    return this.browserConverter;
  }

  close(): void {
    this.nodeConverter?.close();
    this.browserConverter?.close();
  }
}

async function main(): Promise<void> {
  let connectionFile: string;
  let graceMs: number;
  try {
    connectionFile = parseConnectionFile(process.argv.slice(2));
    graceMs = parseGraceMs(process.env.MORE_TS_INTERRUPT_GRACE_MS);
  } catch (error) {
    fail((error as Error).message);
  }
  checkLoopback(connectionFile);
  const libraryEntry = path.join(REPOSITORY_ROOT, 'dist', 'src', 'index.js');
  if (!fs.existsSync(libraryEntry)) {
    fail(`the library is not built (${libraryEntry} is missing): run \`npm run build\` in ${REPOSITORY_ROOT}`);
  }

  // A backend failure must not kill the kernel, or the user would only see
  // "kernel died"; the first cell shows the error instead.
  let backend: BackendInfo | undefined;
  let backendError: Error | undefined;
  try {
    backend = await initBackend();
  } catch (error) {
    backendError = error as Error;
  }

  installTypeResolution(REPOSITORY_ROOT);
  const converters = new LazyConverters();
  converters.node; // Build the TypeScript program now rather than in the first cell.
  const cellConsole = new CellConsole();
  const executor = createExecutor(process.cwd(), converters, cellConsole);
  installRuntimeResolution(REPOSITORY_ROOT);

  const interrupts = new InterruptController({
    abandonCell: () => executor.interrupt(),
    notify: (text) => process.stderr.write(text),
    graceMs,
  });
  const handler = new KernelHandler({
    base: new JupyterHandlerImpl(executor, false),
    executor,
    interrupts,
    takeCellError: () => cellConsole.takeError(),
    version: packageVersion(),
    banner: `MoRE (TypeScript) on tslab · ${backend ? describeBackend(backend) : `no TensorFlow.js backend: ${backendError?.message}`}`,
    onFirstCell: () => {
      try {
        if (backend !== undefined) showBackend(backend);
        else process.stderr.write(`more-ts kernel: no TensorFlow.js backend could be selected: ${backendError?.message}\n`);
      } catch (error) {
        process.stderr.write(`more-ts kernel: could not show the backend: ${(error as Error).message}\n`);
      }
    },
  });

  const server = new ZmqServer(handler, connectionFile);
  process.on('SIGINT', () => interrupts.handleInterrupt());
  // Errors thrown by background work of a finished cell must not end the kernel.
  process.on('uncaughtException', (error) => process.stderr.write(`Uncaught exception: ${error.stack ?? error.message}\n`));
  process.on('unhandledRejection', (reason) => {
    const text = reason instanceof Error ? (reason.stack ?? reason.message) : String(reason);
    process.stderr.write(`Unhandled promise rejection: ${text}\n`);
  });
  await server.init();
}

if (require.main === module) {
  main().catch((error: unknown) => fail(error instanceof Error ? (error.stack ?? error.message) : String(error)));
}
