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

    def in_words(self, lang: str | None = "vi") -> str:
        """What the person reads: the message (Vietnamese, with its details), or in another language the
        catalogue's words for the code (core/words), so an English console never shows Vietnamese."""
        if lang in (None, "", "vi"):
            return self.message
        from edudesk.core.words import words

        w = words(lang)
        return w(f"error.{self.code}") if w.has(f"error.{self.code}") else self.message


class ConfigError(EdudeskError):
    """config.toml is missing a value or has a wrong one."""

    code = "config"


class NotFound(EdudeskError):
    """The thing asked for does not exist."""

    code = "not_found"


class InvalidTransition(EdudeskError):
    """The request is not in a state that allows this action."""

    code = "invalid_transition"


class NotAllowed(EdudeskError):
    """The actor lacks the role (or the tie to the class, the record, the request) an action needs."""

    code = "not_allowed"


class LinkRefused(EdudeskError):
    """A one-time link or code that does nothing: wrong, used, expired, gone, or tried too often.

    `code` names the kind of link (`link_refused` a chat link code, `password_link_refused` a password
    link); `reason` says why, for the surface that words the answer (e.g. a password link's `Refusal`)."""

    code = "link_refused"

    def __init__(self, message: str, *, reason: str = "", code: str | None = None,
                 request_id: int | None = None) -> None:
        super().__init__(message, code=code)
        self.reason = reason
        self.request_id = request_id  # a password link's request: the page speaks the mail's language
