"""Check each person of a request: registry, existing account, open duplicates, sender policy, address."""

from __future__ import annotations

from dataclasses import dataclass, field

from edudesk.core.accounts.models import Account
from edudesk.core.accounts.naming import local_part, propose_addresses
from edudesk.core.config import Settings
from edudesk.core.intake.domain import ExtractedRequest, IncomingMail, Kind, Person, Population, Problem, Severity
from edudesk.core.intake.facts import registry_facts
from edudesk.core.intake.listrows import row_findings
from edudesk.core.intake.sender import (
    Verification,
    auth_failed,
    from_untrusted,
    is_free_mail,
    sender_domain,
    sender_verification,
    spoof_suspected,
    topmost_results,
    trusted_institutional,
)
from edudesk.core.people.registry import compare
from edudesk.core.words import words

NEW_KINDS = (Kind.NEW_ACCOUNT, Kind.BULK_NEW_ACCOUNTS)
SENSITIVE_KINDS = (Kind.PASSWORD_RESET, Kind.DELETE_ACCOUNTS)
UNVERIFIED_SENDER = "unverified_sender"  # approving waits for a confirmation link (core/intake/confirm.py)
FREE_MAIL_OFFICIAL = "free_mail_official"


@dataclass
class Checked:
    """A request after its checks: persons with proposed addresses, findings, flags."""

    persons: list[Person]
    person_problems: list[list[Problem]]
    problems: list[Problem] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)
    auth_results: dict[str, str] = field(default_factory=dict)
    verified: bool | None = None  # the sender's authentication (`Verification.verified`): None = no result


def sender_findings(mail: IncomingMail, kind: Kind, settings: Settings,
                    verification: Verification | None = None) -> tuple[list[Problem], list[str], dict]:
    """Sender policy: outside senders for resets/deletions, failed SPF/DKIM/DMARC, spoof signs."""
    domains = settings.institution.domains
    # only a header a trusted server wrote counts
    results = (verification or sender_verification(mail, settings)).results
    if not any(results.values()):
        results = topmost_results(mail)  # no trusted header: signs of failure still count, never a pass
    problems: list[Problem] = []
    flags: list[str] = []
    inside = trusted_institutional(mail, domains)
    if not inside and (kind in SENSITIVE_KINDS or
                       (kind in NEW_KINDS and not settings.intake.personal_senders_for_new_accounts)):
        flags.append("external_sender")
        problems.append(Problem("sender", "external_sender",
                                f"Yêu cầu được gửi từ địa chỉ ngoài trường ({mail.from_addr}); "
                                "cần xác minh người gửi trước khi xử lý.", Severity.WARNING))
    if settings.intake.flag_failed_authentication and auth_failed(results) and kind in SENSITIVE_KINDS:
        flags.append("auth_failed")
        problems.append(Problem("sender", "auth_failed",
                                "Thư không qua kiểm tra xác thực (SPF/DKIM/DMARC): có thể bị giả mạo người gửi.",
                                Severity.ERROR))
    if from_untrusted(mail):
        flags.append("from_untrusted")
        problems.append(Problem("sender", "from_untrusted",
                                "Dòng người gửi (From) của thư không chỉ rõ một địa chỉ duy nhất (có nhiều địa "
                                "chỉ hoặc địa chỉ không hợp lệ): không coi là thư từ trong trường.", Severity.ERROR))
    if spoof_suspected(mail, domains, results):
        flags.append("spoof_suspected")
        problems.append(Problem("sender", "spoof_suspected",
                                "Người gửi có dấu hiệu giả mạo địa chỉ của trường.", Severity.ERROR))
    return problems, flags, results


# Circular 53/2012: official business a unit or a staff member does for the school (staff accounts, a unit's
# list, deletions); a person asking for their own student account or password is not.
def is_official(kind: Kind, population: Population) -> bool:
    """Whether a request is official business that must come from an official address (Circular 53/2012)."""
    return kind in (Kind.BULK_NEW_ACCOUNTS, Kind.DELETE_ACCOUNTS) or (
        kind is Kind.NEW_ACCOUNT and population is Population.STAFF)


def policy_findings(mail: IncomingMail, kind: Kind, population: Population, settings: Settings,
                    verification: Verification, *, reply: bool = False) -> tuple[list[Problem], list[str]]:
    """The sender policy of issue 15: `unverified_sender` for a reset, a deletion or a changed form claiming a
    school sender without an aligned DMARC/DKIM pass (a missing result is not a pass); `free_mail_official`
    for official business from a public mail provider."""
    problems: list[Problem] = []
    flags: list[str] = []
    w = words(settings.general.language)
    kind_label = w.label("mailkind", kind.value)
    if (kind in SENSITIVE_KINDS or reply) and trusted_institutional(mail, settings.institution.domains) \
            and verification.verified is not True:
        why = ("none" if verification.verified is None
               else "fail" if verification.results.get("dmarc") == "fail" else "misaligned")
        flags.append(UNVERIFIED_SENDER)
        problems.append(Problem("sender", UNVERIFIED_SENDER, w("confirm.problem_reply" if reply else "confirm.problem",
                                                               kind=kind_label, why=w(f"confirm.why.{why}")),
                                Severity.ERROR))
    if is_official(kind, population) and is_free_mail(mail.from_addr, settings.intake.free_mail_domains):
        flags.append(FREE_MAIL_OFFICIAL)
        problems.append(Problem("sender", FREE_MAIL_OFFICIAL, w("freemail.problem", kind=kind_label,
                                                                domain=sender_domain(mail.from_addr)),
                                Severity.WARNING))
    return problems, flags


async def check_request(extracted: ExtractedRequest, mail: IncomingMail, settings: Settings,
                        *, exclude_request: int | None = None, reply: bool = False) -> Checked:
    """Run every check on an extracted request; findings are attached per person (row) and request."""
    population = extracted.population
    persons = list(extracted.persons)
    per_person: list[list[Problem]] = [[] for _ in persons]
    for p in extracted.problems:
        (per_person[p.row] if p.row is not None and 0 <= p.row < len(persons) else []).append(p)
    problems = [p for p in extracted.problems if p.row is None or not 0 <= p.row < len(persons)]
    ids = [p.person_id for p in persons if p.person_id]
    new_addresses = extracted.kind in NEW_KINDS and bool(persons)
    bases = {local_part(p, settings.naming.rule) for p in persons} - {""} if new_addresses else set()
    facts = await registry_facts(population.value, ids, extracted.kind.value, exclude_request, bases)
    entries, accounts, duplicates = facts.entries, facts.accounts, facts.duplicates
    # Accounts this very request created already (a provisioning run that stopped half-way, then a
    # corrected form): they are the people's own, not a reason to propose a second address.
    own = {a.person_id: a.address for a in await Account.filter(request_id=exclude_request, state="active")
           if a.person_id} if exclude_request else {}
    in_list = row_findings(persons, per_person)  # missing IDs held back, the same person twice named so
    for row, person in enumerate(persons):
        found = per_person[row]
        found.extend(compare(person, entries.get(person.person_id), row, population))
        account = accounts.get(person.person_id)
        if account and extracted.kind in NEW_KINDS and own.get(person.person_id) != account:
            found.append(Problem("account", "has_account", f"Người này đã có tài khoản {account}.",
                                 Severity.ERROR, row))
        elif not account and person.person_id and extracted.kind in SENSITIVE_KINDS:
            found.append(Problem("account", "no_account", "Không tìm thấy tài khoản hiện có của người này.",
                                 Severity.WARNING, row))
        if person.person_id in duplicates:
            found.append(Problem("request", "duplicate_request",
                                 f"Đã có yêu cầu YC-{duplicates[person.person_id]} đang xử lý cho người này.",
                                 Severity.WARNING, row))
    if new_addresses:
        domain = settings.domain_for(population.value)
        taken = {a for a in facts.taken if a.endswith("@" + domain)}
        # A repeated row gets no address of its own (a "changed" a.xyz2): it shows the row it repeats.
        firsts = [i for i in range(len(persons)) if i not in in_list]
        proposed = dict(zip(firsts, propose_addresses([persons[i] for i in firsts], population.value,
                                                      settings.naming, taken), strict=True))
        addresses = [proposed[in_list.get(i, i)] for i in range(len(persons))]
        persons = [p.with_(proposed_address=own.get(p.person_id) or a)
                   for p, a in zip(persons, addresses, strict=True)]
    elif extracted.kind in SENSITIVE_KINDS:
        persons = [p.with_(proposed_address=accounts.get(p.person_id, "")) for p in persons]
    verification = sender_verification(mail, settings)  # read once: the sender findings and the policy share it
    sender_problems, flags, results = sender_findings(mail, extracted.kind, settings, verification)
    policy_problems, policy_flags = policy_findings(mail, extracted.kind, population, settings, verification,
                                                    reply=reply)
    return Checked(persons, per_person, problems + sender_problems + policy_problems, flags + policy_flags, results,
                   verification.verified)

