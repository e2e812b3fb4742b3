"""Structural checks of docker-compose.yml and the Dockerfile.

These machines have no Docker engine, so `docker compose config` cannot run; instead the file is parsed
with PyYAML and checked against what the code expects: the CLI commands it runs exist in our click
group, every CLIENTPULSE_* variable is a field of `Settings` and its value validates, the DSN and
bootstrap address point at the services defined here, and the stateful services keep their data
in named volumes.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

import click
import pytest
import yaml

from clientpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

REQUIRED_SERVICES = {"kafka", "clickhouse", "init", "worker", "generator"}
APP_SERVICES = ("init", "worker", "alerts", "generator")  # the services running our image
PREFIX = "CLIENTPULSE_"

# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}, $VAR
_INTERPOLATION = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)
_SHELLS = {"sh", "bash", "ash", "dash"}
_SHELL_OPERATORS = re.compile(r"&&|\|\||[;|\n]")


class Unresolvable(Exception):
    """A compose value needs a variable that has no default (its value is only known at `up` time)."""


def interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose-style interpolation against `env` (default: nothing set, so defaults apply)."""
    env = env or {}
    escaped = value.replace("$$", "\0")

    def substitute(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("bare")
        op, arg = m.group("op"), m.group("arg") or ""
        current = env.get(name)
        is_set = current is not None and (current != "" or not (op or "").startswith(":"))
        if op in (":-", "-"):
            return current if is_set else arg
        if op in (":+", "+"):
            return arg if is_set else ""
        if current is None or (op == ":?" and current == ""):
            raise Unresolvable(name)
        return current

    return _INTERPOLATION.sub(substitute, escaped).replace("\0", "$")


def variables_in(value: str) -> set[str]:
    return {m.group("braced") or m.group("bare") for m in _INTERPOLATION.finditer(value.replace("$$", ""))}


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    """A service's `environment`, list or mapping form, as a dict of strings (None = passed through)."""
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        out: dict[str, str | None] = {}
        for item in raw:
            name, sep, value = str(item).partition("=")
            out[name] = value if sep else None
        return out
    return {str(k): (None if v is None else str(v)) for k, v in raw.items()}


def resolved(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return interpolate(value)
    except Unresolvable:
        return None


def clientpulse_invocations(command: str | list[str] | None) -> list[list[str]]:
    """The argument lists of every `clientpulse ...` call in a compose `command` (shell scripts included)."""
    if not command:
        return []
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    if len(argv) >= 3 and PurePosixPath(argv[0]).name in _SHELLS and argv[1] == "-c":
        segments = [shlex.split(part) for part in _SHELL_OPERATORS.split(argv[2])]
    else:
        segments = [argv]
    calls = []
    for seg in segments:
        while seg and seg[0] in ("exec", "time"):
            seg = seg[1:]
        if seg and PurePosixPath(seg[0]).name == "clientpulse":
            calls.append(seg[1:])
    return calls


def named_volume_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target path -> named volume, for the service's named-volume mounts (bind mounts left out)."""
    mounts: dict[str, str] = {}
    for entry in service.get("volumes") or []:
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) < 2:
                continue  # anonymous volume
            source, target = parts[0], parts[1]
        else:
            if entry.get("type", "volume") != "volume" or not entry.get("source"):
                continue
            source, target = entry["source"], entry["target"]
        if source.startswith((".", "/", "~", "$")):
            continue  # bind mount
        mounts[target.rstrip("/") or "/"] = source
    return mounts


def host_ports(service: dict[str, Any]) -> list[str]:
    """Published host ports (an entry with only a container port publishes none fixed)."""
    out = []
    for entry in service.get("ports") or []:
        if isinstance(entry, dict):
            if entry.get("published"):
                out.append(str(entry["published"]))
            continue
        parts = str(entry).split(":")
        if len(parts) >= 2:
            out.append(parts[-2])
    return out


def listeners(value: str) -> dict[str, tuple[str, int]]:
    """'NAME://host:port,...' -> {NAME: (host, port)}."""
    out = {}
    for item in value.split(","):
        name, _, address = item.strip().partition("://")
        host, _, port = address.rpartition(":")
        out[name] = (host, int(port))
    return out


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    assert COMPOSE_FILE.is_file(), f"{COMPOSE_FILE} is missing"
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml must be a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    assert isinstance(compose.get("services"), dict), "no services"
    return compose["services"]


@pytest.fixture
def cli() -> click.Group:
    # The CLI is the contract for the commands compose runs: no skip when it is missing.
    from clientpulse.cli import cli as group

    assert isinstance(group, click.Group)
    return group


# ---------------------------------------------------------------- services


def test_required_services_exist(services):
    assert set(services) >= REQUIRED_SERVICES, f"missing services: {REQUIRED_SERVICES - set(services)}"


def test_kafka_runs_kraft_without_zookeeper(services):
    assert not [name for name, svc in services.items() if "zookeeper" in (name + str(svc.get("image", ""))).lower()]
    kafka = services["kafka"]
    image, _, tag = str(kafka["image"]).partition(":")
    assert image == "apache/kafka"
    assert re.match(r"3\.[89](\.\d+)?$", tag), f"pin apache/kafka to a 3.8/3.9 tag, not {tag!r}"
    env = environment(kafka)
    assert "KAFKA_ZOOKEEPER_CONNECT" not in env
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    node_id = env["KAFKA_NODE_ID"]
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"].startswith(f"{node_id}@kafka:")
    assert resolved(env.get("CLUSTER_ID")), "KRaft storage needs a CLUSTER_ID"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"].lower() == "false", (
        "topics are created by `clientpulse topics create`"
    )


def test_kafka_listeners(services):
    env = environment(services["kafka"])
    listen = listeners(env["KAFKA_LISTENERS"])
    advertised = listeners(env["KAFKA_ADVERTISED_LISTENERS"])
    protocols = dict(item.split(":") for item in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].split(","))
    controller = env["KAFKA_CONTROLLER_LISTENER_NAMES"]

    assert set(listen) <= set(protocols), "every listener needs a security protocol"
    assert controller in listen and controller not in advertised
    voter_port = int(env["KAFKA_CONTROLLER_QUORUM_VOTERS"].rpartition(":")[2])
    assert listen[controller][1] == voter_port
    assert advertised["PLAINTEXT"] == ("kafka", 9092), "containers reach the broker as kafka:9092"
    assert listen["PLAINTEXT"][1] == 9092
    assert advertised["EXTERNAL"] == ("localhost", 29092), "the host reaches the broker as localhost:29092"
    assert listen["EXTERNAL"][1] == 29092
    assert "29092" in host_ports(services["kafka"])
    assert env["KAFKA_INTER_BROKER_LISTENER_NAME"] == "PLAINTEXT"


def test_clickhouse_server(services):
    ch = services["clickhouse"]
    image, _, tag = str(ch["image"]).partition(":")
    assert image == "clickhouse/clickhouse-server"
    assert re.match(r"2[45]\.\d+", tag), f"pin clickhouse-server to a 24.x/25.x tag, not {tag!r}"
    env = environment(ch)
    assert resolved(env.get("CLICKHOUSE_USER")) and resolved(env.get("CLICKHOUSE_PASSWORD"))
    assert env.get("CLICKHOUSE_DB") == "clientpulse"
    assert ch["ulimits"]["nofile"]
    assert "8123" in host_ports(ch)


@pytest.mark.parametrize("name", ["kafka", "clickhouse", "worker"])
def test_healthchecks(services, name):
    check = services[name].get("healthcheck") or {}
    assert not check.get("disable"), f"{name}: healthcheck disabled"
    test = check.get("test")
    assert test and test not in (["NONE"], "NONE"), f"{name}: no healthcheck"
    text = " ".join(test) if isinstance(test, list) else test
    expected = {
        "kafka": ("kafka-broker-api-versions", "kafka-topics"),
        "clickhouse": ("/ping", "SELECT 1"),
        "worker": ("urllib", "CLIENTPULSE_WORKER_WEB_PORT"),
    }[name]
    assert any(word in text for word in expected), f"{name}: unexpected healthcheck {text!r}"


def test_worker_healthcheck_matches_its_web_port(services):
    env = environment(services["worker"])
    port = resolved(env.get(f"{PREFIX}WORKER_WEB_PORT")) or str(Settings.model_fields["worker_web_port"].default)
    assert port != "0", "port 0 disables faust's web server, and with it the worker healthcheck"
    text = " ".join(services["worker"]["healthcheck"]["test"])
    assert str(Settings.model_fields["worker_web_port"].default) in text, "healthcheck fallback != Settings default"


def test_stateful_services_use_named_volumes(compose, services):
    declared = set(compose.get("volumes") or {})
    used: set[str] = set()
    for name, svc in services.items():
        mounts = named_volume_mounts(svc)
        assert set(mounts.values()) <= declared, f"{name}: undeclared volumes {set(mounts.values()) - declared}"
        used |= set(mounts.values())
    assert declared <= used, f"declared but unused volumes: {declared - used}"

    kafka_dirs = environment(services["kafka"])["KAFKA_LOG_DIRS"].split(",")
    assert all(d.rstrip("/") in named_volume_mounts(services["kafka"]) for d in kafka_dirs)
    ch_mounts = named_volume_mounts(services["clickhouse"])
    assert {"/var/lib/clickhouse", "/var/log/clickhouse-server"} <= set(ch_mounts)


def test_generator_is_opt_in(services):
    assert "demo" in (services["generator"].get("profiles") or [])
    for name in REQUIRED_SERVICES - {"generator"}:
        assert not services[name].get("profiles"), f"{name} must start with a plain `docker compose up`"


def test_init_is_one_shot_after_healthy_backends(services):
    init = services["init"]
    assert str(init.get("restart")) == "no"
    deps = init["depends_on"]
    assert deps["kafka"]["condition"] == "service_healthy"
    assert deps["clickhouse"]["condition"] == "service_healthy"
    calls = clientpulse_invocations(init.get("command"))
    assert ["topics", "create"] in [c[:2] for c in calls]
    assert ["migrate"] in [c[:1] for c in calls]


def test_worker_is_scalable(services):
    worker = services["worker"]
    assert "container_name" not in worker, "a fixed container name prevents --scale"
    assert not host_ports(worker), "a fixed host port prevents --scale"
    assert isinstance(worker["deploy"]["replicas"], int)
    assert worker["restart"] == "unless-stopped"
    assert worker["depends_on"]["init"]["condition"] == "service_completed_successfully"
    assert clientpulse_invocations(worker.get("command")) == [["worker"]]


def test_generator_publishes_after_init(services):
    gen = services["generator"]
    assert gen["depends_on"]["init"]["condition"] == "service_completed_successfully"
    [call] = clientpulse_invocations(gen.get("command"))
    assert call[0] == "generate" and "--publish" in call


def test_app_services_build_our_image(services):
    for name in APP_SERVICES:
        build = services[name].get("build")
        assert build, f"{name}: without `build`, compose would try to pull {services[name].get('image')!r}"
        if isinstance(build, str):
            build = {"context": build}
        context = ROOT / build.get("context", ".")
        assert context.resolve() == ROOT
        assert (context / build.get("dockerfile", "Dockerfile")).resolve() == DOCKERFILE
    assert DOCKERFILE.is_file()


# ---------------------------------------------------------------- the CLI commands compose runs


def _dockerfile_cmd() -> list[str]:
    lines = [line for line in DOCKERFILE.read_text(encoding="utf-8").splitlines() if line.startswith("CMD ")]
    assert lines, "Dockerfile has no CMD"
    return json.loads(lines[-1][4:])


def all_invocations(services: dict[str, dict[str, Any]]) -> list[tuple[str, list[str]]]:
    calls = [(name, call) for name, svc in services.items() for call in clientpulse_invocations(svc.get("command"))]
    calls += [("Dockerfile CMD", call) for call in clientpulse_invocations(_dockerfile_cmd())]
    return calls


def resolve_command(group: click.Group, args: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """Walk `args` down the click group: (command path, leaf command, the leaf's own arguments)."""
    path: list[str] = []
    command: click.Command = group
    rest = list(args)
    while isinstance(command, click.Group):
        options = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
        while rest and rest[0].startswith("-"):
            token = rest.pop(0)
            param = options.get(token.partition("=")[0])
            assert param is not None, f"`{' '.join(['clientpulse', *path])}` has no option {token}"
            if "=" not in token and not getattr(param, "is_flag", False) and not getattr(param, "count", False):
                rest.pop(0)
        assert rest, f"`{' '.join(['clientpulse', *path])}` needs a subcommand"
        name = rest.pop(0)
        sub = command.commands.get(name)
        assert sub is not None, (
            f"`{' '.join(['clientpulse', *path])}` has no command {name!r} (has {sorted(command.commands)})"
        )
        path.append(name)
        command = sub
    return path, command, rest


def test_compose_runs_only_existing_cli_commands(services, cli):
    calls = all_invocations(services)
    assert {name for name, _ in calls} >= set(APP_SERVICES)
    for where, args in calls:
        path, leaf, rest = resolve_command(cli, args)
        # Let click parse the leaf's arguments (option names, types, required arguments); nothing is invoked.
        leaf.make_context(f"clientpulse {' '.join(path)}", list(rest))
        assert path, where


def test_cli_has_the_commands_the_stack_relies_on(cli):
    expected = {  # arguments -> command path
        ("broker",): ["broker"],
        ("topics", "create"): ["topics", "create"],
        ("migrate",): ["migrate"],
        ("worker",): ["worker"],
        ("generate",): ["generate"],
        ("publish", "-"): ["publish"],
        ("sql", "SELECT 1"): ["sql"],
        ("schema", "export", "out"): ["schema", "export"],
        ("demo",): ["demo"],
        ("alerts", "--stdout"): ["alerts"],
    }
    for args, path in expected.items():
        assert resolve_command(cli, list(args))[0] == path
    global_opts = {opt for p in cli.params for opt in p.opts}
    assert {"--data-dir", "--kafka-bootstrap", "--clickhouse-dsn"} <= global_opts


# ---------------------------------------------------------------- CLIENTPULSE_* variables vs Settings


def test_every_clientpulse_variable_is_a_settings_field(compose, services):
    fields = set(Settings.model_fields)
    names: set[str] = set()
    for svc in services.values():
        names |= {k for k in environment(svc) if k.startswith(PREFIX)}
    # also the variables interpolated anywhere in the file (e.g. ${CLIENTPULSE_PARTITIONS:-4})
    names |= {v for v in variables_in(COMPOSE_FILE.read_text(encoding="utf-8")) if v.startswith(PREFIX)}
    assert names, "no CLIENTPULSE_* variables wired at all"
    unknown = sorted(n for n in names if n[len(PREFIX) :].lower() not in fields)
    assert not unknown, f"not fields of clientpulse.settings.Settings: {unknown}"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_service_settings_validate(services, name, monkeypatch):
    env = environment(services[name])
    wiring = {k: v for k, v in env.items() if k.startswith(PREFIX)}
    for required in ("KAFKA_BOOTSTRAP", "CLICKHOUSE_DSN", "DATA_DIR", "PARTITIONS", "REPLICATION_FACTOR"):
        assert PREFIX + required in wiring, f"{name}: {PREFIX + required} not set"

    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in wiring.items():
        value = resolved(value)  # literals as they are; ${VAR:-default} as its default
        if value is not None:
            monkeypatch.setenv(key, value)
    settings = Settings()  # raises ValidationError on a bad value

    assert settings.kafka_bootstrap == "kafka:9092"
    assert str(settings.data_dir) == "/data"
    assert not settings.embedded_clickhouse, "the stack uses the ClickHouse server, not chdb"
    assert settings.replication_factor == 1


def test_clickhouse_dsn_points_at_the_clickhouse_service(services):
    ch_env = environment(services["clickhouse"])
    for name in APP_SERVICES:
        env = environment(services[name])
        dsn = urlparse(resolved(env[f"{PREFIX}CLICKHOUSE_DSN"]))  # the form clickhouse-connect's get_client parses
        assert dsn.scheme == "http"
        assert dsn.hostname == "clickhouse" and dsn.port == 8123
        assert unquote(dsn.username or "") == resolved(ch_env["CLICKHOUSE_USER"])
        assert unquote(dsn.password or "") == resolved(ch_env["CLICKHOUSE_PASSWORD"])
        database = dsn.path.strip("/")
        assert database == ch_env["CLICKHOUSE_DB"], "a database named in the DSN must exist"
        configured = resolved(env.get(f"{PREFIX}CLICKHOUSE_DATABASE"))
        assert database == (configured or Settings.model_fields["clickhouse_database"].default)


def test_bootstrap_uses_the_internal_listener(services):
    advertised = listeners(environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    host, port = advertised["PLAINTEXT"]
    for name in APP_SERVICES:
        assert environment(services[name])[f"{PREFIX}KAFKA_BOOTSTRAP"] == f"{host}:{port}"


# ---------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "plain"),
        ("${A:-x}", "x"),
        ("${A-x}", "x"),
        ("${A:+x}", ""),
        ("a$$b", "a$b"),
        ("http://${U:-u}:${P:-p}@h:1/db", "http://u:p@h:1/db"),
    ],
)
def test_interpolate_defaults(value, expected):
    assert interpolate(value) == expected


def test_interpolate_without_default_is_unresolvable():
    with pytest.raises(Unresolvable):
        interpolate("${NOPE}")
    assert interpolate("${A:-x}", {"A": "set"}) == "set"


def test_invocations_from_shell_scripts():
    assert clientpulse_invocations(["sh", "-c", "clientpulse topics create && clientpulse migrate"]) == [
        ["topics", "create"],
        ["migrate"],
    ]
    assert clientpulse_invocations("clientpulse worker") == [["worker"]]
    assert clientpulse_invocations(["python", "-m", "x"]) == []
