"""The one settings object. Read once at the edge (CLI), then passed in; nothing else reads env."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from clientpulse.security import SecretEnv, configuration_problems, redacted_dsn
from streams.alerting import AlertRules
from streams.assessing import RiskConfig
from streams.risk import RiskRules
from streams.sla import SlaRules
from streams.tiering import TierRules


class Settings(BaseSettings):
    # Rule settings nest: CLIENTPULSE_RISK__CADENCE_K=4, CLIENTPULSE_SLA__RESPONSE_HOURS__KEY=1,
    # CLIENTPULSE_TIERS__KEY_REVENUE_90D=50000, or a whole group as JSON in CLIENTPULSE_RISK.
    # hide_input_in_errors: a ValidationError would otherwise quote every input, passwords included.
    model_config = SettingsConfigDict(
        env_prefix="CLIENTPULSE_", env_nested_delimiter="__", extra="ignore", hide_input_in_errors=True
    )

    data_dir: Path = Field(Path("./data"), description="Where embedded state lives (chdb, faust tables, broker logs).")
    kafka_bootstrap: str = Field("127.0.0.1:9092", description="Kafka bootstrap servers, host:port[,host:port].")
    clickhouse_dsn: str = Field(
        "",
        description="clickhouse-connect DSN; chdb://<path> (embedded) or http(s)://user:pass@host:8123/db. "
        "Empty means chdb://<data_dir>/clickhouse.",
    )
    clickhouse_database: str = Field("clientpulse", description="ClickHouse database holding our tables.")
    partitions: int = Field(4, ge=1, le=1024, description="Partition count of every inbound topic.")
    replication_factor: int = Field(1, ge=1, le=5, description="Replication factor for created topics.")
    app_id: str = Field("clientpulse", description="faust app id = Kafka consumer group of the worker.")
    sink_batch_size: int = Field(5000, ge=1, le=1_000_000, description="Max events per ClickHouse insert.")
    sink_batch_seconds: float = Field(0.5, gt=0, le=60, description="Max wait before a partial batch is written.")
    max_message_bytes: int = Field(1024 * 1024, ge=1024, description="Larger records are dead-lettered.")
    table_store: str = Field("memory://", pattern="^(memory|rocksdict|rocksdb)://", description="faust table store.")
    worker_web_port: int = Field(6066, ge=0, le=65535, description="faust web port (0 disables the web server).")
    dashboard_host: str = Field(
        "127.0.0.1", description="Where `clientpulse dashboard` / `demo --serve` listen; loopback unless told."
    )
    dashboard_port: int = Field(8050, ge=0, le=65535, description="Dashboard port (0 = any free port).")
    log_level: str = Field("warn", pattern="^(crit|error|warn|info|debug)$")
    tiers: TierRules = Field(default_factory=TierRules, description="Tier thresholds (streams.tiering.TierRules).")
    risk: RiskRules = Field(default_factory=RiskRules, description="Churn signal rules and weights (docs/alerts.md).")
    sla: SlaRules = Field(default_factory=SlaRules, description="Complaint response/resolution hours per tier.")
    alerting: AlertRules = Field(default_factory=AlertRules, description="Raise/resolve thresholds, cool-down.")
    idle_clock_seconds: float = Field(
        5.0, gt=0, le=3600, description="With no events for this long, the event-time clock follows the wall clock."
    )
    # Hostile input and contact PII (docs/contract.md, "Rejections" and "Contact data").
    max_future_skew_hours: float = Field(
        24.0,
        ge=0,
        le=24 * 366,
        description="Events whose occurred_at is further ahead of the wall clock at intake are dead-lettered "
        "(from_the_future), so that a mis-dated event cannot push its client's event time ahead.",
    )
    store_contact_pii: bool = Field(
        False,
        description="Store contact phone numbers and e-mails unmasked in ClickHouse (raw_json, contacts_json, "
        "dead_letters). Off: they are masked (138****5678, z***@example.com).",
    )

    # operability (issue 6): where the worker's web server (metrics, health, dashboard) listens, logs
    worker_web_bind: str = Field(
        "127.0.0.1", description="Address of the worker's web server (/metrics, /health/*, /dashboard/)."
    )
    log_format: str = Field("text", pattern="^(text|json)$", description="Log lines as text or one JSON object.")
    fault_clickhouse_down_file: Path | None = Field(
        None, description="Drills/tests only: while this file exists, every ClickHouse write fails."
    )

    @model_validator(mode="after")
    def _default_dsn(self) -> Settings:
        if not self.clickhouse_dsn:
            self.clickhouse_dsn = f"chdb://{(self.data_dir / 'clickhouse').resolve()}"
        return self

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_dsn.startswith("chdb://")

    @property
    def risk_config(self) -> RiskConfig:
        return RiskConfig(risk=self.risk, sla=self.sla, alerts=self.alerting)

    def secrets(self) -> list[str]:
        """Values that must never be logged: every SecretStr setting and a DSN's password."""
        out = [v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)]
        dsn = urlsplit(self.clickhouse_dsn)
        if dsn.password:
            out.append(dsn.password)
        return [s for s in out if s]

    def env(self) -> dict[str, str]:
        """The settings as CLIENTPULSE_* variables, to hand to a child process.

        Secrets go in as their real values (the child must log in too), but the returned dict's repr
        masks them. An unset optional setting becomes "" (read back as unset), so that it also overrides
        a variable the child would otherwise inherit.
        """
        out = SecretEnv()
        for name, value in self.model_dump(mode="json").items():
            field = getattr(self, name)
            if isinstance(field, SecretStr):  # model_dump(mode="json") would write "**********"
                value = field.get_secret_value()
            text = "" if value is None else json.dumps(value) if isinstance(value, dict) else str(value)
            out[f"CLIENTPULSE_{name.upper()}"] = text
        return out

    # ------------------------------------------------------------------ security (docs/security.md)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="How every Kafka client connects: TLS (SSL), SASL login, both (SASL_SSL), neither."
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "PLAIN", description="SASL mechanism, with a SASL_* protocol."
    )
    kafka_sasl_username: str | None = Field(None, description="SASL user, with a SASL_* protocol.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password; never printed or logged.")
    kafka_ssl_cafile: Path | None = Field(
        None, description="CA bundle (PEM) for the brokers' certificates; default: system CAs."
    )
    kafka_ssl_certfile: Path | None = Field(None, description="Client certificate (PEM), for mutual TLS.")
    kafka_ssl_keyfile: Path | None = Field(None, description="Key of the client certificate, if not in the certfile.")
    kafka_ssl_check_hostname: bool = Field(True, description="Require the broker certificate to name the host.")
    clickhouse_username: str | None = Field(None, description="ClickHouse user (or user@ in the DSN).")
    clickhouse_password: SecretStr | None = Field(None, description="ClickHouse password (or in the DSN, not both).")
    clickhouse_secure: bool = Field(
        False, description="TLS to ClickHouse (https, usually port 8443); an https:// DSN implies it."
    )
    clickhouse_ca_cert: str | None = Field(
        None, description="CA (PEM) for ClickHouse's certificate, or 'certifi'; default: system CAs."
    )
    clickhouse_verify: bool = Field(
        True, description="Verify ClickHouse's certificate. Off only against a test server."
    )

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # "" is how compose (${VAR:-}) and env() say "not set" for a setting whose default is None: drop it,
        # so the default applies (as a Path, "" would otherwise mean the current directory).
        if not isinstance(data, dict):
            return data
        fields = cls.model_fields
        return {k: v for k, v in data.items() if not (v == "" and k in fields and fields[k].default is None)}

    @model_validator(mode="after")
    def _check_security(self) -> Settings:
        problems = configuration_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # SecretStr fields mask themselves; the DSN may carry user:password.
        for name, value in super().__repr_args__():
            yield name, redacted_dsn(value) if name == "clickhouse_dsn" else value
