"""The data files the code reads (templates, static files, forms), found as package data.

In a checkout they are the repository's `templates/` folder; setuptools ships that folder as the package
`edudesk.templates` (`setup.py`), so a wheel carries it inside `edudesk/` and the editable install maps it
back to the checkout. jinja2's FileSystemLoader, aiohttp's add_static and python-docx want real folders:
`as_file` gives one (the folder itself when installed on a file system, as pip and pipx do).
"""

from __future__ import annotations

import atexit
import functools
from contextlib import ExitStack
from importlib.resources import as_file, files
from pathlib import Path

PACKAGE = "edudesk.templates"
_open = ExitStack()
atexit.register(_open.close)


@functools.cache
def templates_dir() -> Path:
    """The folder of every template (`email/`, `chat/`, `web/`, `forms/`)."""
    # Installed on a file system this is the folder itself; from a zip (Python 3.12+) a copy removed at exit.
    return _open.enter_context(as_file(files(PACKAGE)))


def email_dir() -> Path:
    """The mail templates (`<name>.<lang>.{txt,html}.j2`)."""
    return templates_dir() / "email"


def chat_dir() -> Path:
    """The chat card templates."""
    return templates_dir() / "chat"


def web_dir() -> Path:
    """The web console's page templates."""
    return templates_dir() / "web"


def static_dir() -> Path:
    """The web console's static files (served under /static/)."""
    return web_dir() / "static"


def config_example() -> Path:
    """The shipped, commented config.toml (`edudesk init` writes a school's own from it)."""
    return templates_dir() / "config.toml"
