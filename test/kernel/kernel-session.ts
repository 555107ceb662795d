// A more-ts kernel started by jupyter_client (test/kernel/kernel_driver.py)
// and driven over the Jupyter protocol, for tests that share one kernel.
import { ChildProcessWithoutNullStreams, spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import * as readline from 'readline';

export const REPOSITORY_ROOT = path.resolve(__dirname, '..', '..');
export const VENV_PYTHON = path.join(REPOSITORY_ROOT, '.venv', 'bin', 'python');
export const KERNEL_SPEC = path.join(REPOSITORY_ROOT, '.venv', 'share', 'jupyter', 'kernels', 'more-ts', 'kernel.json');
const DRIVER = path.join(__dirname, 'kernel_driver.py');

export interface KernelMessage {
  msg_type: string;
  content: Record<string, unknown> & {
    name?: string;
    text?: string;
    data?: Record<string, unknown>;
    transient?: { display_id?: string };
  };
}

export interface ExecuteResult {
  reply: { status: string; execution_count?: number; ename?: string; evalue?: string };
  messages: KernelMessage[];
  interrupted: boolean;
}

/**
 * Throws with the set-up command when the kernel spec or the build it points
 * at is missing, or when a kernel source is newer than its build.
 */
export function checkKernelInstalled(): void {
  if (!fs.existsSync(VENV_PYTHON)) throw new Error(`${VENV_PYTHON} is missing: run the set-up (npm ci)`);
  if (!fs.existsSync(KERNEL_SPEC)) {
    throw new Error(`${KERNEL_SPEC} is missing: run \`npm run build && node scripts/setup/kernel.js\``);
  }
  const sourceDir = path.join(REPOSITORY_ROOT, 'kernel', 'src');
  for (const name of fs.readdirSync(sourceDir).filter((file) => file.endsWith('.ts'))) {
    const built = path.join(REPOSITORY_ROOT, 'dist', 'kernel', 'src', name.replace(/\.ts$/, '.js'));
    if (!fs.existsSync(built) || fs.statSync(built).mtimeMs < fs.statSync(path.join(sourceDir, name)).mtimeMs) {
      throw new Error(`${built} is missing or older than kernel/src/${name}: run \`npm run build\``);
    }
  }
}

export class KernelSession {
  private readonly pending: ((line: string) => void)[] = [];
  private stderrTail = '';
  private exited = false;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    readline.createInterface({ input: child.stdout }).on('line', (line) => {
      const resolve = this.pending.shift();
      if (resolve !== undefined) resolve(line);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString('utf8')).slice(-4000);
    });
    child.on('exit', () => {
      this.exited = true;
      for (const resolve of this.pending.splice(0)) resolve(JSON.stringify({ error: `the driver exited; stderr: ${this.stderrTail}` }));
    });
  }

  /** Starts a kernel in the folder `cwd`, with `env` added to its environment, and waits for its kernel_info reply. */
  static async start(
    cwd: string, env: Record<string, string> = {},
  ): Promise<{ session: KernelSession; kernelInfo: Record<string, unknown> }> {
    checkKernelInstalled();
    const envArgs = Object.entries(env).flatMap(([name, value]) => ['--env', `${name}=${value}`]);
    const child = spawn(VENV_PYTHON, [DRIVER, '--cwd', cwd, ...envArgs], { cwd: REPOSITORY_ROOT });
    const session = new KernelSession(child);
    const ready = await session.nextLine();
    if (ready.ready !== true) throw new Error(`The kernel did not start: ${JSON.stringify(ready)}`);
    return { session, kernelInfo: ready.kernel_info as Record<string, unknown> };
  }

  /** Runs one cell. `interruptOn` interrupts the kernel once that text appears in the cell's streams. */
  async execute(code: string, options: { timeoutSeconds?: number; interruptOn?: string } = {}): Promise<ExecuteResult> {
    const line = this.nextLine();
    this.child.stdin.write(`${JSON.stringify({ op: 'execute', code, timeout: options.timeoutSeconds ?? 60, interrupt_on: options.interruptOn ?? null })}\n`);
    const result = await line;
    if (typeof result.error === 'string') throw new Error(`Executing the cell failed: ${result.error}\nKernel stderr: ${this.stderrTail}`);
    return result as unknown as ExecuteResult;
  }

  /** Sends all cells at once, as "Run all" does, and returns their execute replies in order. */
  async executeMany(codes: string[], timeoutSeconds = 60): Promise<ExecuteResult['reply'][]> {
    const line = this.nextLine();
    this.child.stdin.write(`${JSON.stringify({ op: 'execute_many', codes, timeout: timeoutSeconds })}\n`);
    const result = await line;
    if (typeof result.error === 'string') throw new Error(`Executing the cells failed: ${result.error}\nKernel stderr: ${this.stderrTail}`);
    return result.replies as ExecuteResult['reply'][];
  }

  /** Shuts the kernel down and waits for the driver to exit. */
  async shutdown(): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin.write(`${JSON.stringify({ op: 'shutdown' })}\n`);
    this.child.stdin.end();
    await exited;
  }

  private nextLine(): Promise<Record<string, unknown>> {
    return new Promise((resolve) => this.pending.push((line) => resolve(JSON.parse(line) as Record<string, unknown>)));
  }
}

/** Concatenates the text of one stream (`stdout` or `stderr`) of a cell. */
export function streamText(result: ExecuteResult, name: 'stdout' | 'stderr'): string {
  return result.messages
    .filter((message) => message.msg_type === 'stream' && message.content.name === name)
    .map((message) => message.content.text ?? '')
    .join('');
}

/** Returns the MIME bundles of a cell's display_data messages. */
export function displayBundles(result: ExecuteResult): Record<string, unknown>[] {
  return result.messages.filter((message) => message.msg_type === 'display_data').map((message) => message.content.data ?? {});
}
