"""Kafka SASL/SSL, ClickHouse TLS and credentials: configuration, what goes on the wire, and secret hygiene.

What cannot run here: no Kafka with SASL or TLS (tansu, our local broker, has neither) and no ClickHouse
server. So the tests that need one check the configuration we produce, and everything else is real:
the clients are pointed at sockets these tests open — a plain TCP listener, or a TLS listener with a
throw-away CA made by the openssl CLI — and the tests look at the bytes that arrive. That proves TLS is
spoken (or refused) and the credentials are passed, but not that a real broker accepts the SASL exchange.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import shutil
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import Error as ClickHouseError
from kafka.errors import KafkaTimeoutError
from pydantic import SecretStr, ValidationError

from clientpulse.security import (
    aiokafka_config,
    clickhouse_connect_kwargs,
    configuration_problems,
    faust_broker_credentials,
    kafka_python_config,
    kafka_ssl_context,
    redacted_dsn,
    settings_error_line,
)
from clientpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
KAFKA_PASSWORD = "kafka-Pw-7f3a"
CH_PASSWORD = "ch-Pw-91c2"
TLS_RECORD = b"\x16\x03"  # a TLS handshake record: what a client must send first when it speaks TLS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in [k for k in os.environ if k.startswith("CLIENTPULSE_")]:
        monkeypatch.delenv(key)


def settings(**overrides: Any) -> Settings:
    return Settings(clickhouse_dsn=overrides.pop("clickhouse_dsn", "http://clickhouse:8123/clientpulse"), **overrides)


def sasl(protocol: str = "SASL_SSL", **overrides: Any) -> Settings:
    return settings(
        kafka_security_protocol=protocol, kafka_sasl_username="svc", kafka_sasl_password=KAFKA_PASSWORD, **overrides
    )


# ---------------------------------------------------------------- sockets and certificates for the wire tests


class Listener:
    """A TCP listener on loopback that records the first bytes of every connection (TLS if given a context)."""

    def __init__(self, tls: ssl.SSLContext | None = None, reply: bytes = b"") -> None:
        self.tls, self.reply = tls, reply
        self.received: list[bytes] = []
        self.handshake_errors: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(3)
        try:
            if self.tls is not None:
                try:
                    conn = self.tls.wrap_socket(conn, server_side=True)
                except (ssl.SSLError, OSError) as exc:
                    self.handshake_errors.append(str(exc))
                    return
            data = conn.recv(65536)
            if data:
                self.received.append(data)
                if self.reply:
                    conn.sendall(self.reply)
        except OSError:
            pass
        finally:
            conn.close()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        self._sock.close()


@pytest.fixture
def plain() -> Iterator[Listener]:
    listener = Listener()
    yield listener
    listener.close()


class Pki:
    def __init__(self, root: Path) -> None:
        self.ca, self.other_ca = root / "ca.pem", root / "other-ca.pem"
        self.server_cert, self.server_key = root / "server.pem", root / "server.key"
        self.client_cert, self.client_key = root / "client.pem", root / "client.key"

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.server_cert, self.server_key)
        return context


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throw-away CA, a server certificate for 127.0.0.1/localhost and a client certificate (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    root = tmp_path_factory.mktemp("pki")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=root, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for name in ("ca", "other-ca"):
        run("req", "-x509", *ec, "-keyout", f"{name}.key", "-out", f"{name}.pem", "-days", "2", "-subj",
            f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    for name, ext in (
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ):
        (root / f"{name}.ext").write_text(ext + "authorityKeyIdentifier=keyid\nbasicConstraints=CA:FALSE\n")
        run("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.pem", "-days", "2", "-extfile", f"{name}.ext")  # fmt: skip
    return Pki(root)


@pytest.fixture
def tls(pki: Pki) -> Iterator[Listener]:
    listener = Listener(pki.server_context(), reply=b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
    yield listener
    listener.close()


def chain(exc: BaseException) -> str:
    """The messages of an exception and its causes, for asserting what kind of failure it was."""
    parts = []
    seen: BaseException | None = exc
    while seen is not None:
        parts.append(f"{type(seen).__name__}: {seen}")
        seen = seen.__cause__ or seen.__context__
    return " | ".join(parts)


# ---------------------------------------------------------------- settings: defaults and validation


def test_defaults_are_plaintext_loopback_and_verifying() -> None:
    s = Settings()
    assert s.kafka_security_protocol == "PLAINTEXT" and s.kafka_sasl_password is None
    assert s.kafka_ssl_check_hostname and s.clickhouse_verify and not s.clickhouse_secure
    assert s.dashboard_host == "127.0.0.1" and s.worker_web_bind == "127.0.0.1", "dashboard and metrics: loopback"
    assert kafka_python_config(s) == {"security_protocol": "PLAINTEXT"}
    assert faust_broker_credentials(s) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "SASL_SSL needs CLIENTPULSE_KAFKA_SASL_USERNAME and"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_password": KAFKA_PASSWORD}, "needs"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "svc"}, "CLIENTPULSE_KAFKA_SASL_PASSWORD"),
        ({"kafka_sasl_username": "svc", "kafka_sasl_password": KAFKA_PASSWORD}, "PLAINTEXT does not use them"),
        ({"kafka_ssl_cafile": __file__}, "CLIENTPULSE_KAFKA_SSL_CAFILE is set but"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_cafile": "/nope/ca.pem"}, "no such file: /nope/ca.pem"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": __file__}, "KEYFILE needs"),
        ({"clickhouse_dsn": "http://u:dsn-pw@h:8123", "clickhouse_password": CH_PASSWORD}, "set twice"),
        ({"clickhouse_ca_cert": __file__}, "connection is plain HTTP"),
        ({"clickhouse_secure": True, "clickhouse_ca_cert": "/nope.pem"}, "CA_CERT: no such file: /nope.pem"),
        ({"kafka_security_protocol": "TLS"}, "CLIENTPULSE_KAFKA_SECURITY_PROTOCOL: Input should be"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "CLIENTPULSE_KAFKA_SASL_MECHANISM: Input should be"),
    ],
)
def test_bad_security_settings_fail_with_one_line_that_names_the_variable(overrides, message) -> None:
    with pytest.raises(ValidationError) as caught:
        settings(**overrides)
    line = settings_error_line(caught.value)
    assert message in line and "\n" not in line
    for text in (line, str(caught.value), repr(caught.value)):
        assert KAFKA_PASSWORD not in text and CH_PASSWORD not in text and "dsn-pw" not in text


def test_a_validation_error_never_quotes_the_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    # pydantic quotes the whole input of a model-level error by default: the env, passwords included.
    monkeypatch.setenv("CLIENTPULSE_KAFKA_SASL_PASSWORD", KAFKA_PASSWORD)
    monkeypatch.setenv("CLIENTPULSE_CLICKHOUSE_PASSWORD", CH_PASSWORD)
    monkeypatch.setenv("CLIENTPULSE_CLICKHOUSE_DSN", "http://h:8123")
    with pytest.raises(ValidationError) as caught:
        Settings()
    text = str(caught.value) + repr(caught.value) + settings_error_line(caught.value)
    assert "PLAINTEXT does not use them" in text
    assert KAFKA_PASSWORD not in text and CH_PASSWORD not in text


def test_good_settings_from_env_including_blank_means_unset(monkeypatch: pytest.MonkeyPatch, pki: Pki) -> None:
    env = {
        "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",  # case does not matter
        "KAFKA_SASL_MECHANISM": "scram-sha-512",
        "KAFKA_SASL_USERNAME": "svc",
        "KAFKA_SASL_PASSWORD": KAFKA_PASSWORD,
        "KAFKA_SSL_CAFILE": str(pki.ca),
        "KAFKA_SSL_CERTFILE": "",  # compose's ${VAR:-} when .env leaves it out
        "KAFKA_SSL_KEYFILE": "",
        "KAFKA_SSL_CHECK_HOSTNAME": "true",
        "CLICKHOUSE_DSN": "https://clickhouse:8443/clientpulse",
        "CLICKHOUSE_USERNAME": "writer",
        "CLICKHOUSE_PASSWORD": CH_PASSWORD,
        "CLICKHOUSE_CA_CERT": str(pki.ca),
    }
    for key, value in env.items():
        monkeypatch.setenv(f"CLIENTPULSE_{key}", value)
    s = Settings()
    assert (s.kafka_security_protocol, s.kafka_sasl_mechanism) == ("SASL_SSL", "SCRAM-SHA-512")
    assert s.kafka_ssl_certfile is None and s.kafka_ssl_keyfile is None and s.kafka_ssl_cafile == pki.ca
    assert s.kafka_sasl_password == SecretStr(KAFKA_PASSWORD) and s.clickhouse_username == "writer"
    assert configuration_problems(s) == []


def test_repr_str_and_dump_of_settings_hide_secrets() -> None:
    s = sasl(clickhouse_dsn="http://writer:dsn-pw-55@clickhouse:8123/clientpulse")
    s2 = sasl(clickhouse_password=CH_PASSWORD)
    for text in (repr(s), str(s), repr(s2), str(s2), s2.model_dump_json(), str(s2.model_dump())):
        assert KAFKA_PASSWORD not in text and CH_PASSWORD not in text and "dsn-pw-55" not in text
    assert "http://writer:***@clickhouse:8123/clientpulse" in repr(s)
    assert s.clickhouse_dsn.endswith("dsn-pw-55@clickhouse:8123/clientpulse"), "the value itself is untouched"


def test_env_hands_the_real_secrets_to_a_child_process_but_its_repr_masks_them(tmp_path: Path) -> None:
    parent = sasl(
        "SASL_PLAINTEXT",
        data_dir=tmp_path,
        clickhouse_password=CH_PASSWORD,
        clickhouse_username="writer",
        clickhouse_secure=True,
    )
    env = parent.env()
    assert env["CLIENTPULSE_KAFKA_SASL_PASSWORD"] == KAFKA_PASSWORD
    assert env["CLIENTPULSE_KAFKA_SSL_CAFILE"] == "", "unset is written as blank, not as 'None'"
    for text in (repr(env), str(env), f"{env}"):
        assert KAFKA_PASSWORD not in text and CH_PASSWORD not in text
    # A real child process reads them back (the way demo and the tests start the worker).
    child = subprocess.run(
        [sys.executable, "-c", "from clientpulse.settings import Settings; print(Settings().model_dump_json())"],
        env={k: v for k, v in os.environ.items() if not k.startswith("CLIENTPULSE_")} | env,
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    again = Settings.model_validate_json(child.stdout)  # secrets arrive masked in JSON: compare them apart
    assert again.model_dump(exclude={"kafka_sasl_password", "clickhouse_password"}) == parent.model_dump(
        exclude={"kafka_sasl_password", "clickhouse_password"}
    )
    check = "from clientpulse.settings import Settings as S; s = S(); print(s.kafka_sasl_password.get_secret_value())"
    out = subprocess.run([sys.executable, "-c", check], env={**os.environ, **env}, capture_output=True, text=True)
    assert out.stdout.strip() == KAFKA_PASSWORD, out.stderr


# ---------------------------------------------------------------- the produced configurations


def test_kafka_python_config_per_protocol(pki: Pki) -> None:
    assert kafka_python_config(settings(kafka_security_protocol="SSL")) == {
        "security_protocol": "SSL",
        "ssl_check_hostname": True,
    }
    full = kafka_python_config(
        sasl(
            kafka_sasl_mechanism="SCRAM-SHA-256",
            kafka_ssl_cafile=pki.ca,
            kafka_ssl_certfile=pki.client_cert,
            kafka_ssl_keyfile=pki.client_key,
            kafka_ssl_check_hostname=False,
        )
    )
    assert full == {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-256",
        "sasl_plain_username": "svc",
        "sasl_plain_password": KAFKA_PASSWORD,
        "ssl_check_hostname": False,
        "ssl_cafile": str(pki.ca),
        "ssl_certfile": str(pki.client_cert),
        "ssl_keyfile": str(pki.client_key),
    }
    assert set(kafka_python_config(sasl("SASL_PLAINTEXT"))) == {
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    }, "no ssl_* keys without TLS"
    for text in (repr(full), str(full), f"{full!r}"):
        assert KAFKA_PASSWORD not in text and "'sasl_plain_password': '***'" in text


@pytest.mark.parametrize("mechanism", ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_kafka_python_builds_its_sasl_login_from_our_config(mechanism: str) -> None:
    # kafka-python's own SASL mechanism objects, fed our keys: the first token it would send to the broker.
    from kafka.net.sasl import get_sasl_mechanism

    config = kafka_python_config(sasl(kafka_sasl_mechanism=mechanism))
    token = get_sasl_mechanism(config["sasl_mechanism"])(host="broker", **config).auth_bytes()
    if mechanism == "PLAIN":
        assert token == f"svc\0svc\0{KAFKA_PASSWORD}".encode()
    else:
        assert token.startswith(b"n,,n=svc,r="), "SCRAM's client-first message names our user"


def test_faust_credentials_and_aiokafka_config(pki: Pki) -> None:
    import faust
    from faust.types.auth import AuthProtocol

    ssl_only = faust_broker_credentials(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
    assert isinstance(ssl_only, faust.SSLCredentials) and ssl_only.protocol is AuthProtocol.SSL
    assert ssl_only.context.verify_mode is ssl.CERT_REQUIRED and ssl_only.context.check_hostname

    creds = faust_broker_credentials(sasl(kafka_sasl_mechanism="SCRAM-SHA-512", kafka_ssl_cafile=pki.ca))
    assert isinstance(creds, faust.SASLCredentials) and creds.protocol is AuthProtocol.SASL_SSL
    assert (creds.username, creds.password, creds.mechanism.value) == ("svc", KAFKA_PASSWORD, "SCRAM-SHA-512")
    assert KAFKA_PASSWORD not in repr(creds)

    plain_sasl = faust_broker_credentials(sasl("SASL_PLAINTEXT"))
    assert plain_sasl.protocol is AuthProtocol.SASL_PLAINTEXT and plain_sasl.ssl_context is None

    config = aiokafka_config(sasl(kafka_ssl_cafile=pki.ca))
    assert config["security_protocol"] == "SASL_SSL" and config["sasl_plain_password"] == KAFKA_PASSWORD
    assert isinstance(config["ssl_context"], ssl.SSLContext) and KAFKA_PASSWORD not in repr(config)
    assert aiokafka_config(Settings()) == {"security_protocol": "PLAINTEXT"}

    # faust.App keeps them as given: the worker's transport reads conf.broker_credentials.
    app = faust.App("security-test", broker="kafka://127.0.0.1:1", broker_credentials=creds)
    assert app.conf.broker_credentials is creds


def test_mutual_tls_context_loads_the_client_certificate(pki: Pki) -> None:
    context = kafka_ssl_context(
        settings(
            kafka_security_protocol="SSL",
            kafka_ssl_cafile=pki.ca,
            kafka_ssl_certfile=pki.client_cert,
            kafka_ssl_keyfile=pki.client_key,
            kafka_ssl_check_hostname=False,
        )
    )
    assert not context.check_hostname and context.verify_mode is ssl.CERT_REQUIRED
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "ca"),),)]


def test_clickhouse_connect_kwargs() -> None:
    embedded = Settings(clickhouse_password=CH_PASSWORD, clickhouse_secure=True)
    assert clickhouse_connect_kwargs(embedded) == {"dsn": embedded.clickhouse_dsn}, "chdb: no network, no auth"
    assert clickhouse_connect_kwargs(settings()) == {"dsn": "http://clickhouse:8123/clientpulse"}
    in_dsn = settings(clickhouse_dsn="http://writer:dsn-pw@clickhouse:8123/clientpulse")
    assert clickhouse_connect_kwargs(in_dsn) == {"dsn": in_dsn.clickhouse_dsn}, "get_client reads user:pass itself"
    apart = settings(clickhouse_username="writer", clickhouse_password=CH_PASSWORD)
    assert clickhouse_connect_kwargs(apart) == {
        "dsn": "http://clickhouse:8123/clientpulse",
        "username": "writer",
        "password": CH_PASSWORD,
    }
    assert CH_PASSWORD not in repr(clickhouse_connect_kwargs(apart))
    https = clickhouse_connect_kwargs(settings(clickhouse_dsn="https://clickhouse:9440/clientpulse"))
    assert https["secure"] is True and https["verify"] is True, "an https:// DSN implies TLS on any port"
    flagged = clickhouse_connect_kwargs(settings(clickhouse_secure=True, clickhouse_ca_cert="certifi"))
    assert (flagged["secure"], flagged["ca_cert"]) == (True, "certifi")
    assert clickhouse_connect_kwargs(settings(clickhouse_secure=True, clickhouse_verify=False))["verify"] is False


@pytest.mark.parametrize(
    ("dsn", "expected"),
    [
        ("http://writer:s3cret@clickhouse:8123/db", "http://writer:***@clickhouse:8123/db"),
        ("https://writer:p%40ss@ch:8443/db?x=1", "https://writer:***@ch:8443/db?x=1"),
        ("http://writer:p@ss/w@ch:8123/db", "http://writer:***@ch:8123/db"),  # unencoded @ and /: still hidden
        ("http://writer@clickhouse:8123/db", "http://writer@clickhouse:8123/db"),
        ("http://clickhouse:8123/db", "http://clickhouse:8123/db"),
        ("chdb:///abs/data/clickhouse", "chdb:///abs/data/clickhouse"),
    ],
)
def test_redacted_dsn(dsn: str, expected: str) -> None:
    assert redacted_dsn(dsn) == expected


def test_the_log_filter_knows_these_secrets() -> None:
    s = sasl(clickhouse_password=CH_PASSWORD)
    assert {KAFKA_PASSWORD, CH_PASSWORD} <= set(s.secrets())
    assert "dsn-pw" in settings(clickhouse_dsn="http://writer:dsn-pw@clickhouse:8123/db").secrets()


# ---------------------------------------------------------------- on the wire: ClickHouse


def test_clickhouse_tls_to_a_plain_listener_fails_instead_of_sending_plaintext(plain: Listener) -> None:
    import clickhouse_connect

    for s in (
        settings(clickhouse_dsn=f"https://writer@{plain.address}/db", clickhouse_password=CH_PASSWORD),
        settings(clickhouse_dsn=f"http://{plain.address}/db", clickhouse_secure=True, clickhouse_password=CH_PASSWORD),
    ):
        plain.received.clear()
        with pytest.raises(ClickHouseError) as caught:
            clickhouse_connect.get_client(**clickhouse_connect_kwargs(s), connect_timeout=3, query_retries=0)
        assert "SSL" in chain(caught.value), chain(caught.value)
        assert plain.received and all(data.startswith(TLS_RECORD) for data in plain.received)
        wire = b"".join(plain.received)
        assert CH_PASSWORD.encode() not in wire and b"Authorization" not in wire and b"POST" not in wire
        assert CH_PASSWORD not in chain(caught.value)


@pytest.mark.parametrize("where", ["settings", "dsn"])
def test_clickhouse_credentials_travel_inside_verified_tls(tls: Listener, pki: Pki, where: str) -> None:
    import clickhouse_connect

    if where == "settings":
        s = settings(
            clickhouse_dsn=f"https://{tls.address}/clientpulse",
            clickhouse_username="writer",
            clickhouse_password=CH_PASSWORD,
            clickhouse_ca_cert=str(pki.ca),
        )
    else:
        s = settings(
            clickhouse_dsn=f"https://writer:{CH_PASSWORD}@{tls.address}/clientpulse", clickhouse_ca_cert=str(pki.ca)
        )
    with pytest.raises(ClickHouseError) as caught:  # our listener answers 503: the handshake and request are what count
        clickhouse_connect.get_client(**clickhouse_connect_kwargs(s), connect_timeout=3, query_retries=0)
    assert "SSL" not in chain(caught.value) and not tls.handshake_errors
    request = tls.received[0]
    assert request.startswith(b"POST /")
    basic = base64.b64encode(f"writer:{CH_PASSWORD}".encode())
    assert b"Authorization: Basic " + basic in request or b"X-ClickHouse-Key: " + CH_PASSWORD.encode() in request
    assert CH_PASSWORD not in chain(caught.value)


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_clickhouse_verifies_the_server_certificate_unless_told_not_to(tls: Listener) -> None:
    import clickhouse_connect

    dsn = f"https://{tls.address}/clientpulse"
    with pytest.raises(ClickHouseError) as caught:  # our CA is not in the system's trust store
        clickhouse_connect.get_client(**clickhouse_connect_kwargs(settings(clickhouse_dsn=dsn)), connect_timeout=3)
    assert "CERTIFICATE_VERIFY_FAILED" in chain(caught.value)
    assert tls.received == [], "no request was sent to an unverified server"

    unverified = settings(clickhouse_dsn=dsn, clickhouse_verify=False)
    with pytest.raises(ClickHouseError):  # the 503
        clickhouse_connect.get_client(**clickhouse_connect_kwargs(unverified), connect_timeout=3, query_retries=0)
    assert tls.received and tls.received[0].startswith(b"POST /")


# ---------------------------------------------------------------- on the wire: Kafka (kafka-python, faust/aiokafka)

QUICK = {"bootstrap_timeout_ms": 1500, "request_timeout_ms": 1000, "reconnect_backoff_ms": 100}


def kafka_python_clients() -> list[Any]:
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer

    return [KafkaProducer, KafkaConsumer, KafkaAdminClient]


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_kafka_python_tls_to_a_plain_listener_fails_instead_of_sending_plaintext(
    plain: Listener, protocol: str
) -> None:
    config = kafka_python_config(
        sasl(protocol) if protocol.startswith("SASL") else settings(kafka_security_protocol=protocol)
    )
    for client in kafka_python_clients():
        plain.received.clear()
        # A timeout, not KafkaConfigurationError: each client accepts our keys, then finds no TLS peer.
        with pytest.raises(KafkaTimeoutError):
            client(bootstrap_servers=plain.address, **config, **QUICK)
        assert plain.received and all(data.startswith(TLS_RECORD) for data in plain.received), client.__name__
        assert KAFKA_PASSWORD.encode() not in b"".join(plain.received)


def test_kafka_python_speaks_kafka_inside_tls_verified_with_our_ca(tls: Listener, pki: Pki) -> None:
    from kafka import KafkaAdminClient

    config = kafka_python_config(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
    with pytest.raises(KafkaTimeoutError):  # our listener is no broker
        KafkaAdminClient(bootstrap_servers=tls.address, **config, **QUICK)
    assert not tls.handshake_errors, "check_hostname passed: the certificate names 127.0.0.1"
    request = tls.received[0]
    assert int.from_bytes(request[4:6], "big") == 18, "decrypted: a Kafka ApiVersions request"

    wrong_ca = kafka_python_config(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.other_ca))
    tls.received.clear()
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_servers=tls.address, **wrong_ca, **QUICK)
    assert tls.received == [] and tls.handshake_errors, "a server our CA did not sign gets nothing"


def test_faust_worker_transport_uses_the_credentials(plain: Listener, tls: Listener, pki: Pki) -> None:
    """faust's own producer (which also creates the topics) built from broker_credentials, against our sockets."""
    import faust
    from aiokafka import AIOKafkaConsumer

    async def start(client: Any) -> None:
        try:
            await asyncio.wait_for(client.start(), 10)
        except Exception:
            pass  # no broker behind either socket
        finally:
            await client.stop()

    s = sasl(kafka_ssl_cafile=pki.ca)
    app = faust.App("security-test", broker=f"kafka://{plain.address}", broker_credentials=faust_broker_credentials(s))

    async def via_faust() -> None:
        producer = app.producer._new_producer()
        assert producer.client._security_protocol == "SASL_SSL" and producer.client._sasl_plain_username == "svc"
        await start(producer)

    asyncio.run(via_faust())
    assert plain.received and all(data.startswith(TLS_RECORD) for data in plain.received)

    # The extra consumer the worker opens itself (streams/tansu_compat.py) with aiokafka_config().
    async def own_consumer() -> None:
        config = aiokafka_config(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=pki.ca))
        await start(AIOKafkaConsumer(bootstrap_servers=tls.address, request_timeout_ms=2000, **config))

    asyncio.run(own_consumer())
    assert not tls.handshake_errors and int.from_bytes(tls.received[0][4:6], "big") == 18


def test_deploy_dev_certificates_work_with_our_clients(tmp_path: Path) -> None:
    """deploy/make-dev-certs.sh, run for real: its files serve TLS that our configs accept for "localhost"."""
    import clickhouse_connect
    from kafka import KafkaAdminClient

    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed by deploy/make-dev-certs.sh")
    out = tmp_path / "secrets"
    subprocess.run(["bash", str(ROOT / "deploy" / "make-dev-certs.sh"), str(out)], check=True, capture_output=True)
    keystore = subprocess.run(
        ["openssl", "pkcs12", "-in", str(out / "kafka.keystore.p12"), "-nokeys",
         "-passin", f"file:{out / 'kafka_keystore_creds'}"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "CN = kafka" in keystore or "CN=kafka" in keystore, "the broker keystore opens with its password file"

    def server(name: str) -> Listener:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(out / f"{name}.crt", out / f"{name}.key")
        return Listener(context, reply=b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")

    ch = server("clickhouse")
    s = settings(clickhouse_dsn=f"https://localhost:{ch.port}/clientpulse", clickhouse_ca_cert=str(out / "ca.pem"))
    with pytest.raises(ClickHouseError):  # the 503
        clickhouse_connect.get_client(**clickhouse_connect_kwargs(s), connect_timeout=3, query_retries=0)
    assert not ch.handshake_errors and ch.received[0].startswith(b"POST /")
    ch.close()

    kafka = server("kafka")
    config = kafka_python_config(settings(kafka_security_protocol="SSL", kafka_ssl_cafile=out / "ca.pem"))
    with pytest.raises(KafkaTimeoutError):
        KafkaAdminClient(bootstrap_servers=f"localhost:{kafka.port}", **config, **QUICK)
    assert not kafka.handshake_errors and int.from_bytes(kafka.received[0][4:6], "big") == 18
    kafka.close()


# ---------------------------------------------------------------- secrets in logs and CLI error lines


def test_kafka_clients_debug_log_their_config_and_the_filter_redacts_it(plain: Listener) -> None:
    from kafka import KafkaAdminClient

    from clientpulse.logs import handler

    s = sasl("SASL_PLAINTEXT", clickhouse_password=CH_PASSWORD)
    redacted, unfiltered = io.StringIO(), io.StringIO()
    control = logging.StreamHandler(unfiltered)
    root = logging.getLogger()
    old_level = root.level
    # The control first: the redacting filter rewrites the record itself, for every later handler too.
    handlers = [control, handler("json", s.secrets(), redacted)]
    root.setLevel(logging.DEBUG)
    for h in handlers:
        root.addHandler(h)
    try:
        with pytest.raises(KafkaTimeoutError):
            KafkaAdminClient(bootstrap_servers=plain.address, **kafka_python_config(s), **QUICK)
        logging.getLogger("clientpulse.test").error("clickhouse said: bad password %s", CH_PASSWORD)
    finally:
        for h in handlers:
            root.removeHandler(h)
        root.setLevel(old_level)
    # kafka-python writes the whole config, password included, at DEBUG: the control handler shows it.
    assert KAFKA_PASSWORD in unfiltered.getvalue() and "Starting KafkaAdminClient" in unfiltered.getvalue()
    assert "Starting KafkaAdminClient" in redacted.getvalue()
    assert KAFKA_PASSWORD not in redacted.getvalue() and CH_PASSWORD not in redacted.getvalue()


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CLIENTPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "clientpulse.cli", *args], env=base | env, capture_output=True, text=True, timeout=60
    )


def test_cli_error_lines_never_show_secrets(plain: Listener, tmp_path: Path) -> None:
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    runs = {
        "bad settings": cli(
            "sql",
            "SELECT 1",
            env={"CLIENTPULSE_KAFKA_SASL_PASSWORD": KAFKA_PASSWORD, "CLIENTPULSE_DATA_DIR": str(tmp_path)},
        ),
        "unreachable server": cli(
            "sql", "SELECT 1", env={"CLIENTPULSE_CLICKHOUSE_DSN": f"http://writer:{CH_PASSWORD}@127.0.0.1:{port}/db"}
        ),
        "TLS to a plain port": cli(
            "sql", "SELECT 1", env={"CLIENTPULSE_CLICKHOUSE_DSN": f"https://writer:{CH_PASSWORD}@{plain.address}/db"}
        ),
    }
    for name, run in runs.items():
        assert run.returncode != 0, name
        # The last line is the CLI's; clickhouse-connect may log a line of its own before it.
        assert run.stderr.strip().splitlines()[-1].startswith("clientpulse: error:"), (name, run.stderr)
        assert KAFKA_PASSWORD not in run.stderr + run.stdout and CH_PASSWORD not in run.stderr + run.stdout, name


def test_cli_speaks_tls_for_an_https_dsn(plain: Listener) -> None:
    run = cli("sql", "SELECT 1", env={"CLIENTPULSE_CLICKHOUSE_DSN": f"https://writer:{CH_PASSWORD}@{plain.address}/db"})
    assert run.returncode != 0 and plain.received
    assert all(data.startswith(TLS_RECORD) for data in plain.received), plain.received[0][:200]
