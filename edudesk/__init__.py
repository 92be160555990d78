"""edudesk: the installed distribution's one import package (version, `python -m edudesk`, data files)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("edudesk")
except PackageNotFoundError:  # a checkout on sys.path without `pip install -e .`
    __version__ = "0+unknown"
