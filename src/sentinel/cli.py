"""The ``sentinel`` command line."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from sentinel.core.config import Settings, load_settings

app = typer.Typer(
    no_args_is_help=True, add_completion=False, help="Sentinel, the autonomous SRE agent."
)
db_app = typer.Typer(no_args_is_help=True, help="Database schema.")
users_app = typer.Typer(no_args_is_help=True, help="Users and tokens.")
audit_app = typer.Typer(no_args_is_help=True, help="The tamper-evident audit log.")
app.add_typer(db_app, name="db")
app.add_typer(users_app, name="users")
app.add_typer(audit_app, name="audit")
policy_app = typer.Typer(no_args_is_help=True, help="The deterministic policy.")
app.add_typer(policy_app, name="policy")

ConfigOpt = Annotated[str | None, typer.Option("--config", help="YAML configuration file")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document")]


def _settings(config: str | None) -> Settings:
    try:
        return load_settings(config)
    except Exception as exc:  # noqa: BLE001 - show configuration errors plainly
        typer.echo(f"error: invalid configuration: {exc}", err=True)
        raise typer.Exit(2) from exc


def _logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


@app.command()
def serve(host: str = "127.0.0.1", port: int = 8080, config: ConfigOpt = None) -> None:
    """API + worker in one process (the embedded default)."""
    import uvicorn

    from sentinel.api.app import create_app
    from sentinel.bootstrap import upgrade_database

    s = _settings(config)
    _logging(s)
    upgrade_database(s)
    uvicorn.run(create_app(s, with_worker=True), host=host, port=port, log_level="warning")


@app.command()
def api(
    host: str = "127.0.0.1",
    port: int = 8080,
    config: ConfigOpt = None,
    workers: Annotated[
        int, typer.Option(min=1, help="API processes sharing the port (one per core)")
    ] = 1,
) -> None:
    """API only (scale-out: several processes here, or any number against one PostgreSQL)."""
    import uvicorn

    from sentinel.api.app import create_app
    from sentinel.bootstrap import upgrade_database

    s = _settings(config)
    _logging(s)
    if workers > 1 and ":memory:" in s.database_url:
        typer.echo("error: --workers > 1 needs a database file or PostgreSQL", err=True)
        raise typer.Exit(2)
    upgrade_database(s)
    if workers == 1:
        uvicorn.run(create_app(s, with_worker=False), host=host, port=port, log_level="warning")
        return
    # Each process builds its app from the same settings (SENTINEL_CONFIG is inherited),
    # and writes its metrics where any of them can read all (see api/metrics.py).
    import os
    import shutil
    import tempfile

    from sentinel.api.metrics import MULTIPROC_ENV

    own_dir = not os.environ.get(MULTIPROC_ENV)
    if own_dir:
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="sentinel-metrics-")
    try:
        uvicorn.run(
            "sentinel.api.app:api_only_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="warning",
        )
    finally:
        if own_dir:
            shutil.rmtree(os.environ.pop(MULTIPROC_ENV), ignore_errors=True)


@app.command()
def worker(config: ConfigOpt = None) -> None:
    """Worker only: runs incident workflows (give each a stable SENTINEL_WORKER__EXECUTOR_ID)."""
    from sentinel.worker.main import run

    s = _settings(config)
    _logging(s)
    run(s)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Apply migrations (Sentinel's tables and the workflow engine's)."""
    from sentinel.bootstrap import upgrade_database

    upgrade_database(_settings(config))
    typer.echo("database is at head")


def _user_admin(config: str | None, op: str, act: Any) -> Any:
    """Run one user-administration change and its USER_ADMIN audit record in one commit."""
    from sentinel.audit import chain as audit
    from sentinel.audit.models import ActionType, Actor
    from sentinel.bootstrap import upgrade_database
    from sentinel.core.db import make_engine, transaction
    from sentinel.core.errors import SentinelError

    s = _settings(config)
    upgrade_database(s)
    engine = make_engine(s.database_url)
    try:
        with transaction(engine) as session:
            result, details = act(session)
            audit.append(
                session,
                actor=Actor.HUMAN_USER,
                action_type=ActionType.USER_ADMIN,
                details={"op": op, **details},
            )
            return result
    except SentinelError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()


@users_app.command("rotate-token")
def users_rotate_token(name: str, config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Revoke every token of a user and print a new one once (API processes stop accepting
    the old ones within 30 s, their token cache)."""
    from sentinel.auth import service as auth_service

    def act(session: Any) -> tuple[tuple[str, int], dict[str, Any]]:
        user, token, revoked = auth_service.rotate_token(session=session, name=name)
        return (token, revoked), {"name": user.name, "role": user.role, "revoked": revoked}

    token, revoked = _user_admin(config, "token_rotated", act)
    if as_json:
        typer.echo(json.dumps({"name": name, "revoked": revoked, "token": token}))
    else:
        typer.echo(f"revoked {revoked} token(s) of {name!r}; new token (shown once):\n{token}")


@users_app.command("disable")
def users_disable(name: str, config: ConfigOpt = None) -> None:
    """Disable a user and revoke every token of theirs (effective within 30 s everywhere)."""
    from sentinel.auth import service as auth_service

    def act(session: Any) -> tuple[int, dict[str, Any]]:
        user, revoked = auth_service.disable_user(session=session, name=name)
        return revoked, {"name": user.name, "role": user.role, "revoked": revoked}

    revoked = _user_admin(config, "user_disabled", act)
    typer.echo(f"disabled {name!r}; revoked {revoked} token(s)")


@users_app.command("list")
def users_list(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Users with their role, state and live token count (never a token)."""
    from sqlalchemy.orm import Session

    from sentinel.auth import service as auth_service
    from sentinel.bootstrap import upgrade_database
    from sentinel.core.db import make_engine

    s = _settings(config)
    upgrade_database(s)
    engine = make_engine(s.database_url)
    with Session(engine) as session:
        users = auth_service.list_users(session=session)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(users))
        return
    for u in users:
        state = "disabled" if u["disabled"] else f"{u['tokens']} token(s)"
        typer.echo(f"{u['name']:<24} {u['role']:<10} {state}")


@users_app.command("create")
def users_create(
    name: str,
    role: Annotated[str, typer.Option(help="ingest | viewer | responder | approver | admin")],
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a user and print its token once."""
    from sentinel.audit import chain as audit
    from sentinel.audit.models import ActionType, Actor
    from sentinel.auth import service as auth_service
    from sentinel.bootstrap import upgrade_database
    from sentinel.core.db import make_engine, transaction
    from sentinel.core.errors import SentinelError

    s = _settings(config)
    upgrade_database(s)
    engine = make_engine(s.database_url)
    try:
        with transaction(engine) as session:
            user, token = auth_service.create_user(session=session, name=name, role=role)
            audit.append(
                session,
                actor=Actor.HUMAN_USER,
                action_type=ActionType.USER_ADMIN,
                details={"op": "user_created", "name": name, "role": user.role},
            )
    except SentinelError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    if as_json:
        typer.echo(
            json.dumps({"user_id": user.user_id, "name": name, "role": user.role, "token": token})
        )
    else:
        typer.echo(f"created {role} user {name!r}; token (shown once):\n{token}")


@audit_app.command("verify")
def audit_verify(config: ConfigOpt = None, as_json: JsonOpt = False) -> None:
    """Recompute the chain and check the signed checkpoints; exit 1 at the first bad record."""
    from sentinel.audit import checkpoint
    from sentinel.core.db import make_engine

    s = _settings(config)
    engine = make_engine(s.database_url)
    report = checkpoint.verify(engine, s.audit.signing_key_path, s.audit.checkpoint_dir)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(report.as_dict()))
    elif report.ok:
        typer.echo(
            f"OK: {report.records} records, head {report.head}, {report.checkpoints} signed checkpoints hold"
        )
    else:
        typer.echo(f"FAILED at seq {report.first_bad_seq}: {report.reason}")
    raise typer.Exit(0 if report.ok else 1)


@audit_app.command("checkpoint")
def audit_checkpoint(config: ConfigOpt = None) -> None:
    """Sign the current chain head now."""
    from sentinel.audit import checkpoint
    from sentinel.core.db import make_engine

    s = _settings(config)
    engine = make_engine(s.database_url)
    cp = checkpoint.write_checkpoint(engine, s.audit.signing_key_path, s.audit.checkpoint_dir)
    engine.dispose()
    typer.echo("audit log is empty" if cp is None else f"signed seq {cp.size} -> {cp.path}")


@audit_app.command("export")
def audit_export(
    fmt: Annotated[str, typer.Option("--format", help="jsonl")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    config: ConfigOpt = None,
) -> None:
    """Export every record (canonical body plus chain fields) as JSON lines."""
    from sentinel.audit import chain
    from sentinel.core.db import make_engine

    if fmt != "jsonl":
        typer.echo("error: only --format jsonl is supported", err=True)
        raise typer.Exit(2)
    s = _settings(config)
    engine = make_engine(s.database_url)
    out = output.open("w") if output else sys.stdout
    n = 0
    for rec in chain.iter_records(engine):
        out.write(json.dumps(chain.record_view(rec), separators=(",", ":")) + "\n")
        n += 1
    if output:
        out.close()
        typer.echo(f"exported {n} records to {output}", err=True)
    engine.dispose()


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="scenario name (scenarios/NAME.yaml)")] = "cpu-hog",
    port: int = 8080,
    no_approve: Annotated[bool, typer.Option("--no-approve", help="never approve")] = False,
    alerts: Annotated[
        str,
        typer.Option(
            help="auto | prometheus | sandbox: who evaluates the alert rule and posts the"
            " Alertmanager webhook (auto: real Prometheus + Alertmanager when installed;"
            " env SENTINEL_DEMO_ALERTS)"
        ),
    ] = "",
    as_json: JsonOpt = False,
) -> None:
    """Run a sandbox scenario end to end on the embedded default and check its outcome."""
    from sentinel import demo as demo_mod

    logging.basicConfig(level="WARNING")
    try:
        result = demo_mod.run(
            scenario, port, as_json, approve=not no_approve, alerts=alerts or None
        )
    except (ValueError, RuntimeError, TimeoutError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(result))
    else:
        typer.echo("as expected" if result["as_expected"] else "NOT as expected")
    raise typer.Exit(0 if result["as_expected"] else 1)


@app.command()
def rca(case_dir: Path, as_json: JsonOpt = False) -> None:
    """Run the causal analyzer on one offline case (RCAEval layout) and print the ranking."""
    from sentinel.cli_rca import rca_command

    raise typer.Exit(rca_command(case_dir, as_json))


@policy_app.command("check")
def policy_check(file: Path) -> None:
    """Validate a policy file; exit 1 with every problem listed."""
    from sentinel.policy.rules import check_policy_text

    if not file.exists():
        typer.echo(f"error: {file} does not exist", err=True)
        raise typer.Exit(2)
    problems = check_policy_text(file.read_bytes())
    if problems:
        for p in problems:
            typer.echo(f"{file}: {p}")
        raise typer.Exit(1)
    typer.echo(f"{file}: OK")


@policy_app.command("explain")
def policy_explain(
    action: Annotated[str, typer.Option("--action", help="catalog action id")],
    target: Annotated[str, typer.Option("--target", help="e.g. k8s:shop/pod/checkout-1")],
    env: Annotated[str | None, typer.Option("--env", help="environment")] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", help="extra param k=v (to_revision=6, replicas=4)"),
    ] = None,
    policy_file: Annotated[Path | None, typer.Option("--policy")] = None,
    config: ConfigOpt = None,
) -> None:
    """Show every check the engine makes for ACTION on TARGET with today's inventory."""
    from sentinel.bootstrap import build_deps
    from sentinel.core.db import make_engine
    from sentinel.flows.facts import read_facts
    from sentinel.policy.actions import ProposedAction, params_from_target
    from sentinel.policy.engine import explain, format_explanation
    from sentinel.policy.facts import Facts
    from sentinel.policy.rules import PolicyError, load_policy_file

    s = _settings(config)
    try:
        params = params_from_target(action, target)
        for kv in param or []:
            k, sep, v = kv.partition("=")
            if not sep:
                raise ValueError(f"--param {kv!r}: expected key=value")
            params[k] = int(v) if v.lstrip("-").isdigit() else v
        policy = load_policy_file(policy_file or s.policy.file)
    except (ValueError, PolicyError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    from sentinel.bootstrap import upgrade_database

    upgrade_database(s)
    engine = make_engine(s.database_url)
    deps = build_deps(s, engine)
    from sqlalchemy.orm import Session

    with Session(engine) as session:
        facts = read_facts(deps, session)
    if env:
        facts["environment"] = env
    exp = explain(
        ProposedAction(action_id=action, params=params), Facts.model_validate(facts), policy
    )
    typer.echo(format_explanation(exp))
    engine.dispose()


@app.command()
def replay(
    incident_id: str,
    policy_file: Annotated[Path | None, typer.Option("--policy")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-run every recorded decision (model ones from their recorded output, calling no model);
    exit 0 only when all are identical."""
    from sentinel.core.db import make_engine
    from sentinel.core.errors import SentinelError
    from sentinel.flows.replay import replay_incident
    from sentinel.plan.runbooks import RunbookPlanner, load_runbooks
    from sentinel.policy.rules import load_policy_file

    s = _settings(config)
    engine = make_engine(s.database_url)
    try:
        results = replay_incident(
            engine,
            incident_id,
            load_policy_file(policy_file or s.policy.file),
            RunbookPlanner(load_runbooks(s.planner.runbook_paths)),
            s.llm,
        )
    except SentinelError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()
    same = all(r.identical for r in results)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "incident_id": incident_id,
                    "identical": same,
                    "decisions": [
                        {
                            "seq": r.seq,
                            "step": r.step,
                            "identical": r.identical,
                            "differences": {k: list(v) for k, v in r.differences.items()},
                            "note": r.note,
                        }
                        for r in results
                    ],
                }
            )
        )
    else:
        if not results:
            typer.echo("no recorded decisions for this incident")
        for r in results:
            word = "identical" if r.identical else "DIFFERENT"
            typer.echo(f"seq {r.seq:>6}  {r.step:<32} {word}")
            for k, (was, now) in r.differences.items():
                typer.echo(f"            {k}: recorded {was!r} -> now {now!r}")
            if r.note:
                typer.echo(f"            note: {r.note}")
    raise typer.Exit(0 if same else 1)


def _post_api(url: str, path: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
    """POST to Sentinel's API as the token's user; exit 2 (no token, unreachable) or 1 (the
    API refused, with its message)."""
    import httpx

    if not token:
        typer.echo("error: give --token or set SENTINEL_TOKEN", err=True)
        raise typer.Exit(2)
    try:
        r = httpx.post(
            f"{url.rstrip('/')}{path}",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(2) from exc
    if r.status_code >= 400:
        typer.echo(f"error: {r.status_code} {_api_error(r)}", err=True)
        raise typer.Exit(1)
    return dict(r.json())


def _decide_via_api(approval_id: str, verb: str, comment: str, url: str, token: str | None) -> None:
    doc = _post_api(url, f"/api/v1/approvals/{approval_id}/{verb}", {"comment": comment}, token)
    typer.echo(
        f"{doc['status']}: {doc['action_id']} on {doc['target']} (incident {doc['incident_id']})"
    )


UrlOpt = Annotated[str, typer.Option("--url", envvar="SENTINEL_URL", help="Sentinel API base URL")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="SENTINEL_TOKEN", help="API token")]
CommentOpt = Annotated[str, typer.Option("--comment", "-m")]


@app.command()
def approve(
    approval_id: str,
    comment: CommentOpt = "",
    url: UrlOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Approve a pending action (your token's user must hold the approver role)."""
    _decide_via_api(approval_id, "approve", comment, url, token)


@app.command()
def reject(
    approval_id: str,
    comment: CommentOpt = "",
    url: UrlOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Reject a pending action; nothing runs and the incident is closed."""
    _decide_via_api(approval_id, "reject", comment, url, token)


@app.command()
def close(
    incident_id: str,
    comment: Annotated[str, typer.Option("--comment", "-m", help="what was done (required)")],
    url: UrlOpt = "http://127.0.0.1:8080",
    token: TokenOpt = None,
) -> None:
    """Close an ESCALATED incident after fixing it by hand (responder role or above)."""
    doc = _post_api(url, f"/api/v1/incidents/{incident_id}/close", {"comment": comment}, token)
    typer.echo(f"{doc['status']}: incident {doc['incident_id']} ({doc['title']})")


def _api_error(r: Any) -> str:
    """The message of an INTERFACES.md error reply, or the raw text."""
    if r.headers.get("content-type", "").startswith("application/json"):
        return str(r.json().get("error", {}).get("message", r.text))
    return str(r.text)


if __name__ == "__main__":
    app()
