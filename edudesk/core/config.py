"""config.toml -> frozen typed settings (pydantic) that mirror its sections, overridden by the environment
(`EDUDESK_<SECTION>__<KEY>`); the secrets the file names (`*_env` keys) are read once, at load time."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, field_validator

from edudesk.core.configbase import NonNegFloat, NonNegInt, Port, Section, read_config
from edudesk.core.signing.settings import RecordsSettings

Backend = Literal["local", "dovecot", "ldap", "google", "microsoft", "mailcow"]
BackendOrDefault = Literal["", "local", "dovecot", "ldap", "google", "microsoft", "mailcow"]


class GeneralSettings(Section):
    language: Literal["vi", "en"] = "vi"
    data_dir: str = "data"
    timezone: str = "Asia/Ho_Chi_Minh"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_format: Literal["text", "json"] = "text"
    secret_key_env: str = "EDUDESK_SECRET_KEY"
    backup_passphrase_env: str = "EDUDESK_BACKUP_PASSPHRASE"  # seals the secret key in `edudesk backup`


class DatabaseSettings(Section):
    url: str = "sqlite://{data_dir}/edudesk.sqlite3"
    url_env: str = "EDUDESK_DATABASE_URL"


class InstitutionSettings(Section):
    """The school edudesk works for; the defaults are a fictional example school until `edudesk init`."""

    name: str = "Trường Đại học Ví Dụ"
    short_name: str = "ĐH Ví Dụ"
    domains: tuple[str, ...] = ("example.edu.vn", "sv.example.edu.vn")
    office_address: str = "it@example.edu.vn"
    office_unit: str = "Phòng Công nghệ thông tin"  # the office's own unit, named in mails ("Phòng/Trung tâm ...")
    staff_form: str = "BM01"  # the registration form of staff (named in mails and pages)
    student_form: str = "BM02"  # the registration form of students
    list_form: str = "BM-CNTT31"  # the bulk list of new students
    report_form: str = "BM03"  # the summary report


class NamingSettings(Section):
    rule: str = "{given}.{family}{middle}"
    collision: Literal["number_suffix", "student_id_suffix"] = "number_suffix"
    suffix_start: NonNegInt = 2
    staff_domain: str = "example.edu.vn"
    student_domain: str = "sv.example.edu.vn"


class SmtpdSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 2525
    max_message_size: NonNegInt = 25 * 1024 * 1024
    recipients: tuple[str, ...] = ()
    max_backlog: NonNegInt = 20
    backlog_wait_seconds: NonNegFloat = 120.0
    # Peers whose mail edudesk does not verify itself (the school's MX in front of us): SPF of the relay
    # would fail; their own Authentication-Results count when their id is in intake.trusted_authserv_ids.
    trusted_relays: tuple[str, ...] = ("127.0.0.1", "::1")
    # The listener in a process of its own: SMTP sessions and storing mail stop taking the job worker's CPU
    # (bench/README.md, tenth round: 2-3.7 ms less main-process CPU a mail, the whole server's CPU unchanged).
    own_process: bool = True


class ImapSettings(Section):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 993
    ssl: bool = True
    starttls: bool = False
    username: str = ""
    password_env: str = "EDUDESK_IMAP_PASSWORD"
    auth: Literal["password", "oauth2"] = "password"  # oauth2: a token from [mail_oauth] (Microsoft 365, Google)
    mailbox: str = "INBOX"
    processed_mailbox: str = ""
    idle: bool = True
    idle_timeout: NonNegInt = 300
    poll_interval: NonNegFloat = 60.0
    backlog_since: str = "new"  # "new", "all" or a date YYYY-MM-DD
    backoff_initial: NonNegFloat = 1.0
    backoff_max: NonNegFloat = 300.0
    alert_after_failures: NonNegInt = 3

    @field_validator("backlog_since")
    @classmethod
    def _since(cls, value: str) -> str:
        if value not in ("new", "all"):
            try:
                date.fromisoformat(value)
            except ValueError:
                raise ValueError("should be new, all or a date YYYY-MM-DD") from None
        return value


class OutgoingSettings(Section):
    transport: Literal["maildir", "smtp"] = "maildir"
    maildir: str = "{data_dir}/outbox"
    from_address: str = "it@example.edu.vn"
    from_name: str = "Phòng Công nghệ thông tin"
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 25
    smtp_starttls: bool = False
    smtp_username: str = ""
    smtp_password_env: str = "EDUDESK_SMTP_PASSWORD"
    auth: Literal["password", "oauth2"] = "password"  # oauth2: AUTH XOAUTH2 with a token from [mail_oauth]
    auto_reply_limit: NonNegInt = 3
    auto_reply_window_minutes: NonNegInt = 10
    alerts_to: tuple[str, ...] = ()


class MailOAuthSettings(Section):
    """How edudesk gets a token for the office mailbox when [imap] or [outgoing] has auth = "oauth2"."""

    provider: Literal["microsoft", "google"] = "microsoft"
    tenant_id: str = ""  # Microsoft: the directory (tenant) id
    client_id: str = ""  # Microsoft: the app's (client) id
    client_secret_env: str = "EDUDESK_MAIL_CLIENT_SECRET"  # Microsoft: the secret's value
    certificate_env: str = ""  # Microsoft: instead of a secret, private key + certificate (PEM text or a path)
    certificate_thumbprint: str = ""  # Microsoft: SHA-1 thumbprint; "" = taken from the certificate (SHA-256)
    google_credentials_env: str = "EDUDESK_MAIL_GOOGLE_CREDENTIALS"  # Google: service-account JSON (text or path)
    login_url: str = "https://login.microsoftonline.com"
    mailbox: str = ""  # the mailbox the token is for; "" = [imap].username (else [outgoing].smtp_username)
    mechanism: Literal["xoauth2", "oauthbearer"] = "xoauth2"


class IntakeSettings(Section):
    parse_timeout_seconds: NonNegFloat = 20.0
    parser_processes: NonNegInt = 2
    parser_memory_mb: NonNegInt = 1024
    max_attachment_bytes: NonNegInt = 20 * 1024 * 1024
    max_uncompressed_bytes: NonNegInt = 50 * 1024 * 1024
    max_compression_ratio: NonNegInt = 100
    max_rows: NonNegInt = 5000
    personal_senders_for_new_accounts: bool = True
    flag_failed_authentication: bool = True
    flood_limit: NonNegInt = 100  # requests from one outside address per outgoing.auto_reply_window_minutes (0: none)
    # Sender authentication: our own Authentication-Results id ("" = this host's name), the ids of the
    # servers whose Authentication-Results we believe (mx.google.com, ...), and the DNS the listener asks.
    authserv_id: str = ""
    trusted_authserv_ids: tuple[str, ...] = ()
    verify_senders: bool = True  # the SMTP listener checks SPF, DKIM and DMARC of mail from outside itself
    dns_servers: tuple[str, ...] = ()  # () = the system resolver; "127.0.0.1:5353" names a port
    dns_timeout_seconds: NonNegFloat = 5.0
    # Circular 53/2012: official business (staff accounts, unit lists, deletions) from public mail providers
    # is flagged ("flag") or refused at intake with a mail naming the rule ("refuse").
    free_mail_domains: tuple[str, ...] = (
        "gmail.com", "googlemail.com", "yahoo.com", "yahoo.com.vn", "ymail.com", "rocketmail.com",
        "outlook.com", "outlook.com.vn", "hotmail.com", "hotmail.com.vn", "live.com", "msn.com",
        "icloud.com", "me.com", "mac.com", "aol.com", "proton.me", "protonmail.com", "zoho.com",
        "gmx.com", "mail.com", "yandex.com", "mail.ru", "qq.com", "163.com",
    )
    free_mail_official: Literal["flag", "refuse"] = "flag"
    confirm_link_hours: NonNegFloat = 72.0  # a sender confirmation link (to the registry's address) lasts this long


class RetentionSettings(Section):
    raw_mail_days: NonNegFloat = 180.0  # raw mails of closed requests keep only their headers after this many days


class ReportsSettings(Section):
    monthly: bool = False  # on the 1st of each month, the previous month's BM03 (.xlsx, .pdf) goes by mail to `head`
    monthly_hour: int = Field(default=7, ge=0, le=23)  # local hour of the 1st when it is made
    language: Literal["", "vi", "en"] = ""  # the report's language; "" = [general].language


class PortalSettings(Section):
    """Sending issued records to the receiving portal (docs/records-portal.md); secrets named by variable."""

    enabled: bool = False
    url: str = ""  # where the class packages are POSTed (multipart/form-data)
    auth: Literal["bearer", "basic"] = "bearer"
    token_env: str = "EDUDESK_PORTAL_TOKEN"  # bearer: the token's variable
    username: str = ""  # basic: the account
    password_env: str = "EDUDESK_PORTAL_PASSWORD"  # basic: the password's variable
    school_code: str = ""  # the school's code at the portal (mã trường), written into the manifests
    timeout_seconds: NonNegFloat = 120.0
    max_attempts: int = Field(default=6, ge=1)  # sends of one package before its records are marked lỗi
    max_package_mb: NonNegFloat = 50.0  # a class larger than this goes as several packages (0: one package)


class SlaSettings(Section):
    check_hours: NonNegFloat = 24.0
    provision_hours: NonNegFloat = 24.0


class JobSettings(Section):
    concurrency: NonNegInt = 4
    max_attempts: NonNegInt = 8
    backoff_initial_seconds: NonNegFloat = 5.0
    backoff_max_seconds: NonNegFloat = 3600.0
    poll_interval_seconds: NonNegFloat = 1.0
    lease_seconds: NonNegFloat = 60.0


class WebSettings(Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 8080
    public_url: str = ""
    session_hours: NonNegFloat = 12.0
    login_link_minutes: NonNegFloat = 15.0
    metrics_token_env: str = "EDUDESK_METRICS_TOKEN"


class OpsSettings(Section):
    """/healthz, /readyz and /metrics on a port of their own (also served on the console's port)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 9180


class TelegramSettings(Section):
    enabled: bool = False
    token_env: str = "EDUDESK_TELEGRAM_TOKEN"
    api_server: str = ""
    mode: Literal["polling", "webhook"] = "polling"
    webhook_url: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: Port = 8081
    webhook_path: str = "/telegram/webhook"
    webhook_secret_env: str = "EDUDESK_TELEGRAM_WEBHOOK_SECRET"
    office_chat_id: int = 0
    technical_chat_id: int = 0
    head_chat_id: int = 0
    rate_overall_per_second: NonNegFloat = 29.0
    rate_chat_seconds: NonNegFloat = 1.0
    rate_group_per_minute: NonNegFloat = 20.0


class RedisSettings(Section):
    url: str = ""
    url_env: str = "EDUDESK_REDIS_URL"


class RoleSettings(Section):
    office: tuple[str, ...] = ()
    technical: tuple[str, ...] = ()
    head: tuple[str, ...] = ()
    admin: tuple[str, ...] = ()
    teacher: tuple[str, ...] = ()
    leader: tuple[str, ...] = ()


class ChatSettings(Section):
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
    escalate_after_hours: NonNegFloat = 4.0
    overdue_check_seconds: NonNegFloat = 60.0
    page_size: NonNegInt = 10
    link_code_minutes: NonNegFloat = 10.0
    action_link_hours: NonNegFloat = 24.0


class ZaloSettings(Section):
    enabled: bool = False
    api: Literal["bot", "oa"] = "bot"  # "bot": Zalo Bot Platform; "oa": Zalo Official Account API
    mode: Literal["polling", "webhook"] = "polling"  # bot platform (the OA API only has webhooks)
    token_env: str = "EDUDESK_ZALO_BOT_TOKEN"
    api_base: str = "https://bot-api.zaloplatforms.com"
    webhook_url: str = ""
    webhook_host: str = "127.0.0.1"
    webhook_port: Port = 8082
    webhook_path: str = "/zalo/webhook"
    webhook_secret_env: str = "EDUDESK_ZALO_WEBHOOK_SECRET"
    oa_api_base: str = "https://openapi.zalo.me"
    oauth_base: str = "https://oauth.zaloapp.com"
    app_id: str = ""
    app_secret_env: str = "EDUDESK_ZALO_APP_SECRET"
    oa_secret_env: str = "EDUDESK_ZALO_OA_SECRET"
    refresh_token_env: str = "EDUDESK_ZALO_REFRESH_TOKEN"
    refresh_before_minutes: NonNegFloat = 60.0
    messages_per_second: NonNegFloat = 5.0


class PopulationBackends(Section):
    staff: BackendOrDefault = ""  # "" = [provisioning].backend
    student: BackendOrDefault = ""


class LocalBackendSettings(Section):
    passwd_file: str = ""  # optional Dovecot passwd-file kept in step with the local accounts


class DovecotBackendSettings(Section):
    passwd_file: str = "/var/lib/edudesk/dovecot/users"  # outside data_dir (private): Dovecot's group reads it
    scheme: str = "SHA512-CRYPT"  # password scheme written into the passwd-file
    mail_home: str = "/var/vmail/%d/%n"  # home directory template (Dovecot variables)


class LdapBackendSettings(Section):
    url: str = "ldap://127.0.0.1:389"
    flavour: Literal["openldap", "ad"] = "openldap"  # "openldap" (inetOrgPerson) or "ad" (Active Directory)
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
    pool_size: NonNegInt = 4
    timeout_seconds: NonNegFloat = 10.0


class GoogleBackendSettings(Section):
    credentials_env: str = "EDUDESK_GOOGLE_CREDENTIALS"  # service-account JSON (the text, or a file path)
    admin_subject: str = ""     # the super-admin the service account acts for (domain-wide delegation)
    customer: str = "my_customer"
    api_url: str = "https://admin.googleapis.com"
    token_url: str = ""         # "" = token_uri of the service-account file
    staff_org_unit: str = "/Staff"
    student_org_unit: str = "/Students"
    max_retries: NonNegInt = 6
    backoff_initial_seconds: NonNegFloat = 1.0


class MicrosoftBackendSettings(Section):
    tenant_id: str = ""
    client_id: str = ""
    client_secret_env: str = "EDUDESK_GRAPH_CLIENT_SECRET"
    graph_url: str = "https://graph.microsoft.com"
    login_url: str = "https://login.microsoftonline.com"
    usage_location: str = "VN"
    max_retries: NonNegInt = 6
    backoff_initial_seconds: NonNegFloat = 1.0


class MailcowBackendSettings(Section):
    url: str = ""
    api_key_env: str = "EDUDESK_MAILCOW_API_KEY"
    quota_mb: NonNegInt = 1024
    max_retries: NonNegInt = 5
    backoff_initial_seconds: NonNegFloat = 1.0


class ProvisioningSettings(Section):
    backend: Backend = "local"
    populations: PopulationBackends = PopulationBackends()
    password_length: NonNegInt = 12
    force_change: bool = True
    delivery: Literal["link", "mail"] = "link"  # one-time web link, or the password inside the result mail
    link_hours: NonNegFloat = 72.0
    login_url: str = ""
    progress_every: NonNegInt = 25
    concurrency: NonNegInt = 8
    delete_grace_days: NonNegFloat = 30.0
    list_password_env: str = ""
    local: LocalBackendSettings = LocalBackendSettings()
    dovecot: DovecotBackendSettings = DovecotBackendSettings()
    ldap: LdapBackendSettings = LdapBackendSettings()
    google: GoogleBackendSettings = GoogleBackendSettings()
    microsoft: MicrosoftBackendSettings = MicrosoftBackendSettings()
    mailcow: MailcowBackendSettings = MailcowBackendSettings()

    def backend_for(self, population: str) -> str:
        """The backend that holds a population's accounts ("staff" or "student")."""
        chosen = self.populations.staff if population == "staff" else self.populations.student
        return chosen or self.backend


class Settings(Section):
    """All settings; `path` is the config file they came from (None: built-in defaults)."""

    general: GeneralSettings = GeneralSettings()
    database: DatabaseSettings = DatabaseSettings()
    institution: InstitutionSettings = InstitutionSettings()
    naming: NamingSettings = NamingSettings()
    smtpd: SmtpdSettings = SmtpdSettings()
    imap: ImapSettings = ImapSettings()
    outgoing: OutgoingSettings = OutgoingSettings()
    mail_oauth: MailOAuthSettings = MailOAuthSettings()
    intake: IntakeSettings = IntakeSettings()
    sla: SlaSettings = SlaSettings()
    jobs: JobSettings = JobSettings()
    web: WebSettings = WebSettings()
    ops: OpsSettings = OpsSettings()
    telegram: TelegramSettings = TelegramSettings()
    zalo: ZaloSettings = ZaloSettings()
    redis: RedisSettings = RedisSettings()
    roles: RoleSettings = RoleSettings()
    chat: ChatSettings = ChatSettings()
    provisioning: ProvisioningSettings = ProvisioningSettings()
    records: RecordsSettings = RecordsSettings()
    retention: RetentionSettings = RetentionSettings()
    reports: ReportsSettings = ReportsSettings()
    portal: PortalSettings = PortalSettings()
    base_dir: str = "."
    _secrets: dict[str, str] = PrivateAttr(default_factory=dict)  # env name -> value, read once by load_settings

    @property
    def data_dir(self) -> Path:
        """Absolute data directory (relative paths are taken from the config file's folder)."""
        return (Path(self.base_dir) / self.general.data_dir).resolve()

    def path(self, template: str) -> Path:
        """Expand `{data_dir}` in a configured path."""
        return Path(template.format(data_dir=self.data_dir))

    @property
    def database_url(self) -> str:
        """The database URL: the variable named by `[database].url_env` wins over the file."""
        url = self.secret(self.database.url_env) or self.database.url
        return url.format(data_dir=self.data_dir)

    def secret(self, env_name: str) -> str:
        """The secret of the environment variable named in config, as read at load time ("" when unset)."""
        return self._secrets.get(env_name, "") if env_name else ""

    def with_secrets(self, values: Mapping[str, str]) -> Settings:
        """A copy knowing more secrets (the CLI's demo PIN, tests); the values win over those read at load."""
        copy = self.model_copy()
        copy._secrets = {**self._secrets, **values}
        return copy

    @property
    def redis_url(self) -> str:
        """Redis for several replicas (shared Telegram pace, bot conversation state); "" for none."""
        return self.secret(self.redis.url_env) or self.redis.url

    @property
    def web_url(self) -> str:
        """Base address of the web console in links (public_url, else the address it listens on)."""
        return (self.web.public_url or f"http://{self.web.host}:{self.web.port}").rstrip("/")

    def domain_for(self, population: str) -> str:
        """Mail domain for a population ("staff" or "student")."""
        return self.naming.staff_domain if population == "staff" else self.naming.student_domain


def load_settings(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None, *,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Parse config.toml (or defaults when `path` is None) under `EDUDESK_<SECTION>__<KEY>` variables of
    `environ`, then nested `overrides`; read every secret the settings name (`*_env`) from `environ`.

    `environ` is the process environment, handed in by the composition root (None: no environment).
    A wrong value raises `ConfigError` with one line naming the key.
    """
    settings, secrets = read_config(Settings, path, overrides, environ or {})
    return settings.with_secrets(secrets)
