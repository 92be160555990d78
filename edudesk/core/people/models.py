"""The people's tables: the registry of students and staff, office staff, console sign-ins.

Schema changes go through `core/migrations` (tortoise migrations); the app label is `models`."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class RegistryEntry(Model):
    """A person of the staff/student registry (the school's HR or student software export)."""

    id = fields.BigIntField(primary_key=True)
    population = fields.CharField(max_length=16)
    person_id = fields.CharField(max_length=64)
    full_name = fields.CharField(max_length=300)
    name_key = fields.CharField(max_length=300, db_index=True)  # folded, for search
    date_of_birth = fields.DateField(null=True)
    unit = fields.CharField(max_length=300, default="")
    class_name = fields.CharField(max_length=100, default="")
    cohort = fields.CharField(max_length=50, default="")
    email = fields.CharField(max_length=320, default="")  # institutional account, when it has one
    mobile = fields.CharField(max_length=32, default="")
    # a personal address (not the institution's) the office confirms an unverified sender's request through
    personal_email = fields.CharField(max_length=320, default="")
    imported_at = fields.DatetimeField()

    class Meta:
        table = "registry_entry"
        unique_together = (("population", "person_id"),)



class Staff(Model):
    """An office member who acts in chat or in the web console, with roles (office, technical, head, admin)."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=200)
    email = fields.CharField(max_length=320, default="", db_index=True)
    roles: fields.JSONField[list[Any]] = fields.JSONField(default=list)
    telegram_id = fields.BigIntField(null=True, unique=True)
    zalo_id = fields.CharField(max_length=64, null=True, unique=True)  # the Zalo user id the bot/OA sees
    notify_via = fields.CharField(max_length=16, default="")  # "" (first linked chat) | telegram | zalo | email
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "staff"



class LoginToken(Model):
    """A one-time sign-in link for the web console (only its hash is stored)."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    staff_id = fields.BigIntField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "login_token"



class WebSession(Model):
    """A signed-in web console session (cookie value hashed) with its CSRF token."""

    token_hash = fields.CharField(max_length=64, primary_key=True)
    staff_id = fields.BigIntField(db_index=True)
    csrf = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()

    class Meta:
        table = "web_session"
