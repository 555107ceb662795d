"""Execute one notebook headlessly with nbclient on its own kernel and print a JSON summary of its outputs.

The kernel is the one named in the notebook's metadata (the more-ts kernel spec in .venv), started by
jupyter_client on 127.0.0.1 with the notebook's folder as working folder, so the cells talk to it over the
real Jupyter protocol. Each image/png output is decoded with Pillow, so the summary states the picture's
real size. The summary is one JSON object:

  {"ok": true, "cells": [{"index": i, "outputs": [{"output_type", "mime_types", "text", "png"}]}]}

or {"ok": false, "error": "...", "kernel_log": "..."} when a cell fails or the kernel does not start.
"""

import argparse
import base64
import io
import json
import os
import subprocess
import tempfile

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from PIL import Image


def summarize_output(output):
    summary = {'output_type': output['output_type']}
    if output['output_type'] == 'stream':
        summary['mime_types'] = []
        summary['text'] = output['text']
        summary['name'] = output['name']
        return summary
    data = output.get('data', {})
    summary['mime_types'] = sorted(data.keys())
    summary['text'] = data.get('text/plain', '')
    if 'image/png' in data:
        with Image.open(io.BytesIO(base64.b64decode(data['image/png']))) as image:
            summary['png'] = {'width': image.width, 'height': image.height, 'mode': image.mode}
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebook', help='path of the .ipynb file')
    parser.add_argument('--cell-timeout', type=int, default=300, help='seconds one cell may run')
    parser.add_argument('--startup-timeout', type=int, default=240, help='seconds to wait for the kernel to start')
    args = parser.parse_args()

    notebook = nbformat.read(args.notebook, as_version=4)
    kernel_name = notebook.metadata.get('kernelspec', {}).get('name')
    if kernel_name is None:
        print(json.dumps({'ok': False, 'error': f'{args.notebook} has no metadata.kernelspec.name'}))
        return
    km = KernelManager(kernel_name=kernel_name, ip='127.0.0.1', transport='tcp')
    client = NotebookClient(
        notebook,
        km=km,
        timeout=args.cell_timeout,
        startup_timeout=args.startup_timeout,
        allow_errors=False,
    )
    # The kernel writes its own log to a file: a kernel holding this process's stdout open would keep the
    # caller waiting for the end of the output.
    with tempfile.TemporaryFile(mode='w+') as kernel_log:
        try:
            client.execute(cwd=os.path.dirname(os.path.abspath(args.notebook)), stdout=subprocess.DEVNULL,
                           stderr=kernel_log)
        except (CellExecutionError, RuntimeError, TimeoutError) as error:
            kernel_log.seek(0)
            print(json.dumps({'ok': False, 'error': str(error), 'kernel_log': kernel_log.read()[-4000:]}))
            return
        finally:
            # nbclient leaves a kernel that it did not start itself running, so stop it here.
            if km.has_kernel:
                km.shutdown_kernel(now=True)
    cells = [
        {'index': index, 'outputs': [summarize_output(output) for output in cell.get('outputs', [])]}
        for index, cell in enumerate(notebook.cells)
        if cell.cell_type == 'code'
    ]
    print(json.dumps({'ok': True, 'cells': cells}))


if __name__ == '__main__':
    main()
