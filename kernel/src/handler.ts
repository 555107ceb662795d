/**
 * The execute side of the kernel. tslab's `JupyterHandlerImpl` still handles
 * kernel_info, completion, inspection and shutdown; execute requests go
 * through {@link KernelHandler.handleExecute}, which adds what tslab lacks:
 * - cooperative interrupts (see interrupts.ts) and `status: error` for an
 *   interrupted cell, so "Run all" stops there;
 * - aborting only the requests that were queued when a cell failed (tslab
 *   aborts everything that arrives in the 200 ms after a failure);
 * - an error reply with `ename` and `evalue`;
 * - the display writer for our display helpers (output.ts);
 * - the backend line, shown once, in the first cell's output.
 */
import { TextDecoder } from 'util';
import type { Executor } from 'tslab/dist/executor';
import type { ExecuteReply, JupyterHandlerImpl } from 'tslab/dist/jupyter';

import { InterruptController } from './interrupts';
import { DisplayWriter, setDisplayWriter } from './output';

type ExecuteArgs = Parameters<JupyterHandlerImpl['handleExecute']>;
type ExecuteRequest = ExecuteArgs[0];
type StreamWriter = ExecuteArgs[1];
type TslabDisplayWriter = ExecuteArgs[2];

/** The execute reply, with the error fields that the Jupyter protocol defines for `status: error`. */
export interface KernelExecuteReply extends ExecuteReply {
  ename?: string;
  evalue?: string;
  traceback?: string[];
}

/** The last error that a cell printed through the cell console. */
export interface CellError {
  name: string;
  message: string;
}

export interface KernelHandlerOptions {
  base: JupyterHandlerImpl;
  executor: Executor;
  interrupts: InterruptController;
  /** Called once, in the first cell, after the display writer is installed. */
  onFirstCell: () => void;
  /** Returns the last error that the cell console recorded, and clears it. */
  takeCellError: () => CellError | undefined;
  /** The banner shown by console front ends. */
  banner: string;
  /** Version of more-ts, reported as the implementation version. */
  version: string;
}

const utf8 = new TextDecoder();

function streamTo(name: 'stdout' | 'stderr', write: StreamWriter): typeof process.stdout.write {
  const replacement = (chunk: string | Uint8Array): boolean => {
    write(name, typeof chunk === 'string' ? chunk : utf8.decode(chunk));
    return true;
  };
  return replacement as typeof process.stdout.write;
}

function tslabVersions(): { tslab: string; typescript: string } {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('tslab') as { versions: { tslab: string; typescript: string } }).versions;
}

/** Points tslab's own `display` API (import from 'tslab') at the running cell. */
function setTslabDisplayWriter(writer: TslabDisplayWriter): void {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const jupyter = require('tslab/dist/jupyter') as { lastWriteDisplayData: TslabDisplayWriter | null };
  jupyter.lastWriteDisplayData = writer;
}

export class KernelHandler {
  private executionCount = 0;
  private requestsReceived = 0;
  /** Requests numbered up to this one are aborted because an earlier cell failed while they were queued. */
  private abortThrough = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private firstCellSeen = false;

  constructor(private readonly options: KernelHandlerOptions) {}

  handleKernel(): ReturnType<JupyterHandlerImpl['handleKernel']> {
    const reply = this.options.base.handleKernel();
    reply.implementation = 'more-ts';
    reply.implementation_version = this.options.version;
    reply.banner = this.options.banner;
    // tslab 1.0.22 reports a fixed "3.7.2"; report the TypeScript that actually compiles the cells.
    reply.language_info.version = tslabVersions().typescript;
    return reply;
  }

  handleExecute(request: ExecuteRequest, writeStream: StreamWriter, writeDisplay: TslabDisplayWriter): Promise<KernelExecuteReply> {
    this.requestsReceived += 1;
    const ticket = this.requestsReceived;
    const result = this.queue.then(() => this.execute(ticket, request, writeStream, writeDisplay));
    this.queue = result;
    return result;
  }

  handleIsComplete(...args: Parameters<JupyterHandlerImpl['handleIsComplete']>): ReturnType<JupyterHandlerImpl['handleIsComplete']> {
    return this.options.base.handleIsComplete(...args);
  }

  handleInspect(...args: Parameters<JupyterHandlerImpl['handleInspect']>): ReturnType<JupyterHandlerImpl['handleInspect']> {
    return this.options.base.handleInspect(...args);
  }

  handleComplete(...args: Parameters<JupyterHandlerImpl['handleComplete']>): ReturnType<JupyterHandlerImpl['handleComplete']> {
    return this.options.base.handleComplete(...args);
  }

  handleShutdown(...args: Parameters<JupyterHandlerImpl['handleShutdown']>): ReturnType<JupyterHandlerImpl['handleShutdown']> {
    return this.options.base.handleShutdown(...args);
  }

  close(): void {
    this.options.base.close();
  }

  /** Runs one request. Never rejects, so one failure cannot break the queue. */
  private async execute(
    ticket: number, request: ExecuteRequest, writeStream: StreamWriter, writeDisplay: TslabDisplayWriter,
  ): Promise<KernelExecuteReply> {
    if (ticket <= this.abortThrough) {
      return { status: 'abort', execution_count: this.executionCount };
    }
    // Like IPython, output written after a cell has finished still goes to that cell until the next one starts.
    process.stdout.write = streamTo('stdout', writeStream);
    process.stderr.write = streamTo('stderr', writeStream);
    setDisplayWriter(writeDisplay as unknown as DisplayWriter);
    setTslabDisplayWriter(writeDisplay);

    const silent = request.silent === true;
    if (!silent && request.store_history !== false) this.executionCount += 1;
    const count = this.executionCount;

    if (!this.firstCellSeen) {
      this.firstCellSeen = true;
      this.options.onFirstCell();
    }

    this.options.takeCellError();
    this.options.interrupts.cellStarted();
    let ok: boolean;
    try {
      ok = await this.options.executor.execute(request.code);
    } catch (error) {
      console.error(error);
      ok = false;
    }
    const interrupted = this.options.interrupts.cellFinished();
    let failure = this.options.takeCellError();
    if (ok && interrupted) {
      // The work stopped cleanly at a step boundary, but the cell still counts
      // as interrupted so that the cells queued after it do not run.
      process.stderr.write('Interrupted: the cell stopped early because of the interrupt request.\n');
      ok = false;
      failure = { name: 'Interrupted', message: 'the cell stopped early because of the interrupt request' };
    }
    if (ok) return { status: 'ok', execution_count: count };

    if (request.stop_on_error !== false) this.abortThrough = this.requestsReceived;
    const name = failure?.name ?? 'Error';
    const message = failure?.message ?? 'the cell failed';
    return { status: 'error', execution_count: count, ename: name, evalue: message, traceback: [`${name}: ${message}`] };
  }
}
