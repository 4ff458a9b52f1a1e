"""``python -m sentinel_sandbox serve`` as a process: banner, token files, ticking on its own."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port, wait_for


def test_serve_subprocess(tmp_path: Path) -> None:
    port = free_port()
    state = tmp_path / "state"
    p = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sentinel_sandbox",
            "serve",
            "--scenario",
            str(ROOT / "scenarios" / "cpu-hog.yaml"),
            "--port",
            str(port),
            "--state-dir",
            str(state),
            "--tick-seconds",
            "0.1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        info = json.loads(p.stdout.readline())
        assert info["url"] == f"http://127.0.0.1:{port}"
        admin = (state / "admin.token").read_text().strip()
        assert admin == info["admin_token"]
        assert (state / "sentinel.token").read_text().strip()
        assert (state / "repo" / ".git").is_dir()
        assert json.loads((state / "sandbox.json").read_text())["url"] == info["url"]
        base = info["url"]
        assert httpx.get(f"{base}/healthz").json()["ok"] is True
        # it ticks on its own: 0.1 s per tick, the hog starts at t=30 s of simulated time
        wait_for(
            lambda: httpx.get(f"{base}/sandbox/state").json()["ticks"] >= 3,
            timeout=20,
            what="ticks",
        )
        r = httpx.get(
            f"{base}/api/v1/namespaces/boutique/pods", headers={"Authorization": f"Bearer {admin}"}
        )
        assert r.status_code == 200 and r.json()["kind"] == "PodList"
        rules = httpx.get(f"{base}/sandbox/prometheus-rules").text
        assert "PodCpuSaturated" in rules
    finally:
        p.terminate()
        p.wait(timeout=15)
    assert p.returncode == 0, p.stderr.read() if p.stderr else ""
    time.sleep(0)
