"""pacslb: an open application delivery controller for medical imaging."""

__version__ = "0.1.0"
