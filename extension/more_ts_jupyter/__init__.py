"""JupyterLab renderers for MoRE attention explanations and retrieval results (a prebuilt labextension)."""

__version__ = "0.1.0"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "more-ts-jupyter"}]
