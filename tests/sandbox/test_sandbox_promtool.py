"""The scenarios' alert rules and the metrics exposition pass Prometheus' own checker."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest

from sentinel_sandbox.sandbox import Sandbox
from tests.conftest import need
from tests.sandbox.conftest import SCENARIOS, StartFn

pytestmark = pytest.mark.prometheus


def test_alert_rules_are_valid_promql(start_sandbox: StartFn, tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool (Debian package prometheus)")
    assert promtool is not None
    files = []
    for path in sorted(SCENARIOS.glob("*.yaml")):
        sb, url = start_sandbox(path.stem)
        f = tmp_path / f"{path.stem}.rules.yml"
        f.write_text(httpx.get(f"{url}/sandbox/prometheus-rules").text)
        files.append(str(f))
    out = subprocess.run([promtool, "check", "rules", *files], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_exposition_passes_promtool(sandbox: tuple[Sandbox, str]) -> None:
    promtool = shutil.which("promtool")
    need(promtool is not None, "promtool (Debian package prometheus)")
    assert promtool is not None
    sb, url = sandbox
    sb.tick(3)
    text = httpx.get(f"{url}/metrics").text
    out = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
