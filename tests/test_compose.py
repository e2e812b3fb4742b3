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
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import click
import pytest
import yaml

from clientpulse.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
ENV_EXAMPLE = ROOT / ".env.example"  # copied to .env by users; compose interpolates from it

REQUIRED_SERVICES = {"kafka", "clickhouse", "init", "worker", "generator", "grafana"}
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


def dotenv(path: Path, commented: bool = False) -> dict[str, str]:
    """KEY=VALUE lines of an env file as compose reads .env; `commented`: also the #KEY=VALUE examples."""
    out: dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if commented and re.match(r"#[A-Z][A-Z0-9_]*=", line):
            line = line[1:]
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            out[name.strip()] = value.strip().strip("'\"")
    return out


def stack_env() -> dict[str, str]:
    """What compose interpolates from: .env.example, its blank passwords filled in as a user must."""
    return {name: value or f"test-{name.lower()}" for name, value in dotenv(ENV_EXAMPLE).items()}


def resolved(value: str | None, env: dict[str, str] | None = None) -> str | None:
    """A compose value as `docker compose up` sees it with .env made from .env.example (None: unresolvable)."""
    if value is None:
        return None
    try:
        return interpolate(value, stack_env() if env is None else env)
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
        assert dsn.password is None, "the password has its own setting (a SecretStr), not the DSN"
        assert resolved(env[f"{PREFIX}CLICKHOUSE_USERNAME"]) == resolved(ch_env["CLICKHOUSE_USER"])
        assert resolved(env[f"{PREFIX}CLICKHOUSE_PASSWORD"]) == resolved(ch_env["CLICKHOUSE_PASSWORD"])
        database = dsn.path.strip("/")
        assert database == ch_env["CLICKHOUSE_DB"], "a database named in the DSN must exist"
        configured = resolved(env.get(f"{PREFIX}CLICKHOUSE_DATABASE"))
        assert database == (configured or Settings.model_fields["clickhouse_database"].default)


def test_bootstrap_uses_the_internal_listener(services):
    advertised = listeners(environment(services["kafka"])["KAFKA_ADVERTISED_LISTENERS"])
    host, port = advertised["PLAINTEXT"]
    for name in APP_SERVICES:
        assert resolved(environment(services[name])[f"{PREFIX}KAFKA_BOOTSTRAP"]) == f"{host}:{port}"


# ---------------------------------------------------------------- BI: read-only ClickHouse user, Grafana

DEPLOY = ROOT / "deploy"
BI_USERS_XML = DEPLOY / "clickhouse" / "users.d" / "bi-readonly.xml"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
GRAFANA_DASHBOARD_PROVIDERS = DEPLOY / "grafana" / "provisioning" / "dashboards"
GRAFANA_DASHBOARDS = DEPLOY / "grafana" / "dashboards"


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path -> host path (resolved against the compose file's directory) of the bind mounts."""
    out = {}
    for entry in service.get("volumes") or []:
        source, target = entry.split(":")[:2] if isinstance(entry, str) else (entry.get("source"), entry.get("target"))
        if source and source.startswith((".", "/")):
            out[target.rstrip("/")] = (COMPOSE_FILE.parent / source).resolve()
    return out


def bi_user() -> tuple[str, ET.Element, ET.Element]:
    """(user name, user element, its settings profile) from the users.d file."""
    root = ET.parse(BI_USERS_XML).getroot()
    [user] = list(root.find("users"))
    profile = root.find(f"profiles/{user.findtext('profile')}")
    assert profile is not None, f"profile {user.findtext('profile')!r} of {user.tag} is not defined"
    return user.tag, user, profile


def grafana_datasource() -> dict[str, Any]:
    [path] = sorted(GRAFANA_DATASOURCES.glob("*.y*ml"))
    [datasource] = yaml.safe_load(path.read_text(encoding="utf-8"))["datasources"]
    return datasource


def grafana_dashboards() -> list[dict[str, Any]]:
    paths = sorted(GRAFANA_DASHBOARDS.glob("*.json"))
    assert paths, "no provisioned dashboard"
    return [json.loads(p.read_text(encoding="utf-8")) for p in paths]


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every query of every panel, rows included."""
    out = []
    for panel in dashboard["panels"]:
        for p in [panel, *panel.get("panels", [])]:
            out += [(p["title"], t) for t in p.get("targets", [])]
    return out


def test_bi_user_is_read_only_with_its_password_from_the_environment(services):
    name, user, profile = bi_user()
    assert profile.findtext("readonly") == "1", "readonly=1: no writes, no DDL, no SET"
    # the Grafana plugin sets max_execution_time on every query: the one setting a readonly user may change
    changeable = profile.find("constraints/max_execution_time/changeable_in_readonly")
    assert changeable is not None
    assert {c.tag for c in profile.find("constraints")} == {"max_execution_time"}
    assert user.findtext("access_management", "0") == "0"
    assert [d.text for d in user.findall("allow_databases/database")] == ["clientpulse"]
    variable = user.find("password").get("from_env")
    assert variable and not user.findtext("password"), "the password comes from the environment, not the file"
    ch = services["clickhouse"]
    assert resolved(environment(ch).get(variable)), f"clickhouse service does not set {variable}"
    assert bind_mounts(ch)[f"/etc/clickhouse-server/users.d/{BI_USERS_XML.name}"] == BI_USERS_XML
    assert name != resolved(environment(ch)["CLICKHOUSE_USER"]), "BI must not use the writer's account"


def test_grafana_service(services):
    grafana = services["grafana"]
    image, _, tag = str(grafana["image"]).partition(":")
    assert image in ("grafana/grafana-oss", "grafana/grafana") and re.fullmatch(r"\d+\.\d+\.\d+", tag), tag
    env = environment(grafana)
    assert "grafana-clickhouse-datasource" in (env.get("GF_INSTALL_PLUGINS") or env.get("GF_PLUGINS_PREINSTALL", ""))
    assert resolved(env["GF_SECURITY_ADMIN_PASSWORD"]) and env.get("GF_USERS_ALLOW_SIGN_UP") == "false"
    assert grafana["ports"] == ["127.0.0.1:3000:3000"], "the UI on loopback only, like the other host ports"
    mounts = bind_mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == DEPLOY / "grafana" / "provisioning"
    assert mounts["/etc/grafana/dashboards"] == GRAFANA_DASHBOARDS
    assert "/var/lib/grafana" in named_volume_mounts(grafana)
    assert grafana["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    assert grafana["depends_on"]["init"]["condition"] == "service_completed_successfully", "views exist first"
    assert "/api/health" in " ".join(grafana["healthcheck"]["test"])
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (GRAFANA_DASHBOARDS / PurePosixPath(home).name).is_file() and home.startswith("/etc/grafana/dashboards/")


def test_grafana_datasource_is_the_read_only_user_on_the_clickhouse_service(services):
    ds = grafana_datasource()
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["uid"]
    data = ds["jsonData"]
    assert data["host"] == "clickhouse" and "clickhouse" in services
    assert data["protocol"] == "http" and data["port"] == 8123 and "8123" in str(services["clickhouse"]["ports"])
    assert data["defaultDatabase"] == environment(services["clickhouse"])["CLICKHOUSE_DB"]
    name, user, _ = bi_user()
    assert data["username"] == name
    variable = user.find("password").get("from_env")
    assert ds["secureJsonData"]["password"] in (f"${variable}", f"${{{variable}}}")
    grafana_env, ch_env = environment(services["grafana"]), environment(services["clickhouse"])
    assert resolved(grafana_env[variable]) == resolved(ch_env[variable]), "Grafana and ClickHouse disagree"
    [provider] = yaml.safe_load(next(GRAFANA_DASHBOARD_PROVIDERS.glob("*.y*ml")).read_text())["providers"]
    assert provider["type"] == "file" and provider["options"]["path"] == "/etc/grafana/dashboards"


def test_grafana_dashboard_covers_the_four_topics_through_the_bi_views():
    from sinks.migrations import BI_VIEWS

    ds_uid = grafana_datasource()["uid"]
    [dashboard] = grafana_dashboards()
    assert dashboard["uid"] and dashboard["title"]
    rows = " ".join(p["title"].lower() for p in dashboard["panels"] if p["type"] == "row")
    for topic in ("client health overview", "churn watchlist", "kpi trends", "complaint sla"):
        assert topic in rows, f"no {topic!r} row"
    queries = panel_queries(dashboard)
    assert len(queries) >= 12
    for title, target in queries:
        assert target["datasource"]["uid"] == ds_uid, title
        assert target["editorType"] == "sql" and target["rawSql"].strip().upper().startswith("SELECT"), title
        tables = set(re.findall(r"\b(?:FROM|JOIN)\s+([A-Za-z_][\w.]*)", target["rawSql"], re.I))
        assert tables and tables <= set(BI_VIEWS), f"{title}: reads {tables - set(BI_VIEWS)}, not only BI views"
    used = {t for _, target in queries for t in re.findall(r"\bv_\w+", target["rawSql"])}
    assert {"v_client_360", "v_churn_watchlist", "v_kpi_daily", "v_tier_mix", "v_complaint_sla"} <= used


# Grafana macros of the ClickHouse plugin, replaced by a fixed range to run the panels' SQL as written.
GRAFANA_MACROS = {
    r"\$__dateFilter\((\w+)\)": r"\1 BETWEEN toDate('2000-01-01') AND toDate('2100-01-01')",
    r"\$__timeFilter\((\w+)\)": r"\1 BETWEEN toDateTime64('2000-01-01 00:00:00', 3) "
    r"AND toDateTime64('2100-01-01 00:00:00', 3)",
}


@pytest.mark.integration
def test_every_grafana_panel_query_runs_read_only_on_populated_views(tmp_path_factory):
    from clientpulse.dashboard import open_checked, reader
    from tests.test_dashboard import chdb_dsn, populated_data_dir

    data_dir = populated_data_dir(tmp_path_factory)  # a history through the real pipeline
    client = open_checked(chdb_dsn(data_dir), "clientpulse")  # readonly=1, as the BI user
    try:
        q = reader(client)
        for title, target in panel_queries(grafana_dashboards()[0]):
            sql = target["rawSql"]
            for pattern, replacement in GRAFANA_MACROS.items():
                sql = re.sub(pattern, replacement, sql)
            assert "$" not in sql, f"{title}: a Grafana macro this test does not know: {sql}"
            rows = q(sql, None)  # unknown views or columns fail here
            assert rows, f"{title}: no rows on a year of history"
            if target["queryType"] == "timeSeries":
                assert "time" in rows[0] and len(rows) > 10, title
    finally:
        client.close()


# ---------------------------------------------------------------- security: secrets from .env, TLS examples

SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY$|CREDENTIALS")
SECURITY_FIELDS = [
    name for name in Settings.model_fields if name.startswith(("kafka_s", "clickhouse_")) and "_dsn" not in name
]


def test_no_secret_has_a_literal_or_default_value_in_compose(services):
    for name, svc in services.items():
        for key, value in environment(svc).items():
            if SECRET_NAME.search(key):
                assert value and variables_in(value), f"{name}: {key} is a literal; secrets come from .env"
                try:
                    default = interpolate(value)  # nothing set: what compose would use without .env
                except Unresolvable:
                    continue  # ${VAR:?...}: compose refuses to start without it
                assert default == "", f"{name}: {key} defaults to {default!r}"
            if value and "://" in value:
                url = urlparse(resolved(value) or "")
                assert url.password is None, f"{name}: {key} carries a password in a URL"
    text = COMPOSE_FILE.read_text(encoding="utf-8")  # the commented examples included
    assert not re.search(r"://[^/\s:@]+:[^@\s$]+@", text), "user:password@ in a URL"
    assert not re.search(r"(?i)password\s*=\s*[\"']?[^\s\"'$]", text), "password=... literal"


def test_env_example_lists_every_required_secret_blank_and_only_settings_fields():
    required = {m.group(1) for m in re.finditer(r"\$\{([A-Za-z_]\w*):\?", COMPOSE_FILE.read_text(encoding="utf-8"))}
    example = dotenv(ENV_EXAMPLE, commented=True)
    assert required and required <= set(example), f"not in .env.example: {required - set(example)}"
    for name, value in example.items():
        if SECRET_NAME.search(name):
            assert value == "", f".env.example: {name} must be blank (a shared example password is no password)"
        if name.startswith(PREFIX):
            assert name[len(PREFIX) :].lower() in Settings.model_fields, f".env.example: {name} is no setting"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_security_settings_reach_every_app_service(services, name, monkeypatch, tmp_path):
    from clientpulse.security import clickhouse_connect_kwargs, kafka_python_config

    wiring = {k: v for k, v in environment(services[name]).items() if k.startswith(PREFIX)}
    missing = sorted(f for f in SECURITY_FIELDS if f"{PREFIX}{f.upper()}" not in wiring)
    assert not missing, f"{name}: not passed through from .env: {missing}"

    # The SASL_SSL and TLS examples of .env.example, switched on as its comments say.
    ca = tmp_path / "ca.pem"
    ca.write_text("in the container: /etc/clientpulse/tls/ca.pem")
    env = stack_env() | {k: v or f"test-{k.lower()}" for k, v in dotenv(ENV_EXAMPLE, commented=True).items()}
    env |= {k: str(ca) for k, v in env.items() if v == "/etc/clientpulse/tls/ca.pem"}
    for optional in ("CERTFILE", "KEYFILE"):  # mutual TLS is the optional part
        env.pop(f"{PREFIX}KAFKA_SSL_{optional}")
    for key in [k for k in os.environ if k.startswith(PREFIX)]:
        monkeypatch.delenv(key)
    for key, value in wiring.items():
        monkeypatch.setenv(key, resolved(value, env) or "")
    s = Settings()
    kafka, clickhouse = kafka_python_config(s), clickhouse_connect_kwargs(s)
    assert kafka["security_protocol"] == "SASL_SSL" and kafka["ssl_cafile"] == str(ca)
    assert kafka["sasl_plain_password"] == env[f"{PREFIX}KAFKA_SASL_PASSWORD"]
    assert s.kafka_bootstrap == "kafka:9094", "the SASL_SSL listener of the commented example"
    assert clickhouse["secure"] and clickhouse["verify"] and clickhouse["ca_cert"] == str(ca)
    assert clickhouse["password"] == env["CLICKHOUSE_PASSWORD"] and clickhouse["username"] == env["CLICKHOUSE_USER"]


def test_tls_examples_point_at_files_that_exist():
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    commented_mounts = re.findall(r"#\s*-\s*(\./deploy/[^:\s]+):([^:\s]+)", text)
    assert commented_mounts, "no commented TLS mounts"
    tls_xml = DEPLOY / "clickhouse" / "config.d" / "tls.xml"
    made = (DEPLOY / "make-dev-certs.sh").read_text(encoding="utf-8")
    for source, _ in commented_mounts:  # a file in the tree, or one deploy/make-dev-certs.sh writes
        path = (ROOT / source).resolve()
        assert path.exists() or (path.parent == DEPLOY / "secrets" and path.name in made), f"{source}: not made"
    root = ET.parse(tls_xml).getroot()
    assert root.findtext("https_port") == "8443" and "127.0.0.1:8443:8443" in text
    server = root.find("openSSL/server")
    mounted = {target for _, target in commented_mounts}
    for tag in ("certificateFile", "privateKeyFile"):
        assert server.findtext(tag) in mounted, f"tls.xml {tag} is not where compose mounts it"
    for line in ("KAFKA_SSL_KEYSTORE_FILENAME", "KAFKA_SSL_KEYSTORE_CREDENTIALS", "KAFKA_SSL_KEY_CREDENTIALS"):
        file = re.search(rf"#\s*{line}:\s*\"([^\"]+)\"", text)
        assert file and file.group(1) in made, f"{line}: deploy/make-dev-certs.sh does not make it"
    assert "SASL_SSL://kafka:9094" in text and (DEPLOY / "kafka" / "kafka_server_jaas.conf.example").is_file()


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
