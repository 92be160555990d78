"""Directory back ends behind one `Provisioner` port, and the factory that picks one from config."""

from __future__ import annotations

from core.config import Settings
from core.errors import ConfigError
from core.ports import Clock, Provisioner


def make_provisioner(settings: Settings, clock: Clock) -> Provisioner:
    """The provisioner named by `[provisioning].backend`."""
    backend = settings.provisioning.backend
    if backend == "local":
        from core.provisioning.local import LocalProvisioner

        return LocalProvisioner(clock)
    raise ConfigError(f"[provisioning].backend = '{backend}' chưa được hỗ trợ (hiện có: local).",
                      code="config_backend")
