"""The dashboard as users meet it, on real data: a history published through the real pipeline
(`clientpulse demo`: tansu broker, faust worker, chdb), served by `clientpulse dashboard`, by
`clientpulse demo --serve` and by the live worker, and loaded in headless Chromium.

Chromium is Debian's `chromium` package; the setup installs it when missing (we run as root). Where
it cannot be installed the browser tests skip, unless CLIENTPULSE_REQUIRE_CHROMIUM=1 (set by .ci/run),
which turns that into a failure. The browser is driven over the DevTools protocol (aiohttp's
websocket client, already installed with faust): it measures what was really drawn, records every
request the page made, and takes the screenshots saved under artifacts/ (or $CLIENTPULSE_ARTIFACTS).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlparse

import pytest

from clientpulse.broker import free_port
from clientpulse.dashboard import NotReady, open_checked, open_reader, reader
from producers.generator import generate
from producers.publisher import Publisher
from sinks.clickhouse import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
DEMO_ARGS = ("--clients", "40", "--days", "300", "--seed", "11", "--bad", "2")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

_populated: dict[str, Path] = {}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clientpulse.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def populated_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir filled once per test session by `clientpulse demo` (real broker, worker and chdb).
    Shared by the dashboard, report and compose tests; whoever opens it must close it again (chdb)."""
    if "dir" not in _populated:
        data_dir = tmp_path_factory.mktemp("populated") / "data"
        # its own process group: on a timeout the demo's broker and worker go too, not only the demo
        process = subprocess.Popen(
            [sys.executable, "-m", "clientpulse.cli", "--data-dir", str(data_dir), "demo", *DEMO_ARGS, "--json"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )  # fmt: skip
        try:
            out, err = process.communicate(timeout=300)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            log = data_dir / "logs" / "worker.log"
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise AssertionError(f"the demo did not finish in 300 s; worker log:\n{tail}") from None
        assert process.returncode == 0, err[-3000:]
        assert json.loads(out)["accounted_for"] is True
        _populated["dir"] = data_dir
    return _populated["dir"]


def chdb_dsn(data_dir: Path) -> str:
    return f"chdb://{(data_dir / 'clickhouse').resolve()}"


def artifacts_dir() -> Path:
    path = Path(os.environ.get("CLIENTPULSE_ARTIFACTS") or ROOT / "artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def get(url: str, timeout: float = 30) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: (status, headers, body)."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any, **kwargs: Any) -> None:
            return None

    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


def read_url(process: subprocess.Popen[str], timeout: float) -> str:
    """The URL from the 'dashboard: http://...' line the server prints once it listens."""
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.5)
        if ready:
            line = process.stdout.readline()
            seen.append(line)
            if match := re.match(r"dashboard: (http://\S+)", line):
                return match.group(1)
        if process.poll() is not None:
            break
    process.kill()
    stderr = process.stderr.read() if process.stderr else ""
    raise AssertionError(
        f"no dashboard URL within {timeout}s; stdout {''.join(seen)[-2000:]!r}; stderr {stderr[-3000:]}"
    )


def stop(process: subprocess.Popen[str], sig: int) -> int:
    process.send_signal(sig)
    try:
        return process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise AssertionError(f"the dashboard did not stop on signal {sig}") from None


# ---------------------------------------------------------------- Chromium


def chromium_binary() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        packages = ["chromium", "fonts-wqy-microhei"]  # a CJK font, so the Chinese labels show in screenshots
        install = ["apt-get", "install", "-y", "-qq", *packages]
        if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True, timeout=600)
            subprocess.run(install, env=env, capture_output=True, timeout=900)
        found = shutil.which("chromium")
    if found is None:
        message = "headless Chromium is not installed and `apt-get install chromium` was not possible here"
        if os.environ.get("CLIENTPULSE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message + " (CLIENTPULSE_REQUIRE_CHROMIUM=1)")
        pytest.skip(message)
    return found


class Page:
    """One browser tab over the DevTools protocol: navigate, evaluate, screenshot, record requests."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.last_id = 0
        self.events: list[dict[str, Any]] = []

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=60)
            if message.get("id") == self.last_id:
                assert "error" not in message, f"{method}: {message['error']}"
                return message.get("result", {})
            self.events.append(message)

    async def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == event for e in self.events):
            assert time.monotonic() < deadline, f"no {event} within {timeout}s"
            self.events.append(await self.ws.receive_json(timeout=timeout))

    async def goto(self, url: str) -> None:
        self.events.clear()
        await self.call("Page.navigate", url=url)
        await self.wait_for("Page.loadEventFired")

    def requested(self) -> list[str]:
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"]["value"]

    async def screenshot(self, path: Path) -> Path:
        metrics = await self.call("Page.getLayoutMetrics")
        height = min(math.ceil(metrics["cssContentSize"]["height"]), 12000)
        await self.call("Emulation.setDeviceMetricsOverride", width=1400, height=height, deviceScaleFactor=1,
                        mobile=False)  # fmt: skip
        shot = await self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        await self.call("Emulation.clearDeviceMetricsOverride")
        return path


class Browser:
    def __init__(self, binary: str, profile: Path) -> None:
        self.binary, self.profile = binary, profile
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> str:
        """Start headless Chromium; returns the DevTools HTTP endpoint."""
        self.process = subprocess.Popen(
            [self.binary, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--no-default-browser-check", "--disable-extensions", "--disable-background-networking",
             "--disable-sync", "--disable-component-update", "--remote-debugging-port=0",
             f"--user-data-dir={self.profile}", "--window-size=1400,1000", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            assert self.process.poll() is None, "chromium exited on start"
            assert time.monotonic() < deadline, "chromium did not open its DevTools port"
            time.sleep(0.1)
        return f"http://127.0.0.1:{port_file.read_text().split()[0]}"

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def run(self, endpoint: str, script: Any) -> Any:
        """Run `await script(page)` in a fresh tab."""

        async def main() -> Any:
            import aiohttp

            async with aiohttp.ClientSession() as session:
                async with session.put(f"{endpoint}/json/new?about:blank") as response:
                    target = await response.json()
                async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
                    page = Page(ws)
                    await page.call("Network.enable")
                    await page.call("Page.enable")
                    return await script(page)

        return asyncio.run(main())


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Browser, str]]:
    b = Browser(chromium_binary(), tmp_path_factory.mktemp("chromium-profile"))
    endpoint = b.start()
    yield b, endpoint
    b.stop()


# ---------------------------------------------------------------- the served dashboard


@pytest.fixture(scope="module")
def expected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Figures read straight from the BI views, before any server holds the data dir."""
    data_dir = populated_data_dir(tmp_path_factory)
    client = open_checked(chdb_dsn(data_dir), "clientpulse")
    try:
        q = reader(client)
        watch = q("SELECT client_id, name FROM v_churn_watchlist ORDER BY tier_rank, score DESC, client_id", None)
        assert watch, "the demo history must put someone on the churn watchlist"
        return {
            "data_dir": data_dir,
            "as_of": q("SELECT as_of_day FROM v_as_of", None)[0]["as_of_day"],
            "watchlist": watch,
            "tiers": {r["tier"]: r["clients"] for r in q("SELECT tier, clients FROM v_tier_mix", None)},
            "clients": q("SELECT count() AS n FROM v_client_360", None)[0]["n"],
        }
    finally:
        client.close()


@pytest.fixture(scope="module")
def served(expected: dict[str, Any]) -> Iterator[str]:
    """`clientpulse dashboard` on a free loopback port; stopped with SIGTERM, which must exit 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "clientpulse.cli", "dashboard", "--data-dir", str(expected["data_dir"]), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = read_url(process, 60)
    yield url
    assert stop(process, signal.SIGTERM) == 0, process.stderr.read() if process.stderr else ""


def test_dashboard_listens_on_loopback_and_sends_a_strict_policy(served: str) -> None:
    assert urlparse(served).hostname == "127.0.0.1"
    status, headers, body = get(served)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy  # no script, no fetch, no font
    # nothing in the page points anywhere but this server
    assert not re.findall(r"""(?:src|href|action)\s*=\s*["']?(?:[a-z]+:)?//""", body, re.I)
    assert "<script" not in body.lower() and "@import" not in body and "url(" not in body


def test_overview_renders_charts_in_chromium(
    served: str, expected: dict[str, Any], browser: tuple[Browser, str], capsys: pytest.CaptureFixture[str]
) -> None:
    b, endpoint = browser
    shot = artifacts_dir() / "dashboard.png"

    async def script(page: Page) -> dict[str, Any]:
        await page.goto(served)
        drawn = await page.evaluate(MEASURE_JS)
        await page.screenshot(shot)
        return {**drawn, "requests": page.requested()}

    drawn = b.run(endpoint, script)
    # charts were laid out and drawn with real data, not just present in the markup
    assert drawn["charts"] >= 9, drawn
    long_lines = [p for p in drawn["paths"] if p["points"] >= 30 and p["length"] > 300 and p["width"] > 200]
    assert len(long_lines) >= 3, drawn["paths"]
    assert drawn["bars"] >= 60, drawn["bars"]
    assert drawn["sparklines"] >= 7
    assert len(drawn["cards"]) == 7 and all(re.search(r"\d", c) for c in drawn["cards"]), drawn["cards"]
    # every request the page made went to this loopback server: the document, and nothing else to fetch
    assert served in drawn["requests"], "the request log must at least hold the page itself"
    hosts = {urlparse(u).hostname for u in drawn["requests"] if not u.startswith("data:")}
    assert hosts <= LOOPBACK, drawn["requests"]
    text = drawn["text"]
    assert f"data as of {expected['as_of']}" in text
    assert f"{len(expected['watchlist'])} clients at risk" in text
    assert "流失预警" in text and "客户分级" in text and "投诉时效" in text
    rows = drawn["watchlist"]
    assert rows[: len(expected["watchlist"][:25])] == [w["client_id"] for w in expected["watchlist"][:25]]
    for tier, clients in expected["tiers"].items():
        assert f"{tier} " in text and str(clients) in text
    assert shot.stat().st_size > 50_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with capsys.disabled():
        print(f"\ndashboard screenshot: {shot}")


MEASURE_JS = """(() => {
  const box = el => el.getBoundingClientRect();
  const paths = [...document.querySelectorAll('svg.chart path.series')].map(p => ({
    points: +p.dataset.points, length: p.getTotalLength(), width: box(p).width, height: box(p).height}));
  return {
    charts: [...document.querySelectorAll('svg.chart')].filter(s => box(s).width > 200 && box(s).height > 60).length,
    paths,
    bars: [...document.querySelectorAll('svg.chart rect.bar')].filter(r => box(r).height > 0).length,
    sparklines: [...document.querySelectorAll('.card svg.spark path.series')]
      .filter(p => p.getTotalLength() > 50).length,
    cards: [...document.querySelectorAll('.card .value')].map(e => e.textContent),
    watchlist: [...document.querySelectorAll('#watchlist tbody tr td:nth-child(2) a')].map(a => a.textContent),
    links: [...document.querySelectorAll('#watchlist tbody a')].map(a => a.href),
    text: document.body.innerText,
  };
})()"""


def test_client_drill_down_in_chromium(
    served: str, expected: dict[str, Any], browser: tuple[Browser, str], capsys: pytest.CaptureFixture[str]
) -> None:
    b, endpoint = browser
    top = expected["watchlist"][0]
    shot = artifacts_dir() / "dashboard-client.png"

    async def script(page: Page) -> dict[str, Any]:
        await page.goto(served)
        link = (await page.evaluate(MEASURE_JS))["links"][0]  # follow the page's own link
        await page.goto(link)
        drawn = await page.evaluate(CLIENT_JS)
        await page.screenshot(shot)
        return {**drawn, "link": link, "requests": page.requested()}

    drawn = b.run(endpoint, script)
    assert drawn["link"] == f"{served}client/{quote(top['client_id'], safe='')}"
    assert top["client_id"] in drawn["title"] and (top["name"] or "") in drawn["title"]
    assert drawn["charts"] >= 7  # six KPI trends and the risk history
    assert drawn["risk_points"] >= 2, "the risk history has at least the rise into risk"
    assert drawn["alerts"] >= 1 and drawn["trend_points"] >= 20
    assert "at risk" in drawn["risk_box"]
    assert {urlparse(u).hostname for u in drawn["requests"]} <= LOOPBACK
    with capsys.disabled():
        print(f"\ndashboard client screenshot: {shot}")


CLIENT_JS = """(() => {
  const box = el => el.getBoundingClientRect();
  const risk = document.querySelector('#risk-history path.series');
  return {
    title: document.querySelector('h1').innerText,
    charts: [...document.querySelectorAll('svg.chart')].filter(s => box(s).width > 200).length,
    risk_points: risk ? +risk.dataset.points : 0,
    trend_points: Math.max(...[...document.querySelectorAll('svg.chart path.series')].map(p => +p.dataset.points)),
    alerts: [...document.querySelectorAll('h2#watchlist + .table-wrap tbody tr')]
      .filter(tr => tr.querySelectorAll('td').length > 1).length,
    risk_box: document.querySelector('.risk-box').innerText,
  };
})()"""


def test_search_unknown_clients_and_injection_attempts(served: str, expected: dict[str, Any]) -> None:
    client_id = expected["watchlist"][-1]["client_id"]
    status, headers, _ = get(f"{served}client?id={quote(client_id)}")
    assert status == 302 and headers["Location"] == f"/client/{quote(client_id, safe='')}"
    for probe in ["NO-SUCH-CLIENT", "x' OR '1'='1", "x'; DROP TABLE raw_order_events; --"]:
        status, _, body = get(f"{served}client/{quote(probe, safe='')}")
        assert status == 404 and "Not found" in body, probe  # a bound parameter: the text is only a name
    status, _, body = get(f"{served}api/overview")
    data = json.loads(body)
    assert status == 200 and len(data["watchlist"]["rows"]) == min(25, len(expected["watchlist"]))
    assert sum(r["clients"] for r in data["tier_mix"]) == expected["clients"]  # nothing was dropped or changed
    status, _, body = get(f"{served}api/client/{quote(client_id, safe='')}")
    assert status == 200 and json.loads(body)["profile"]["client_id"] == client_id


# ---------------------------------------------------------------- read-only, and the error messages


def test_the_dashboard_client_refuses_writes(tmp_path: Path) -> None:
    dsn = f"chdb://{tmp_path / 'clickhouse'}"
    migrate(dsn, "clientpulse")
    client = open_reader(dsn, "clientpulse")
    try:
        q = reader(client)
        assert q("SELECT count() AS n FROM raw_order_events", None) == [{"n": 0}]
        for statement in [
            "DROP TABLE raw_order_events",
            "INSERT INTO schema_migrations (version, name) VALUES (99, 'x')",
            "ALTER TABLE raw_order_events DELETE WHERE 1",
            "CREATE TABLE evil (x UInt8) ENGINE = Memory",
            "SET readonly = 0",
        ]:
            with pytest.raises(Exception, match=r"(?i)readonly"):
                q(statement, None)
            with pytest.raises(Exception, match=r"(?i)readonly"):
                client.command(statement)
        assert q("SELECT count() AS n FROM schema_migrations WHERE version = 99", None) == [{"n": 0}]
        assert {r["name"] for r in q("SHOW TABLES", None)} >= {"raw_order_events", "v_kpi_daily"}
    finally:
        client.close()


def test_not_ready_data_dirs_are_told_in_words(tmp_path: Path) -> None:
    with pytest.raises(NotReady, match="no embedded ClickHouse data"):
        open_checked(f"chdb://{tmp_path / 'nothing'}", "clientpulse")
    assert not (tmp_path / "nothing").exists(), "looking must not create a data dir"
    result = cli("dashboard", "--data-dir", str(tmp_path / "nothing"), "--port", "0")
    assert result.returncode == 1 and result.stderr.startswith("clientpulse: error: no embedded ClickHouse data")
    assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- demo --serve, and the live worker


def test_demo_serve_prints_its_url_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "clientpulse.cli", "--data-dir", str(tmp_path / "data"), "demo", "--clients", "6",
         "--days", "30", "--seed", "3", "--serve", "--dashboard-port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        url = read_url(process, 240)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", url)
        status, _, body = get(url)
        assert status == 200 and 'class="chart"' in body and "Client health overview" in body
        assert get(url + "healthz")[0] == 200
    finally:
        code = stop(process, signal.SIGINT)
    assert code == 0, process.stderr.read() if process.stderr else ""


def test_the_live_worker_serves_the_dashboard_on_its_web_port(broker, settings, worker_factory) -> None:
    s = settings.model_copy(update={"worker_web_port": free_port()})
    worker = worker_factory(s).start()
    worker.wait_ready(60)
    base = f"http://127.0.0.1:{s.worker_web_port}"
    history = generate(clients=6, days=45, seed=5)
    with Publisher(s.kafka_bootstrap) as pub:
        for event in history.events:
            pub.publish_validated(event)
    worker.wait_committed(len(history.events))
    status, headers, body = get(f"{base}/dashboard/")
    assert status == 200, body[-2000:]
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert body.count('class="chart"') >= 9 and "data as of" in body
    client_id = history.events[-1].client_id
    status, _, body = get(f"{base}/dashboard/client/{client_id}")
    assert status == 200 and client_id in body
    assert json.loads(get(f"{base}/")[2]) == {"status": "OK"}  # faust's own routes stay
    # the dashboard only reads: the worker keeps writing (its client is not the dashboard's read-only one)
    more = generate(clients=7, days=46, seed=5).events
    extra = [e for e in more if e.client_id not in {h.client_id for h in history.events}]
    with Publisher(s.kafka_bootstrap) as pub:
        for event in extra:
            pub.publish_validated(event)
    worker.wait_committed(len(history.events) + len(extra))
    status, _, body = get(f"{base}/dashboard/client/{extra[0].client_id}")
    assert status == 200, body[-2000:]
    assert worker.stop() == 0
