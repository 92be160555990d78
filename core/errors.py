"""One error root with a text fit for the person who caused it; each channel translates it."""

from __future__ import annotations


class EdudeskError(Exception):
    """Base of all domain errors; `message` is Vietnamese and safe to show to the user."""

    code = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class ConfigError(EdudeskError):
    """config.toml is missing a value or has a wrong one."""

    code = "config"


class MessageTooLarge(EdudeskError):
    """A mail is over the configured size limit."""

    code = "too_large"


class HostileInput(EdudeskError):
    """An attachment that would explode on opening (zip bomb, too many parts, nesting)."""

    code = "hostile_input"


class NotFound(EdudeskError):
    """The thing asked for does not exist."""

    code = "not_found"


class InvalidTransition(EdudeskError):
    """The request is not in a state that allows this action."""

    code = "invalid_transition"
