"""Drive the more-ts Jupyter kernel over the real Jupyter protocol for the mocha tests.

Starts the kernel named by --kernel (default more-ts) with jupyter_client on 127.0.0.1 and then reads one
JSON command per line on stdin and writes one JSON result per line on stdout:

  {"op": "execute", "code": "...", "timeout": 60, "interrupt_on": "text"}
      Runs the code. When "interrupt_on" is set, the kernel is interrupted (KernelManager.interrupt_kernel,
      which sends SIGINT because the kernel spec sets interrupt_mode signal) once that text appears in the cell's stream output.
      Result: {"reply": <execute_reply content>, "messages": [{"msg_type", "content"}, ...],
               "interrupted": bool}
  {"op": "execute_many", "codes": ["...", "..."], "timeout": 60}
      Sends all cells without waiting, as "Run all" does. Result: {"replies": [<execute_reply content>, ...]}.
  {"op": "shutdown"}
      Stops the kernel and exits.

Errors are written as {"error": "..."} lines.
"""

import argparse
import json
import os
import sys
import time

from jupyter_client.manager import KernelManager


def execute(km, kc, code, timeout, interrupt_on):
    msg_id = kc.execute(code, stop_on_error=True)
    deadline = time.monotonic() + timeout
    messages = []
    interrupted = False
    streamed = ''
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f'no idle status within {timeout} s; messages so far: {messages!r}')
        try:
            msg = kc.get_iopub_msg(timeout=remaining)
        except Exception as error:  # queue.Empty
            raise TimeoutError(f'no idle status within {timeout} s: {error!r}') from error
        if msg['parent_header'].get('msg_id') != msg_id:
            continue
        msg_type = msg['msg_type']
        content = msg['content']
        if msg_type == 'status':
            if content['execution_state'] == 'idle':
                break
            continue
        messages.append({'msg_type': msg_type, 'content': content})
        if msg_type == 'stream':
            streamed += content['text']
            if interrupt_on is not None and not interrupted and interrupt_on in streamed:
                km.interrupt_kernel()
                interrupted = True
    reply = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
    while reply['parent_header'].get('msg_id') != msg_id:
        reply = kc.get_shell_msg(timeout=max(deadline - time.monotonic(), 1))
    return {'reply': reply['content'], 'messages': messages, 'interrupted': interrupted}


def execute_many(kc, codes, timeout):
    """Send all cells at once, as a front end's "Run all" does, and return their execute replies in order."""
    msg_ids = [kc.execute(code, stop_on_error=True) for code in codes]
    deadline = time.monotonic() + timeout
    replies = {}
    while len(replies) < len(msg_ids):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f'{len(replies)} of {len(msg_ids)} replies within {timeout} s')
        reply = kc.get_shell_msg(timeout=remaining)
        parent = reply['parent_header'].get('msg_id')
        if parent in msg_ids:
            replies[parent] = reply['content']
    return {'replies': [replies[msg_id] for msg_id in msg_ids]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--kernel', default='more-ts', help='kernel spec name')
    parser.add_argument('--cwd', required=True, help='working folder of the kernel')
    parser.add_argument('--startup-timeout', type=float, default=120, help='seconds to wait for the kernel')
    parser.add_argument('--env', action='append', default=[], metavar='NAME=VALUE',
                        help='extra environment variable for the kernel (repeatable)')
    args = parser.parse_args()

    env = dict(os.environ)
    for assignment in args.env:
        name, separator, value = assignment.partition('=')
        if not separator:
            parser.error(f'--env expects NAME=VALUE; got {assignment!r}')
        env[name] = value
    km = KernelManager(kernel_name=args.kernel, ip='127.0.0.1', transport='tcp')
    km.start_kernel(cwd=args.cwd, env=env)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=args.startup_timeout)
        info = kc.kernel_info(reply=True, timeout=30)
        print(json.dumps({'ready': True, 'kernel_info': info['content']}), flush=True)
        for line in sys.stdin:
            command = json.loads(line)
            if command['op'] == 'shutdown':
                break
            try:
                if command['op'] == 'execute_many':
                    result = execute_many(kc, command['codes'], command.get('timeout', 60))
                else:
                    result = execute(km, kc, command['code'], command.get('timeout', 60), command.get('interrupt_on'))
            except Exception as error:  # reported to the test, which fails with this text
                result = {'error': f'{type(error).__name__}: {error}'}
            print(json.dumps(result), flush=True)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


if __name__ == '__main__':
    main()
