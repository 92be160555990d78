"""One error root: every refusal a person can see is an `EdudeskError` subclass with a stable catalogue code,
and there is one `NotAllowed` and one `LinkRefused` whatever module a caller names them from."""

from __future__ import annotations

import importlib
import pkgutil
import re

from edudesk import core, mailer
from edudesk.core import errors
from edudesk.core.errors import EdudeskError


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def test_one_not_allowed_and_one_link_refused() -> None:
    from edudesk.core.accounts import passwordlinks
    from edudesk.core.people import access, chatlinks, staff
    from edudesk.core.signing import service

    assert staff.NotAllowed is service.NotAllowed is errors.NotAllowed
    assert issubclass(access.AccessDenied, errors.NotAllowed)
    assert chatlinks.LinkRefused is passwordlinks.LinkRefused is errors.LinkRefused
    refused = passwordlinks.refused(passwordlinks.Refusal.USED, 4)
    assert isinstance(refused, errors.LinkRefused)
    assert (refused.code, refused.reason, refused.request_id) == ("password_link_refused", "used", 4)
    assert errors.LinkRefused("Mã sai.").code == "link_refused"


def test_every_domain_error_has_a_stable_catalogue_code() -> None:
    for package in (core, mailer):
        for module in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" not in module.name:
                importlib.import_module(module.name)
    classes = _subclasses(EdudeskError)
    assert len(classes) > 20
    for cls in classes:
        assert re.fullmatch(r"[a-z][a-z0-9_]*", cls.code), cls
        assert cls.code != EdudeskError.code, f"{cls.__module__}.{cls.__name__} has no code of its own"


def test_an_english_reader_gets_the_catalogues_words_for_the_code_and_a_vietnamese_one_the_details() -> None:
    from edudesk.core.errors import EdudeskError, NotAllowed

    refused = NotAllowed("Chỉ trưởng bộ phận mới giao lại được yêu cầu.")
    assert refused.in_words("vi") == refused.message
    english = refused.in_words("en")
    assert english and english != refused.message and english.isascii()
    odd = EdudeskError("Lỗi lạ", code="a_code_without_words")
    assert odd.in_words("en") == "Lỗi lạ"  # nothing better to say than the message itself
