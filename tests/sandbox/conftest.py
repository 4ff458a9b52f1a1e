"""Fixtures: a sandbox served in-process on a free port, and official-client factories."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes import client

from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"


def kube_client(url: str, token: str) -> client.ApiClient:
    """An official-client ApiClient for the sandbox with a bearer token."""
    cfg = client.Configuration(
        host=url,
        api_key={"authorization": token},
        api_key_prefix={"authorization": "Bearer"},
    )
    cfg.retries = 0
    return client.ApiClient(cfg)


StartFn = Callable[..., tuple[Sandbox, str]]


@pytest.fixture
def start_sandbox(tmp_path: Path) -> Iterator[StartFn]:
    """Start a sandbox (manual ticks unless told) for a scenario name or parsed Scenario."""
    servers: list[ServerThread] = []

    def start(
        scenario: str | scenario_mod.Scenario | None = None,
        *,
        tick_seconds: float = 0,
        redis_url: str | None = None,
    ) -> tuple[Sandbox, str]:
        if scenario is None:
            sc = scenario_mod.default()
        elif isinstance(scenario, str):
            sc = scenario_mod.load(SCENARIOS / f"{scenario}.yaml")
        else:
            sc = scenario
        sb = Sandbox(
            sc, tmp_path / f"state{len(servers)}", redis_url=redis_url, tick_seconds=tick_seconds
        )
        srv = ServerThread(sb).start()
        servers.append(srv)
        return sb, srv.url

    yield start
    for s in servers:
        s.stop()


@pytest.fixture(scope="session")
def _default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    sb = Sandbox(scenario_mod.default(), tmp_path_factory.mktemp("sandbox"), tick_seconds=0)
    srv = ServerThread(sb).start()
    yield srv
    srv.stop()


@pytest.fixture
def sandbox(_default_server: ServerThread) -> tuple[Sandbox, str]:
    """The default Online-Boutique sandbox, no fault, manual ticks, freshly reset."""
    sb = _default_server.sb
    sb.reset()
    sb.tick(3)
    return sb, _default_server.url


@pytest.fixture
def admin(sandbox: tuple[Sandbox, str]) -> client.ApiClient:
    sb, url = sandbox
    return kube_client(url, sb.admin_token)
