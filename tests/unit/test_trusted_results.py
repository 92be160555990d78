"""Which Authentication-Results to believe, and whether they prove the sender (issue 15)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from edudesk.core.config import Settings, load_settings
from edudesk.core.intake.domain import IncomingMail
from edudesk.core.intake.sender import (
    aligned,
    authserv_id_of,
    dmarc_failure,
    sender_verification,
    spoof_suspected,
    topmost_results,
    trusted_header,
    trusted_results,
)
from edudesk.mailer.parse import parse_mail

FIXTURES = Path(__file__).parents[1] / "fixtures" / "mail"
SCHOOL = ("thpt-nguyenhue.edu.vn",)
OWN = "edudesk.test"


def load(name: str) -> IncomingMail:
    return parse_mail((FIXTURES / name).read_bytes())


def settings(**intake: Any) -> Settings:
    return load_settings(None, overrides={"intake": {"authserv_id": OWN, **intake}}, environ={})


def with_results(*headers: str, sender: str = "daotao@thpt-nguyenhue.edu.vn") -> IncomingMail:
    return IncomingMail(message_id="m@x", subject="s", from_addr=sender,
                        headers={"authentication-results": "\n".join(headers)})


def test_authserv_id_is_the_first_token_and_microsofts_header_has_none():
    assert authserv_id_of("mx.google.com; spf=pass") == "mx.google.com"
    assert authserv_id_of("MX.Truong.edu.vn. 1; dkim=none") == "mx.truong.edu.vn"
    assert authserv_id_of("(comment) mx.example.org (another); none") == "mx.example.org"
    assert authserv_id_of("spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=x.vn; dkim=none") == ""


def test_gmails_header_is_trusted_and_a_forged_copy_below_it_is_ignored():
    mail = load("auth_gmail_fail_forged_below.eml")
    assert trusted_results(mail, OWN, ("mx.google.com",)) == {"spf": "softfail", "dkim": "", "dmarc": "fail"}
    found = sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"]))
    assert found.verified is False
    assert found.dmarc_policy == "reject"
    assert found.authserv_id == "mx.google.com"


def test_a_forged_header_with_our_own_id_below_the_top_does_not_count():
    mail = load("auth_gmail_fail_forged_below.eml")  # its lowest header claims to be ours and says pass
    assert trusted_header(mail, OWN, ("other.example",)) is None
    assert sender_verification(mail, settings(trusted_authserv_ids=["other.example"])).verified is None


def test_our_own_header_on_top_decides():
    mail = with_results(f"{OWN}; spf=pass smtp.mailfrom=a@thpt-nguyenhue.edu.vn; dkim=none; "
                        "dmarc=pass (p=reject) header.from=thpt-nguyenhue.edu.vn policy.dmarc=reject",
                        "mx.google.com; dmarc=fail")
    found = sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"]))
    assert (found.verified, found.results["dmarc"], found.dmarc_policy) == (True, "pass", "reject")


def test_gmail_pass_with_aligned_dkim_verifies_the_school_sender():
    found = sender_verification(load("auth_gmail_pass.eml"), settings(trusted_authserv_ids=["mx.google.com"]))
    assert found.verified is True
    assert found.results == {"spf": "pass", "dkim": "pass", "dmarc": "pass"}
    assert (found.dmarc_policy, found.dkim_domains) == ("quarantine", ("thpt-nguyenhue.edu.vn",))


def test_a_header_from_a_server_we_do_not_trust_is_no_result():
    mail = load("auth_gmail_pass.eml")
    assert trusted_header(mail, OWN, ("mx.thpt-nguyenhue.edu.vn",)) is None
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx.thpt-nguyenhue.edu.vn"])).verified is None


def test_without_trusted_ids_no_other_server_proves_anything():
    mail = load("auth_gmail_fail_forged_below.eml")
    assert trusted_results(mail, OWN, ()) == {"spf": "", "dkim": "", "dmarc": ""}
    assert sender_verification(mail, settings()).verified is None
    # the topmost header still counts as a sign of failure (a sender gains nothing by writing "fail")
    assert topmost_results(mail) == {"spf": "softfail", "dkim": "", "dmarc": "fail"}


def test_microsoft_365_header_without_an_id_counts_only_on_top():
    mail = load("auth_microsoft365.eml")
    assert sender_verification(mail, settings()).verified is None  # no trusted ids: Microsoft's header proves nothing
    found = sender_verification(mail, settings(trusted_authserv_ids=[""]))
    assert (found.verified, found.results["dmarc"], found.dmarc_policy) == (False, "fail", "reject")
    assert found.results["spf"] == "fail"
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"])).verified is None
    forged_below = with_results("mx.google.com; dmarc=fail header.from=thpt-nguyenhue.edu.vn",
                                "spf=pass; dkim=pass header.d=thpt-nguyenhue.edu.vn; dmarc=pass")
    assert sender_verification(forged_below, settings(trusted_authserv_ids=["mx.google.com", ""])).verified is False


def test_a_dkim_pass_of_another_organisation_does_not_verify():
    found = sender_verification(load("auth_misaligned_dkim.eml"), settings(trusted_authserv_ids=["mx.google.com"]))
    assert found.results["dkim"] == "pass"
    assert found.dkim_domains == ("bulk-sender.org",)
    assert found.verified is False


def test_a_dkim_pass_of_a_subdomain_is_aligned_but_not_of_the_public_suffix():
    assert aligned("mail.thpt-nguyenhue.edu.vn", "thpt-nguyenhue.edu.vn")
    assert not aligned("edu.vn", "thpt-nguyenhue.edu.vn")
    assert not aligned("other-school.edu.vn", "thpt-nguyenhue.edu.vn")
    mail = with_results("mx.google.com; dkim=pass header.d=mail.thpt-nguyenhue.edu.vn; spf=none")
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"])).verified is True


def test_a_dmarc_pass_about_another_from_domain_is_not_a_pass():
    mail = with_results("mx.google.com; dmarc=pass header.from=attacker.example")
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"])).verified is False


def test_a_missing_result_is_not_a_pass_and_no_header_is_none():
    assert sender_verification(with_results("mx.google.com; none"),
                               settings(trusted_authserv_ids=["mx.google.com"])).verified is False
    found = sender_verification(load("auth_none.eml"), settings())
    assert (found.verified, found.to_json()) == (None, {"spf": "", "dkim": "", "dmarc": ""})


def test_temperror_is_not_a_pass():
    mail = with_results(f"{OWN}; spf=temperror; dkim=temperror; dmarc=temperror")
    assert sender_verification(mail, settings()).verified is False


def test_a_from_that_is_not_one_address_is_never_verified():
    mail = replace(with_results("mx.google.com; dmarc=pass header.from=thpt-nguyenhue.edu.vn"),
                   defects=("from-untrusted: two addresses",))
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx.google.com"])).verified is False


@pytest.mark.parametrize("header", [
    "mx; dmarc=fail action=quarantine header.from=x.vn",
    "mx; dmarc=fail (p=QUARANTINE sp=NONE) header.from=x.vn",
    "mx; dmarc=fail header.from=x.vn policy.dmarc=quarantine",
])
def test_the_dmarc_policy_is_read_in_each_servers_way(header: str):
    mail = with_results(header, sender="a@x.vn")
    assert sender_verification(mail, settings(trusted_authserv_ids=["mx"])).dmarc_policy == "quarantine"
    assert dmarc_failure(mail, settings()) == (True, "quarantine")  # untrusted: still a sign of failure


def test_spoof_check_reads_only_trusted_results():
    # the topmost (trusted) header failed; a forged pass below must not clear the school address
    mail = load("auth_gmail_fail_forged_below.eml")
    assert spoof_suspected(mail, SCHOOL)
    passed = load("auth_gmail_pass.eml")
    assert not spoof_suspected(passed, SCHOOL, trusted_results(passed, OWN, ("mx.google.com",)))
