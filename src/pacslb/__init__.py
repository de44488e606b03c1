"""pacslb: an open application delivery controller for medical imaging."""

from .lean_imports import skip_httpx_cli

__version__ = "0.1.0"

skip_httpx_cli()  # before anything imports httpx: its command-line client costs the controller 4 MB (lean_imports.py)
