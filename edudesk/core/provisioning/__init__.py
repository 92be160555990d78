"""Provisioning use cases: carry out a request in the directory (job.py, rows.py), delete accounts after their
grace period (removal.py), and `Directories`, the provisioner of each population.

The back ends themselves (adapters of the `Provisioner` port) live outside the core, in `directories/`; the
composition root hands `Directories` the function that builds one by name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from edudesk.core.config import Settings
from edudesk.core.errors import ConfigError
from edudesk.core.ports import Clock, Provisioner

POPULATIONS = ("staff", "student")
Build = Callable[[Settings, Clock, str], Provisioner]  # (settings, clock, back end name) -> Provisioner


@runtime_checkable
class BatchLookup(Protocol):
    """A back end that can look a chunk's addresses up at once before its `create` calls (LDAP: one search
    per base instead of one per row); optional, a speed-up only."""

    async def lookup_many(self, addresses: list[str]) -> None:
        """Look these addresses up now, for the `create` calls that follow."""
        ...


class Directories:
    """The provisioner for each population; one instance per back end, shared by the populations."""

    def __init__(self, settings: Settings, clock: Clock, build: Build | None = None,
                 fixed: Provisioner | None = None) -> None:
        self.settings = settings
        self._by_name: dict[str, Provisioner] = {}
        self._fixed = fixed
        if fixed is None:
            if build is None:
                raise ValueError("Directories needs a back-end builder or a fixed provisioner")
            for population in POPULATIONS:
                name = settings.provisioning.backend_for(population)
                if name not in self._by_name:
                    self._by_name[name] = build(settings, clock, name)

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
