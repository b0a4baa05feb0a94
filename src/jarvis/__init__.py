"""JARVIS: an insurance company's platform for governed AI agents in six layers."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("jarvis")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
