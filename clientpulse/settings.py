"""The one settings object. Read once at the edge (CLI), then passed in; nothing else reads env."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.alerting import AlertRules
from streams.assessing import RiskConfig
from streams.risk import RiskRules
from streams.sla import SlaRules
from streams.tiering import TierRules


class Settings(BaseSettings):
    # Rule settings nest: CLIENTPULSE_RISK__CADENCE_K=4, CLIENTPULSE_SLA__RESPONSE_HOURS__KEY=1,
    # CLIENTPULSE_TIERS__KEY_REVENUE_90D=50000, or a whole group as JSON in CLIENTPULSE_RISK.
    model_config = SettingsConfigDict(env_prefix="CLIENTPULSE_", env_nested_delimiter="__", extra="ignore")

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
    log_level: str = Field("warn", pattern="^(crit|error|warn|info|debug)$")
    tiers: TierRules = Field(default_factory=TierRules, description="Tier thresholds (streams.tiering.TierRules).")
    risk: RiskRules = Field(default_factory=RiskRules, description="Churn signal rules and weights (docs/alerts.md).")
    sla: SlaRules = Field(default_factory=SlaRules, description="Complaint response/resolution hours per tier.")
    alerting: AlertRules = Field(default_factory=AlertRules, description="Raise/resolve thresholds, cool-down.")
    idle_clock_seconds: float = Field(
        5.0, gt=0, le=3600, description="With no events for this long, the event-time clock follows the wall clock."
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

    def env(self) -> dict[str, str]:
        """The settings as CLIENTPULSE_* variables, to hand to a child process."""
        out: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            out[f"CLIENTPULSE_{name.upper()}"] = json.dumps(value) if isinstance(value, dict) else str(value)
        return out
