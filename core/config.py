"""config.toml -> frozen typed settings that mirror its sections; secrets come from the environment."""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.signing.settings import RecordsSettings


@dataclass(frozen=True)
class GeneralSettings:
    language: str = "vi"
    data_dir: str = "data"
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: str = "INFO"
    secret_key_env: str = "EDUDESK_SECRET_KEY"


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite://{data_dir}/edudesk.sqlite3"
    url_env: str = "EDUDESK_DATABASE_URL"


@dataclass(frozen=True)
class InstitutionSettings:
    name: str = "Trường Đại học Bách khoa Hà Nội"
    short_name: str = "ĐHBK Hà Nội"
    domains: tuple[str, ...] = ("hust.edu.vn", "sis.hust.edu.vn")
    office_address: str = "office-bknic@hust.edu.vn"
    office_unit: str = "Trung tâm Mạng Thông tin"  # the office's own unit, named in mails ("Phòng/Trung tâm ...")
    staff_form: str = "BM01"  # the registration form of staff (named in mails and pages)
    student_form: str = "BM02"  # the registration form of students
    list_form: str = "BM-CNTT31"  # the bulk list of new students
    report_form: str = "BM03"  # the summary report


@dataclass(frozen=True)
class NamingSettings:
    rule: str = "{given}.{family}{middle}"
    collision: str = "number_suffix"
    suffix_start: int = 2
    staff_domain: str = "hust.edu.vn"
    student_domain: str = "sis.hust.edu.vn"


@dataclass(frozen=True)
class SmtpdSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 2525
    max_message_size: int = 25 * 1024 * 1024
    recipients: tuple[str, ...] = ()
    max_backlog: int = 20
    backlog_wait_seconds: float = 120.0


@dataclass(frozen=True)
class ImapSettings:
    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 993
    ssl: bool = True
    starttls: bool = False
    username: str = ""
    password_env: str = "EDUDESK_IMAP_PASSWORD"
    mailbox: str = "INBOX"
    processed_mailbox: str = ""
    idle: bool = True
    idle_timeout: int = 300
    poll_interval: float = 60.0
    backlog_since: str = "new"
    backoff_initial: float = 1.0
    backoff_max: float = 300.0
    alert_after_failures: int = 3


@dataclass(frozen=True)
class OutgoingSettings:
    transport: str = "maildir"
    maildir: str = "{data_dir}/outbox"
    from_address: str = "office-bknic@hust.edu.vn"
    from_name: str = "Văn phòng Trung tâm Mạng Thông tin"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password_env: str = "EDUDESK_SMTP_PASSWORD"
    auto_reply_limit: int = 3
    auto_reply_window_minutes: int = 10
    alerts_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntakeSettings:
    parse_timeout_seconds: float = 20.0
    parser_processes: int = 2
    parser_memory_mb: int = 1024
    max_attachment_bytes: int = 20 * 1024 * 1024
    max_uncompressed_bytes: int = 50 * 1024 * 1024
    max_compression_ratio: int = 100
    max_rows: int = 5000
    personal_senders_for_new_accounts: bool = True
    flag_failed_authentication: bool = True
    flood_limit: int = 100  # requests from one outside address per outgoing.auto_reply_window_minutes (0: none)


@dataclass(frozen=True)
class RetentionSettings:
    raw_mail_days: float = 180.0  # raw mails of closed requests keep only their headers after this many days


@dataclass(frozen=True)
class SlaSettings:
    check_hours: float = 24.0
    provision_hours: float = 24.0
    notify_hours: float = 24.0


@dataclass(frozen=True)
class JobSettings:
    concurrency: int = 4
    max_attempts: int = 8
    backoff_initial_seconds: float = 5.0
    backoff_max_seconds: float = 3600.0
    poll_interval_seconds: float = 1.0
    lease_seconds: float = 60.0


@dataclass(frozen=True)
class WebSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""
    session_hours: float = 12.0
    login_link_minutes: float = 15.0


@dataclass(frozen=True)
class TelegramSettings:
    enabled: bool = False
    token_env: str = "EDUDESK_TELEGRAM_TOKEN"
    api_server: str = ""
    mode: str = "polling"
    webhook_url: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8081
    webhook_path: str = "/telegram/webhook"
    webhook_secret_env: str = "EDUDESK_TELEGRAM_WEBHOOK_SECRET"
    office_chat_id: int = 0
    technical_chat_id: int = 0
    head_chat_id: int = 0
    rate_overall_per_second: float = 29.0
    rate_chat_seconds: float = 1.0
    rate_group_per_minute: float = 20.0


@dataclass(frozen=True)
class RedisSettings:
    url: str = ""
    url_env: str = "EDUDESK_REDIS_URL"


@dataclass(frozen=True)
class RoleSettings:
    office: tuple[str, ...] = ()
    technical: tuple[str, ...] = ()
    head: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    teacher: tuple[str, ...] = ()
    leader: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChatSettings:
    reject_reasons: tuple[str, ...] = (
        "Thiếu thông tin bắt buộc trong phiếu",
        "Không khớp với danh sách cán bộ/sinh viên của trường",
        "Người gửi không có thẩm quyền đề nghị",
        "Trùng với yêu cầu đã xử lý",
    )
    info_questions: tuple[str, ...] = (
        "Đề nghị bổ sung số điện thoại di động",
        "Đề nghị gửi lại phiếu có xác nhận của đơn vị",
        "Đề nghị gửi danh sách theo đúng mẫu BM-CNTT31",
    )
    escalate_after_hours: float = 4.0
    overdue_check_seconds: float = 60.0
    page_size: int = 10
    link_code_minutes: float = 10.0
    action_link_hours: float = 24.0


@dataclass(frozen=True)
class ZaloSettings:
    enabled: bool = False
    api: str = "bot"  # "bot": Zalo Bot Platform; "oa": Zalo Official Account API
    mode: str = "polling"  # bot platform: "polling" or "webhook" (the OA API only has webhooks)
    token_env: str = "EDUDESK_ZALO_BOT_TOKEN"
    api_base: str = "https://bot-api.zaloplatforms.com"
    webhook_url: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 8082
    webhook_path: str = "/zalo/webhook"
    webhook_secret_env: str = "EDUDESK_ZALO_WEBHOOK_SECRET"
    oa_api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    app_id: str = ""
    app_secret_env: str = "EDUDESK_ZALO_APP_SECRET"
    oa_secret_env: str = "EDUDESK_ZALO_OA_SECRET"
    refresh_token_env: str = "EDUDESK_ZALO_REFRESH_TOKEN"
    refresh_before_minutes: float = 60.0
    messages_per_second: float = 5.0


@dataclass(frozen=True)
class PopulationBackends:
    staff: str = ""    # "" = [provisioning].backend
    student: str = ""


@dataclass(frozen=True)
class LocalBackendSettings:
    passwd_file: str = ""  # optional Dovecot passwd-file kept in step with the local accounts


@dataclass(frozen=True)
class DovecotBackendSettings:
    passwd_file: str = "/var/lib/edudesk/dovecot/users"  # outside data_dir (private): Dovecot's group reads it
    scheme: str = "SHA512-CRYPT"  # password scheme written into the passwd-file
    mail_home: str = "/var/vmail/%d/%n"  # home directory template (Dovecot variables)


@dataclass(frozen=True)
class LdapBackendSettings:
    url: str = "ldap://127.0.0.1:389"
    flavour: str = "openldap"  # "openldap" (inetOrgPerson) or "ad" (Active Directory)
    bind_dn: str = ""
    bind_password_env: str = "EDUDESK_LDAP_PASSWORD"
    staff_base: str = "ou=staff,dc=example,dc=edu,dc=vn"
    student_base: str = "ou=students,dc=example,dc=edu,dc=vn"
    object_classes: tuple[str, ...] = ("inetOrgPerson",)
    rdn_attribute: str = "uid"
    login_attribute: str = "uid"        # local part of the address goes here (AD: sAMAccountName)
    mail_attribute: str = "mail"
    person_id_attribute: str = "employeeNumber"
    key_attribute: str = "description"  # edudesk's idempotency key is kept here
    ca_file: str = ""                   # CA of the server's certificate for ldaps:// or StartTLS
    start_tls: bool = False
    pool_size: int = 4
    timeout_seconds: float = 10.0


@dataclass(frozen=True)
class GoogleBackendSettings:
    credentials_env: str = "EDUDESK_GOOGLE_CREDENTIALS"  # service-account JSON (the text, or a file path)
    admin_subject: str = ""     # the super-admin the service account acts for (domain-wide delegation)
    customer: str = "my_customer"
    api_url: str = "https://admin.googleapis.com"
    token_url: str = ""         # "" = token_uri of the service-account file
    staff_org_unit: str = "/Staff"
    student_org_unit: str = "/Students"
    max_retries: int = 6
    backoff_initial_seconds: float = 1.0


@dataclass(frozen=True)
class MicrosoftBackendSettings:
    tenant_id: str = ""
    client_id: str = ""
    client_secret_env: str = "EDUDESK_GRAPH_CLIENT_SECRET"
    graph_url: str = "https://graph.microsoft.com"
    login_url: str = "https://login.microsoftonline.com"
    usage_location: str = "VN"
    max_retries: int = 6
    backoff_initial_seconds: float = 1.0


@dataclass(frozen=True)
class MailcowBackendSettings:
    url: str = ""
    api_key_env: str = "EDUDESK_MAILCOW_API_KEY"
    quota_mb: int = 1024
    max_retries: int = 5
    backoff_initial_seconds: float = 1.0


@dataclass(frozen=True)
class ProvisioningSettings:
    backend: str = "local"
    populations: PopulationBackends = field(default_factory=PopulationBackends)
    password_length: int = 12
    force_change: bool = True
    delivery: str = "link"           # "link" (one-time web link) or "mail" (password inside the result mail)
    link_hours: float = 72.0
    login_url: str = ""
    progress_every: int = 25
    concurrency: int = 8
    delete_grace_days: float = 30.0
    list_password_env: str = ""
    local: LocalBackendSettings = field(default_factory=LocalBackendSettings)
    dovecot: DovecotBackendSettings = field(default_factory=DovecotBackendSettings)
    ldap: LdapBackendSettings = field(default_factory=LdapBackendSettings)
    google: GoogleBackendSettings = field(default_factory=GoogleBackendSettings)
    microsoft: MicrosoftBackendSettings = field(default_factory=MicrosoftBackendSettings)
    mailcow: MailcowBackendSettings = field(default_factory=MailcowBackendSettings)

    def backend_for(self, population: str) -> str:
        """The backend that holds a population's accounts ("staff" or "student")."""
        chosen = self.populations.staff if population == "staff" else self.populations.student
        return chosen or self.backend


@dataclass(frozen=True)
class Settings:
    """All settings; `path` is the config file they came from (None: built-in defaults)."""

    general: GeneralSettings = field(default_factory=GeneralSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    institution: InstitutionSettings = field(default_factory=InstitutionSettings)
    naming: NamingSettings = field(default_factory=NamingSettings)
    smtpd: SmtpdSettings = field(default_factory=SmtpdSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    outgoing: OutgoingSettings = field(default_factory=OutgoingSettings)
    intake: IntakeSettings = field(default_factory=IntakeSettings)
    sla: SlaSettings = field(default_factory=SlaSettings)
    jobs: JobSettings = field(default_factory=JobSettings)
    web: WebSettings = field(default_factory=WebSettings)
    telegram: TelegramSettings = field(default_factory=TelegramSettings)
    zalo: ZaloSettings = field(default_factory=ZaloSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    roles: RoleSettings = field(default_factory=RoleSettings)
    chat: ChatSettings = field(default_factory=ChatSettings)
    provisioning: ProvisioningSettings = field(default_factory=ProvisioningSettings)
    records: RecordsSettings = field(default_factory=RecordsSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    base_dir: str = "."

    @property
    def data_dir(self) -> Path:
        """Absolute data directory (relative paths are taken from the config file's folder)."""
        return (Path(self.base_dir) / self.general.data_dir).resolve()

    def path(self, template: str) -> Path:
        """Expand `{data_dir}` in a configured path."""
        return Path(template.format(data_dir=self.data_dir))

    @property
    def database_url(self) -> str:
        """The database URL: the environment variable named in config wins over the file."""
        url = os.environ.get(self.database.url_env) or self.database.url
        return url.format(data_dir=self.data_dir)

    def secret(self, env_name: str) -> str:
        """Read a secret from the environment variable named in config ("" when unset)."""
        return os.environ.get(env_name, "") if env_name else ""

    @property
    def redis_url(self) -> str:
        """Redis for several replicas (shared Telegram pace, bot conversation state); "" for none."""
        return os.environ.get(self.redis.url_env) or self.redis.url if self.redis.url_env else self.redis.url

    @property
    def web_url(self) -> str:
        """Base address of the web console in links (public_url, else the address it listens on)."""
        return (self.web.public_url or f"http://{self.web.host}:{self.web.port}").rstrip("/")

    def domain_for(self, population: str) -> str:
        """Mail domain for a population ("staff" or "student")."""
        return self.naming.staff_domain if population == "staff" else self.naming.student_domain


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: cần một danh sách", code="config_type")
        return tuple(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: cần true/false", code="config_type")
        return value
    if tp is float:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ConfigError(f"{where}: cần một số", code="config_type")
        return float(value)
    if tp is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ConfigError(f"{where}: cần một số nguyên", code="config_type")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: cần một chuỗi", code="config_type")
        return value
    if isinstance(tp, types.UnionType):
        return value
    return value


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: khoá không hợp lệ {sorted(unknown)}", code="config_unknown")
    values = {}
    for name, value in data.items():
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{name}: cần một bảng", code="config_type")
            values[name] = _build(tp, value, f"{where}.{name}")  # type: ignore[arg-type]
        else:
            values[name] = _coerce(tp, value, f"{where}.{name}")
    return cls(**values)


def load_settings(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Parse config.toml (or defaults when `path` is None) and apply nested `overrides`."""
    data: dict[str, Any] = {}
    base_dir = Path.cwd()
    if path is not None:
        p = Path(path)
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"Không tìm thấy tệp cấu hình {p}", code="config_missing") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"Tệp cấu hình {p} sai cú pháp: {exc}", code="config_syntax") from None
        base_dir = p.resolve().parent
    for section, values in (overrides or {}).items():
        if isinstance(values, dict):
            data.setdefault(section, {}).update(values)
        else:
            data[section] = values
    data.setdefault("base_dir", str(base_dir))
    return _build(Settings, data, "config")  # type: ignore[no-any-return]
