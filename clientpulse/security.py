"""Kafka SASL/SSL and ClickHouse TLS: client configurations built from Settings, and secret hygiene.

Pure functions, settings in and config out; nothing here connects. The adapters pass the results on:

- kafka-python (publisher, topic admin, alert consumer, progress probe): `kafka_python_config()`;
- the faust worker: `faust_broker_credentials()` as `broker_credentials=` (faust's aiokafka transport
  applies it to its consumer, its producer and the topic creation that rides on them), and
  `aiokafka_config()` for the one AIOKafkaConsumer we open ourselves (streams/tansu_compat.py);
- clickhouse-connect: `clickhouse_connect_kwargs()`, i.e. `get_client(**kwargs)`.

faust has no URL scheme for TLS: the broker stays `kafka://host:port` and the protocol comes from the
credentials. Secrets leave their `SecretStr` only inside these dicts, whose repr masks them; the log
filter (clientpulse.logs) redacts `Settings.secrets()`, which includes the SecretStr settings defined here.
"""

from __future__ import annotations

import re
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

if TYPE_CHECKING:
    from faust.types.auth import CredentialsT
    from pydantic import ValidationError

    from clientpulse.settings import Settings

SASL_PROTOCOLS = frozenset({"SASL_PLAINTEXT", "SASL_SSL"})
TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
MASK = "***"
SECRET_KEYS = frozenset({"password", "sasl_plain_password"})

# scheme://user:SECRET@ — greedy up to the last "@", so an unencoded "@" in a password is still covered
# (over-redacting a query string that holds an "@" is the safe failure).
_DSN_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@?#\s]*:)[^\s]*@")


class ClientConfig(dict[str, Any]):
    """Keyword arguments for a client. Its repr masks the secret ones: logging a config cannot leak them."""

    def __repr__(self) -> str:
        return repr({k: (MASK if k in SECRET_KEYS and v else v) for k, v in self.items()})


class SecretEnv(dict[str, str]):
    """CLIENTPULSE_* variables for a child process; its repr masks passwords and the password in a DSN."""

    def __repr__(self) -> str:
        return repr({k: (MASK if "PASSWORD" in k and v else redacted_dsn(v)) for k, v in self.items()})


# ------------------------------------------------------------------ Kafka


def kafka_python_config(settings: Settings) -> ClientConfig:
    """Security keyword arguments for KafkaProducer / KafkaConsumer / KafkaAdminClient."""
    protocol = settings.kafka_security_protocol
    config = ClientConfig(security_protocol=protocol)
    if protocol in SASL_PROTOCOLS:
        assert settings.kafka_sasl_password is not None  # Settings refuses SASL without it
        config.update(
            sasl_mechanism=settings.kafka_sasl_mechanism,
            sasl_plain_username=settings.kafka_sasl_username,
            sasl_plain_password=settings.kafka_sasl_password.get_secret_value(),
        )
    if protocol in TLS_PROTOCOLS:
        config["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
        for key in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, f"kafka_{key}")
            if path is not None:
                config[key] = str(path)
    return config


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The TLS context aiokafka needs (kafka-python builds the same one from the file settings)."""
    cafile = settings.kafka_ssl_cafile
    # No CA file: the system's trust store, as kafka-python does. Verification is always on.
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(cafile) if cafile else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.check_hostname = settings.kafka_ssl_check_hostname
    if settings.kafka_ssl_certfile is not None:  # mutual TLS: the client certificate
        keyfile = settings.kafka_ssl_keyfile
        context.load_cert_chain(str(settings.kafka_ssl_certfile), str(keyfile) if keyfile else None)
    return context


def faust_broker_credentials(settings: Settings) -> CredentialsT | None:
    """faust's `broker_credentials`: SASLCredentials (with a TLS context for SASL_SSL), SSLCredentials, or None."""
    import faust

    protocol = settings.kafka_security_protocol
    context = kafka_ssl_context(settings) if protocol in TLS_PROTOCOLS else None
    if protocol in SASL_PROTOCOLS:
        assert settings.kafka_sasl_password is not None
        # SASLCredentials picks SASL_SSL itself when it gets a context; its repr shows only the username.
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password.get_secret_value(),
            ssl_context=context,
            mechanism=settings.kafka_sasl_mechanism,
        )
    return faust.SSLCredentials(context) if context is not None else None


def aiokafka_config(settings: Settings) -> ClientConfig:
    """Security keyword arguments for a plain AIOKafkaConsumer, by faust's own translation of the credentials."""
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    return ClientConfig(credentials_to_aiokafka_auth(faust_broker_credentials(settings)))


# ------------------------------------------------------------------ ClickHouse


def clickhouse_tls(settings: Settings) -> bool:
    return settings.clickhouse_secure or urlsplit(settings.clickhouse_dsn).scheme == "https"


def clickhouse_connect_kwargs(settings: Settings) -> ClientConfig:
    """`clickhouse_connect.get_client(**this)`: the DSN plus credentials and TLS options.

    User and password may be in the DSN (http://user:pass@host:8123/db) or in their own settings; the
    settings win for the user name, and Settings refuses a password given in both places.
    """
    kwargs = ClientConfig(dsn=settings.clickhouse_dsn)
    if settings.embedded_clickhouse:
        return kwargs  # in-process chdb: no network, so no credentials or TLS (chdb warns about such arguments)
    if settings.clickhouse_username:
        kwargs["username"] = settings.clickhouse_username
    if settings.clickhouse_password is not None:
        kwargs["password"] = settings.clickhouse_password.get_secret_value()
    if clickhouse_tls(settings):
        # Always explicit: clickhouse-connect 1.12 takes TLS from `secure` or port 443/8443 and ignores the
        # DSN scheme, so https://host:8123 alone would speak plain HTTP.
        kwargs["secure"] = True
        kwargs["verify"] = settings.clickhouse_verify
        if settings.clickhouse_ca_cert:
            kwargs["ca_cert"] = settings.clickhouse_ca_cert
    return kwargs


def dsn_password(dsn: str) -> str | None:
    try:
        password = urlsplit(dsn).password
    except ValueError:  # e.g. a malformed port: no password we can find
        return None
    return unquote(password) if password else None


def redacted_dsn(dsn: str) -> str:
    """The DSN with its password replaced by ***, for messages and logs."""
    return _DSN_PASSWORD.sub(rf"\g<head>{MASK}@", dsn, count=1)


# ------------------------------------------------------------------ checks and secret hygiene


def configuration_problems(settings: Settings) -> list[str]:
    """One line per inconsistent or unusable security setting (Settings raises them at load time)."""
    problems: list[str] = []
    protocol = settings.kafka_security_protocol
    sasl_given = settings.kafka_sasl_username is not None or settings.kafka_sasl_password is not None
    if protocol in SASL_PROTOCOLS and not (settings.kafka_sasl_username and settings.kafka_sasl_password):
        problems.append(
            f"CLIENTPULSE_KAFKA_SECURITY_PROTOCOL={protocol} needs CLIENTPULSE_KAFKA_SASL_USERNAME "
            "and CLIENTPULSE_KAFKA_SASL_PASSWORD"
        )
    elif protocol not in SASL_PROTOCOLS and sasl_given:
        # Refused rather than ignored: credentials that are silently not sent suggest a security that isn't there.
        problems.append(
            f"CLIENTPULSE_KAFKA_SASL_USERNAME/PASSWORD are set but CLIENTPULSE_KAFKA_SECURITY_PROTOCOL={protocol} "
            "does not use them (SASL_SSL or SASL_PLAINTEXT does)"
        )
    files = {
        "CAFILE": settings.kafka_ssl_cafile,
        "CERTFILE": settings.kafka_ssl_certfile,
        "KEYFILE": settings.kafka_ssl_keyfile,
    }
    given = [name for name, path in files.items() if path is not None]
    if given and protocol not in TLS_PROTOCOLS:
        problems.append(
            f"CLIENTPULSE_KAFKA_SSL_{given[0]} is set but CLIENTPULSE_KAFKA_SECURITY_PROTOCOL={protocol} "
            "does not use TLS (SSL or SASL_SSL does)"
        )
    problems += [f"CLIENTPULSE_KAFKA_SSL_{n}: no such file: {p}" for n, p in files.items() if p and not p.is_file()]
    if settings.kafka_ssl_keyfile is not None and settings.kafka_ssl_certfile is None:
        problems.append("CLIENTPULSE_KAFKA_SSL_KEYFILE needs CLIENTPULSE_KAFKA_SSL_CERTFILE (the client certificate)")

    if not settings.embedded_clickhouse:
        if settings.clickhouse_password is not None and dsn_password(settings.clickhouse_dsn) is not None:
            problems.append(
                "the ClickHouse password is set twice (in CLIENTPULSE_CLICKHOUSE_DSN and "
                "CLIENTPULSE_CLICKHOUSE_PASSWORD); keep one"
            )
        ca_cert = settings.clickhouse_ca_cert
        if ca_cert and not clickhouse_tls(settings):
            problems.append(
                "CLIENTPULSE_CLICKHOUSE_CA_CERT is set but the connection is plain HTTP "
                "(set CLIENTPULSE_CLICKHOUSE_SECURE=true or use an https:// DSN)"
            )
        # "certifi" is clickhouse-connect's name for the certifi package's CA bundle.
        if ca_cert and ca_cert != "certifi" and not Path(ca_cert).is_file():
            problems.append(f"CLIENTPULSE_CLICKHOUSE_CA_CERT: no such file: {ca_cert}")
    return problems


def settings_error_line(exc: ValidationError) -> str:
    """A Settings ValidationError as one line naming the variables, never their values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        message = str(error["msg"]).removeprefix("Value error, ").replace("\n", " ")
        loc = "__".join(str(p) for p in error["loc"])
        parts.append(f"CLIENTPULSE_{loc.upper()}: {message}" if loc else message)
    return "invalid settings: " + "; ".join(parts)
