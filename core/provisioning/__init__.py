"""Directory back ends behind one `Provisioner` port, and the factory that picks them from config.

Each back end is a module here with a `build(settings, clock) -> Provisioner` function; the population
decides which one holds an account (`[provisioning.populations]`: staff in LDAP, students in Google).
"""

from __future__ import annotations

import importlib

from core.config import Settings
from core.errors import ConfigError
from core.ports import Clock, Provisioner

BACKENDS = ("local", "dovecot", "ldap", "google", "microsoft", "mailcow")
POPULATIONS = ("staff", "student")


def make_provisioner(settings: Settings, clock: Clock, backend: str | None = None) -> Provisioner:
    """The provisioner named `backend` (default: `[provisioning].backend`)."""
    name = backend or settings.provisioning.backend
    if name not in BACKENDS:
        raise ConfigError(f"Back end thư mục '{name}' không có (hiện có: {', '.join(BACKENDS)}).",
                          code="config_backend")
    module = importlib.import_module(f"core.provisioning.{name}")
    built: Provisioner = module.build(settings, clock)
    return built


class Directories:
    """The provisioner for each population; one instance per back end, shared by the populations."""

    def __init__(self, settings: Settings, clock: Clock, fixed: Provisioner | None = None) -> None:
        self.settings = settings
        self._by_name: dict[str, Provisioner] = {}
        self._fixed = fixed
        if fixed is None:
            for population in POPULATIONS:
                name = settings.provisioning.backend_for(population)
                if name not in self._by_name:
                    self._by_name[name] = make_provisioner(settings, clock, name)

    def for_population(self, population: str) -> Provisioner:
        """The back end that holds this population's accounts."""
        if self._fixed is not None:
            return self._fixed
        return self._by_name[self.settings.provisioning.backend_for(population)]

    def by_name(self, name: str) -> Provisioner:
        """A configured back end by its name (an account remembers the one that made it)."""
        if self._fixed is not None:
            return self._fixed
        if name not in self._by_name:
            raise ConfigError(f"Back end '{name}' không còn trong cấu hình.", code="config_backend")
        return self._by_name[name]

    async def close(self) -> None:
        """Close every back end's connections."""
        for provisioner in ([self._fixed] if self._fixed is not None else self._by_name.values()):
            await provisioner.close()
