"""Execute a notebook with its kernel over the Jupyter protocol and export it to HTML.

usage: execute.py NOTEBOOK [--html OUT.html] [--timeout SECONDS] [--startup-timeout SECONDS]

The kernel is the one named in the notebook's metadata (the more-ts kernel
installed in the project's .venv), started by jupyter_client on 127.0.0.1 with
the notebook's folder as working folder. The executed notebook replaces the
input file atomically; a failed cell leaves the input untouched and exits 1
with the cell's error. The HTML export keeps each output's text/plain and
image/png forms, which any browser shows without the JupyterLab extension.
"""
import argparse
import os
import sys
import tempfile

import nbformat
from jupyter_client.manager import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter


def write_atomic(path: str, text: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebook", help="path of the .ipynb file, rewritten with its outputs")
    parser.add_argument("--html", help="also write an HTML export here")
    parser.add_argument("--timeout", type=int, default=900, help="seconds one cell may run (default 900)")
    parser.add_argument("--startup-timeout", type=int, default=240, help="seconds to wait for the kernel (default 240)")
    args = parser.parse_args()

    notebook = nbformat.read(args.notebook, as_version=4)
    kernel_name = notebook.metadata.get("kernelspec", {}).get("name")
    if kernel_name is None:
        print(f"{args.notebook}: metadata.kernelspec.name is missing", file=sys.stderr)
        return 2
    manager = KernelManager(kernel_name=kernel_name, ip="127.0.0.1", transport="tcp")
    client = NotebookClient(
        notebook,
        km=manager,
        timeout=args.timeout,
        startup_timeout=args.startup_timeout,
        resources={"metadata": {"path": os.path.dirname(os.path.abspath(args.notebook))}},
    )
    try:
        client.execute()
    except CellExecutionError as error:
        print(f"{args.notebook}: a cell failed:\n{error}", file=sys.stderr)
        return 1
    finally:
        # nbclient shuts down only kernels it created itself, and this one was passed in.
        if manager.has_kernel:
            manager.shutdown_kernel(now=False)

    write_atomic(args.notebook, nbformat.writes(notebook))
    if args.html:
        body, _ = HTMLExporter().from_notebook_node(notebook)
        write_atomic(args.html, body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
