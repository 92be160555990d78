"""`edudesk init`: a new school's config.toml, from the shipped one (every comment kept), with the school's
name, mail domains, office address, naming rule and form names filled in; asked for, or given as flags."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edudesk.core.accounts.naming import RULE_FIELDS, check_naming
from edudesk.core.config import NamingSettings, load_settings
from edudesk.core.errors import ConfigError, EdudeskError
from edudesk.core.words import words
from edudesk.resources import config_example

TEMPLATE = config_example()  # the shipped config.toml (package data, also in a wheel)
DEFAULT_RULE = "{given}.{family}{middle}"
_DOMAIN = re.compile(r"^(?=.{4,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9.-]+)$")


def add_parser(sub: Any) -> None:
    """The `init` command (sets `func` to `run_init`; it runs before any config is read)."""
    p = sub.add_parser("init", help="write a commented config.toml for a new school (asks for what is not given)")
    p.add_argument("--config", dest="init_config", default=None,
                   help="file to write (default: --config before the command, else ./config.toml)")
    p.add_argument("--name", help="the institution's full name, e.g. \"Trường THPT Chu Văn An\"")
    p.add_argument("--short-name", help="the name where space is short (default: the full name)")
    p.add_argument("--domain", action="append", default=None,
                   help="a mail domain of the institution (repeat: staff domain first, then the students')")
    p.add_argument("--staff-domain", help="domain of staff accounts (default: the first --domain)")
    p.add_argument("--student-domain", help="domain of student accounts (default: the second --domain, else the first)")
    p.add_argument("--office-address", help="the office mailbox people write to, e.g. cntt@truong.edu.vn")
    p.add_argument("--office-unit", help="the office's unit, named in mails (default: \"Phòng Công nghệ thông tin\")")
    p.add_argument("--naming-rule", help=f"address rule (default {DEFAULT_RULE}); fields: "
                                         + " ".join(sorted(RULE_FIELDS)))
    p.add_argument("--staff-form", help="name of the staff registration form (default BM01)")
    p.add_argument("--student-form", help="name of the students' registration form (default BM02)")
    p.add_argument("--list-form", help="name of the bulk list of new students (default BM-CNTT31)")
    p.add_argument("--lang", choices=["vi", "en"], default=None, help="language of mails and chat texts (default vi)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=run_init)


@dataclass(frozen=True)
class School:
    """What `init` writes into the template."""

    name: str
    short_name: str
    domains: tuple[str, ...]
    staff_domain: str
    student_domain: str
    office_address: str
    office_unit: str
    naming_rule: str
    staff_form: str
    student_form: str
    list_form: str
    lang: str


def check_domain(value: str, lang: str) -> str:
    """A lower-case mail domain, or EdudeskError naming the value."""
    domain = value.strip().lower().removeprefix("@")
    if not _DOMAIN.match(domain):
        raise EdudeskError(words(lang)("cli.init.bad_domain", value=value), code="init")
    return domain


def check_address(value: str, lang: str) -> str:
    """An e-mail address, or EdudeskError naming the value."""
    address = value.strip().lower()
    match = _ADDRESS.match(address)
    if not match or not _DOMAIN.match(match.group(1)):
        raise EdudeskError(words(lang)("cli.init.bad_address", value=value), code="init")
    return address


def check_rule(value: str, lang: str) -> str:
    """A naming rule using only the known fields, or EdudeskError listing them."""
    try:
        check_naming(NamingSettings(rule=value))
    except (ConfigError, ValueError, IndexError):
        raise EdudeskError(words(lang)("cli.init.bad_rule", value=value, fields=" ".join(
            "{" + f + "}" for f in sorted(RULE_FIELDS))), code="init") from None
    return value


def in_domains(address: str, domains: tuple[str, ...]) -> bool:
    """True when the address's domain is one of the domains or below one of them."""
    host = address.rpartition("@")[2]
    return any(host == d or host.endswith("." + d) for d in domains)


Ask = Callable[[str], str]


def _value(given: str | None, key: str, lang: str, ask: Ask | None, *, default: str = "",
           check: Callable[[str, str], str] | None = None) -> str:
    """A flag's value, else (at a terminal) the answer to a question, checked; else the default or a refusal."""
    w = words(lang)
    if given is not None and given.strip():
        return check(given, lang) if check else given.strip()
    if ask is None:
        if default:
            return default
        raise EdudeskError(w("cli.init.missing", flag="--" + key.replace("_", "-")), code="init")
    while True:
        prompt = w(f"cli.init.ask.{key}") + (f" [{default}]" if default else "") + ": "
        answer = ask(prompt).strip() or default
        if not answer:
            continue
        try:
            return check(answer, lang) if check else answer
        except EdudeskError as exc:
            print(exc.message, file=sys.stderr)


def gather(args: argparse.Namespace, ask: Ask | None) -> School:
    """The school's values from the flags, asking (when `ask` is given) for what is missing."""
    lang = args.lang or (_value(None, "lang", "vi", ask, default="vi", check=_check_lang) if ask else "vi")
    name = _value(args.name, "name", lang, ask)
    short_name = _value(args.short_name, "short_name", lang, ask, default=name)
    if args.domain:
        domains = tuple(dict.fromkeys(check_domain(d, lang) for d in args.domain))
    else:
        first = _value(None, "domain", lang, ask, check=check_domain)
        second = _value(None, "student_domain", lang, ask, default=first, check=check_domain) if ask else first
        domains = tuple(dict.fromkeys((first, second)))
    staff_domain = _value(args.staff_domain, "staff_domain", lang, None, default=domains[0], check=check_domain)
    student_domain = _value(args.student_domain, "student_domain", lang, None,
                            default=domains[1] if len(domains) > 1 else domains[0], check=check_domain)
    domains = tuple(dict.fromkeys((*domains, staff_domain, student_domain)))
    office = _value(args.office_address, "office_address", lang, ask, default=f"cntt@{staff_domain}" if ask else "",
                    check=check_address)
    return School(
        name=name, short_name=short_name, domains=domains, staff_domain=staff_domain, student_domain=student_domain,
        office_address=office,
        office_unit=_value(args.office_unit, "office_unit", lang, ask, default=words(lang)("cli.init.default_unit")),
        naming_rule=_value(args.naming_rule, "naming_rule", lang, ask, default=DEFAULT_RULE, check=check_rule),
        staff_form=_value(args.staff_form, "staff_form", lang, ask, default="BM01"),
        student_form=_value(args.student_form, "student_form", lang, ask, default="BM02"),
        list_form=_value(args.list_form, "list_form", lang, ask, default="BM-CNTT31"),
        lang=lang,
    )


def _check_lang(value: str, lang: str) -> str:
    if value.strip() not in ("vi", "en"):
        raise EdudeskError(words(lang)("cli.init.bad_lang", value=value), code="init")
    return value.strip()


def toml_string(value: str) -> str:
    """A TOML basic string."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'


def toml_list(values: tuple[str, ...]) -> str:
    """A TOML array of strings on one line."""
    return "[" + ", ".join(toml_string(v) for v in values) + "]"


_LINE = re.compile(r'^(?P<key>[A-Za-z_]+)(?P<eq>\s*=\s*)(?P<value>"(?:[^"\\]|\\.)*"|\[[^\]]*\])(?P<rest>.*)$')


def render(template: str, school: School) -> str:
    """The template with the school's values in place of the shipped ones; every other line as it was."""
    values: dict[tuple[str, str], str] = {
        ("general", "language"): toml_string(school.lang),
        ("institution", "name"): toml_string(school.name),
        ("institution", "short_name"): toml_string(school.short_name),
        ("institution", "domains"): toml_list(school.domains),
        ("institution", "office_unit"): toml_string(school.office_unit),
        ("institution", "staff_form"): toml_string(school.staff_form),
        ("institution", "student_form"): toml_string(school.student_form),
        ("institution", "list_form"): toml_string(school.list_form),
        ("institution", "office_address"): toml_string(school.office_address),
        ("naming", "rule"): toml_string(school.naming_rule),
        ("naming", "staff_domain"): toml_string(school.staff_domain),
        ("naming", "student_domain"): toml_string(school.student_domain),
        ("outgoing", "from_address"): toml_string(school.office_address),
        ("outgoing", "from_name"): toml_string(school.office_unit),
        ("records", "school"): toml_string(school.name),
    }
    section = ""
    out: list[str] = []
    for line in template.splitlines(keepends=True):
        body = line.rstrip("\n")
        header = re.match(r"^\[([A-Za-z_.]+)\]", body)
        if header:
            section = header.group(1)
        match = _LINE.match(body)
        new = values.get((section, match.group("key"))) if match else None
        if match and new is not None:
            old, rest = match.group("value"), match.group("rest")
            if rest.strip():  # keep the comment in its column when the new value fits
                pad = max(1, len(old) + len(rest) - len(rest.lstrip()) - len(new))
                rest = " " * pad + rest.lstrip()
            body = match.group("key") + match.group("eq") + new + rest
        elif section == "chat" and body.startswith("info_questions") and school.list_form != "BM-CNTT31":
            body = body.replace("mẫu BM-CNTT31", "mẫu " + school.list_form.replace('"', "'"))
        out.append(body + ("\n" if line.endswith("\n") else ""))
    return "".join(out)


def write_config(target: Path, school: School, *, force: bool, template: Path = TEMPLATE) -> str:
    """Write the rendered config (0600 when new) and check that edudesk reads it back; the text written."""
    lang = school.lang
    if target.exists() and not force:
        raise EdudeskError(words(lang)("cli.init.exists", path=target), code="init")
    if target.is_dir():
        raise EdudeskError(words(lang)("cli.init.is_dir", path=target), code="init")
    if not target.parent.is_dir():
        raise EdudeskError(words(lang)("cli.init.no_folder", path=target.parent), code="init")
    text = render(template.read_text(encoding="utf-8"), school)
    partial = target.with_name(target.name + ".new")
    partial.write_text(text, encoding="utf-8")
    try:
        load_settings(partial)  # the file edudesk will read: refuse to leave one it cannot
    except ConfigError:
        partial.unlink()
        raise
    partial.replace(target)
    return text


async def run_init(_settings: Any, args: argparse.Namespace) -> int:
    """`edudesk init`: ask or take the values, write config.toml, say what to do next."""
    ask: Ask | None = input if sys.stdin.isatty() else None
    school = gather(args, ask)
    w = words(school.lang)
    target = Path(args.init_config or args.config or "config.toml")
    write_config(target, school, force=args.force)
    if not in_domains(school.office_address, school.domains):
        print(w("cli.init.office_outside", address=school.office_address, domains=", ".join(school.domains)),
              file=sys.stderr)
    print(w("cli.init.written", path=target, name=school.name, staff=school.staff_domain,
            student=school.student_domain, office=school.office_address))
    print(w("cli.init.next"))
    return 0
