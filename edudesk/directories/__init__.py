"""Directory back ends: each module here adapts one real directory to the core's `Provisioner` port.

Each back end is a module with a `build(settings, clock) -> Provisioner` function; `make_provisioner` picks
one by name. The core (core/provisioning/) never imports this package: the composition root (main.py)
hands it `make_provisioner`. Adding a back end: docs/adding-a-directory-backend.md.
"""

from __future__ import annotations

import importlib

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import Clock, Provisioner

BACKENDS = ("local", "dovecot", "ldap", "google", "microsoft", "mailcow")


def make_provisioner(settings: Settings, clock: Clock, backend: str | None = None) -> Provisioner:
    """The provisioner named `backend` (default: `[provisioning].backend`)."""
    name = backend or settings.provisioning.backend
    if name not in BACKENDS:
        raise ConfigError(f"Back end thư mục '{name}' không có (hiện có: {', '.join(BACKENDS)}).",
                          code="config_backend")
    module = importlib.import_module(f"edudesk.directories.{name}")
    built: Provisioner = module.build(settings, clock)
    return built
