"""Fixtures of the OAuth2 mailbox tests: the fake token services and a Dovecot taking their bearer tokens.

A test module imports the ones it uses (`from tests.oauth_fixtures import fake_fixture, ...`)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from tests.fakes.oauth_tokens import FakeOAuth
from tests.servers.dovecot import DovecotServer, find_dovecot


@pytest.fixture(name="fake")
async def fake_fixture() -> AsyncIterator[FakeOAuth]:
    """The fake token services."""
    fake = await FakeOAuth().start()
    yield fake
    await fake.stop()


@pytest.fixture(name="dovecot_oauth")
def dovecot_oauth_fixture(fake: FakeOAuth) -> Iterator[DovecotServer]:
    """A private Dovecot that also takes bearer tokens, checked with the fake; skipped only off CI."""
    binary = find_dovecot()
    if binary is None:
        message = "dovecot is not installed: run scripts/install-test-deps.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    with DovecotServer(binary=binary, oauth2_introspection=fake.introspection_url("imap")) as server:
        yield server
