"""``python -m sentinel_sandbox serve --scenario PATH --port P`` — run a simulated cluster."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
from pathlib import Path

from sentinel_sandbox import scenario as scenario_mod
from sentinel_sandbox.alerting import AlertingConfig
from sentinel_sandbox.app import ServerThread
from sentinel_sandbox.sandbox import Sandbox


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m sentinel_sandbox")
    sub = ap.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="serve a scenario's simulated cluster")
    s.add_argument("--scenario", help="scenario YAML (default: Online Boutique, no fault)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8800)
    s.add_argument(
        "--redis-url", help="a real Redis for the cart cache, e.g. redis://127.0.0.1:6379/11"
    )
    s.add_argument("--state-dir", help="tokens and the git repository (default: a temp dir)")
    s.add_argument(
        "--tick-seconds",
        type=float,
        default=1.0,
        help="wall seconds per tick; 0 = manual ticks only",
    )
    s.add_argument("--admin-token", help="use this admin token instead of a random one")
    s.add_argument(
        "--scrape-interval",
        type=float,
        default=5.0,
        help="simulated seconds between the sandbox's own scrapes (its PromQL API)",
    )
    s.add_argument(
        "--evaluation-interval", type=float, help="rule evaluation (default: the scrape interval)"
    )
    s.add_argument(
        "--alert-webhook",
        help="post the scenario's alert to this Alertmanager-webhook URL (no Prometheus needed)",
    )
    s.add_argument("--alert-token", help="bearer token for --alert-webhook")
    s.add_argument(
        "--alert-token-file", help="read the bearer token from this file at each delivery"
    )
    s.add_argument("--group-wait", type=float, default=1.0, help="Alertmanager group_wait (s)")
    s.add_argument(
        "--group-interval", type=float, default=5.0, help="Alertmanager group_interval (s)"
    )
    c = sub.add_parser("check", help="validate scenario files")
    c.add_argument("paths", nargs="+")
    args = ap.parse_args(argv)

    if args.cmd == "check":
        ok = True
        for p in args.paths:
            try:
                sc = scenario_mod.load(p)
                print(
                    f"ok   {p}: {sc.name} ({len(sc.faults)} fault(s), outcome {sc.expected.get('outcome')})"
                )
            except Exception as exc:
                ok = False
                print(f"FAIL {p}: {exc}")
        return 0 if ok else 1

    sc = scenario_mod.load(args.scenario) if args.scenario else scenario_mod.default()
    state_dir = (
        Path(args.state_dir)
        if args.state_dir
        else Path(tempfile.mkdtemp(prefix="sentinel-sandbox-"))
    )
    alerting = AlertingConfig(
        webhook_url=args.alert_webhook,
        webhook_token=args.alert_token,
        webhook_token_file=args.alert_token_file,
        scrape_interval_s=args.scrape_interval,
        evaluation_interval_s=args.evaluation_interval or args.scrape_interval,
        group_wait_s=args.group_wait,
        group_interval_s=args.group_interval,
    )
    sb = Sandbox(
        sc,
        state_dir,
        redis_url=args.redis_url,
        tick_seconds=args.tick_seconds,
        admin_token=args.admin_token,
        alerting=alerting,
    )
    srv = ServerThread(sb, host=args.host, port=args.port).start()
    info = {
        "url": srv.url,
        "scenario": sc.name,
        "namespace": sc.namespace,
        "state_dir": str(state_dir),
        "admin_token_file": str(state_dir / "admin.token"),
        "sentinel_token_file": str(state_dir / "sentinel.token"),
        "admin_token": sb.admin_token,
        "repo": str(state_dir / "repo"),
        "redis_url": args.redis_url,
        "prometheus_url": f"{srv.url}/prometheus",
        "alert_webhook": args.alert_webhook,
    }
    # Written whole or not at all (a reader polls for it to learn the bound port).
    tmp = state_dir / "sandbox.json.tmp"
    tmp.write_text(json.dumps({k: v for k, v in info.items() if k != "admin_token"}, indent=2))
    tmp.replace(state_dir / "sandbox.json")
    print(json.dumps(info), flush=True)
    print(
        f"sentinel-sandbox: serving {sc.name!r} on {srv.url} (state in {state_dir})",
        file=sys.stderr,
        flush=True,
    )
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    done.wait()
    srv.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
