"""SshExecutor against a real OpenSSH server (Debian's sshd) on loopback, started per module.

The server trusts only a user CA made here (``TrustedUserCAKeys``), maps principals with
``AuthorizedPrincipalsFile``, has no authorized_keys and no passwords. It logs in the
current user; as root it runs with ``PermitRootLogin forced-commands-only``, which a
certificate's force-command satisfies. Every test talks to it through real SSH.
"""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from sentinel.core.redact import redact
from sentinel.executors.ssh import SshExecutor, SshSettings
from sentinel.policy.facts import Inventory
from tests.conftest import free_port, need, port_open, wait_for

pytestmark = pytest.mark.ssh

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
USER = getpass.getuser()
PRINCIPAL = "sentinel-web"

COMMANDS: dict[str, dict[str, Any]] = {
    "say-hello": {"argv": ["/bin/echo", "hello from", "sentinel's cert"], "host_groups": ["web"]},
    "show-original": {
        # What the client asked for lands in SSH_ORIGINAL_COMMAND; what runs is this.
        "argv": ["/usr/bin/printenv", "SSH_ORIGINAL_COMMAND"],
        "host_groups": ["web"],
        "safe_to_repeat": True,
    },
    "big-output": {"argv": ["/usr/bin/seq", "1", "100000"], "host_groups": ["web"]},
    "slow": {
        "argv": ["/usr/bin/timeout", "3", "/bin/sleep", "30"],
        "host_groups": ["web"],
        "timeout_seconds": 1.0,
    },
    "fail": {"argv": ["/bin/false"], "host_groups": ["web"]},
    "db-only": {"argv": ["/bin/true"], "host_groups": ["db"]},
}


@dataclass
class Sshd:
    """A running sshd and the files around it."""

    port: int
    dir: Path
    ca_key_path: Path
    known_hosts: Path
    host_ca_pub: str
    log: Path

    def connections(self) -> int:
        """How many TCP connections sshd has accepted so far (from its VERBOSE log)."""
        if not self.log.exists():
            return 0
        return self.log.read_text(errors="replace").count("Connection from ")


def _write_key(key: asyncssh.SSHKey, path: Path) -> None:
    key.write_private_key(str(path))
    path.chmod(0o600)


@pytest.fixture(scope="module")
def sshd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    need(os.path.exists(SSHD), "OpenSSH server (/usr/sbin/sshd; apt-get install openssh-server)")
    d = tmp_path_factory.mktemp("sshd")
    ca = asyncssh.generate_private_key("ssh-ed25519")
    _write_key(ca, d / "user_ca")
    (d / "user_ca.pub").write_bytes(ca.export_public_key())
    host = asyncssh.generate_private_key("ssh-ed25519")
    _write_key(host, d / "host_ed25519")
    # The host key is also certified by a host CA, for the host-CA trust path.
    host_ca = asyncssh.generate_private_key("ssh-ed25519")
    (d / "host_ca.pub").write_bytes(host_ca.export_public_key())
    host_ca.generate_host_certificate(
        host, "test-sshd", principals=["127.0.0.1"], valid_before="+1d"
    ).write_certificate(str(d / "host_ed25519-cert.pub"))
    (d / "principals").mkdir()
    (d / "principals" / USER).write_text(f"{PRINCIPAL}\n")
    port = free_port()
    (d / "known_hosts").write_text(
        f"[127.0.0.1]:{port} {host.export_public_key().decode().strip()}\n"
    )
    root = os.geteuid() == 0
    config = "\n".join(
        [
            f"Port {port}",
            "ListenAddress 127.0.0.1",
            f"HostKey {d / 'host_ed25519'}",
            f"HostCertificate {d / 'host_ed25519-cert.pub'}",
            f"PidFile {d / 'sshd.pid'}",
            f"TrustedUserCAKeys {d / 'user_ca.pub'}",
            f"AuthorizedPrincipalsFile {d / 'principals'}/%u",
            "AuthorizedKeysFile none",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin forced-commands-only" if root else "PermitRootLogin no",
            "UsePAM no",
            # pytest's tmp dirs live under world-writable /tmp, which StrictModes rejects.
            "StrictModes no",
            # The server would allow these; the certificate's missing permit-* must stop them.
            "AllowTcpForwarding yes",
            "AllowAgentForwarding yes",
            "PermitTTY yes",
            "LogLevel VERBOSE",
            "",
        ]
    )
    (d / "sshd_config").write_text(config)
    if root:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation dir
    log = d / "sshd.log"
    proc = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(d / "sshd_config"), "-p", str(port), "-E", str(log)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(
            lambda: port_open("127.0.0.1", port) or proc.poll() is not None,
            timeout=15,
            what="sshd to listen",
        )
        if proc.poll() is not None:
            pytest.fail(f"sshd exited {proc.returncode}: {log.read_text(errors='replace')}")
        yield Sshd(
            port=port,
            dir=d,
            ca_key_path=d / "user_ca",
            known_hosts=d / "known_hosts",
            host_ca_pub=host_ca.export_public_key().decode().strip(),
            log=log,
        )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def make_settings(sshd: Sshd, **overrides: Any) -> SshSettings:
    raw: dict[str, Any] = {
        "ca_key_path": str(sshd.ca_key_path),
        "known_hosts_path": str(sshd.known_hosts),
        "user": USER,
        "cert_valid_seconds": 120,
        "connect_timeout_seconds": 5,
        "max_output_bytes": 4096,
        "hosts": {"web-1": {"address": "127.0.0.1", "port": sshd.port, "groups": ["web"]}},
        "host_groups": {"web": {"principal": PRINCIPAL}, "db": {"principal": "sentinel-db"}},
        "commands": COMMANDS,
    }
    raw.update(overrides)
    return SshSettings.model_validate(raw)


def ssh_action(command_id: str, host: str = "web-1") -> dict[str, Any]:
    return {
        "action_id": "run_ssh_command",
        "params": {"host": host, "command_id": command_id},
        "target": f"ssh:{host}",
    }


def new_key() -> str:
    return f"{uuid.uuid4()}:remediate:execute"


async def _connect(sshd: Sshd, key: asyncssh.SSHKey, cert: Any) -> asyncssh.SSHClientConnection:
    return await asyncssh.connect(
        "127.0.0.1",
        sshd.port,
        username=USER,
        client_keys=[(key, cert)],
        known_hosts=str(sshd.known_hosts),
        config=None,
        agent_path=None,
        preferred_auth=["publickey"],
        connect_timeout=5,
    )


def test_allow_listed_command_runs_with_a_short_lived_certificate(sshd: Sshd) -> None:
    ex = SshExecutor(make_settings(sshd))
    key = new_key()
    before = time.time()
    r = ex.execute(ssh_action("say-hello"), key)
    assert r["ok"] is True, r
    assert r["exit_status"] == 0
    assert r["stdout"] == "hello from sentinel's cert\n"
    assert r["stderr"] == "" and r["stdout_truncated"] is False
    assert r["may_have_run"] is True
    assert r["argv"] == ["/bin/echo", "hello from", "sentinel's cert"]
    cert = r["certificate"]
    assert cert["force_command"] == "/bin/echo 'hello from' 'sentinel'\"'\"'s cert'"
    assert cert["principals"] == [PRINCIPAL]
    assert cert["extensions"] == []
    assert cert["key_id"].startswith(f"sentinel:{key.split(':')[0]}:say-hello@web-1:")
    # Valid for minutes: two at most here (plus the clock-skew allowance before now).
    valid_before = datetime.fromisoformat(cert["valid_before"]).timestamp()
    assert before < valid_before <= time.time() + 120
    assert r["jit"]["mechanism"] == "ssh_user_certificate"
    assert r["jit"]["scope"]["force_command"] == cert["force_command"]
    assert r["host_key_fingerprint"].startswith("SHA256:")
    # sshd logged this very certificate (key id and serial) for the login.
    log = sshd.log.read_text(errors="replace")
    assert cert["key_id"] in log and f"serial {cert['serial']}" in log
    # Nothing secret in the result that goes to the audit log.
    text = json.dumps(r)
    assert "PRIVATE KEY" not in text
    assert "BEGIN" not in text
    # The audit log's redactor leaves the record whole: the certificate's scope stays visible.
    assert redact(r) == r


def test_certificate_runs_only_its_force_command_and_expires(sshd: Sshd) -> None:
    ex = SshExecutor(make_settings(sshd, cert_valid_seconds=3, clock_skew_seconds=0))
    key = new_key()
    # Mint exactly what execute() would use for this action (private API on purpose: the
    # executor never hands its private key out).
    req = ex._validate(ssh_action("show-original"), key)
    assert not isinstance(req, dict)
    minted = ex._mint(req, key)

    async def attempts() -> dict[str, Any]:
        out: dict[str, Any] = {}
        async with await _connect(sshd, minted.key, minted.cert) as conn:
            other = await conn.run("id -un; echo PWNED > /tmp/sentinel-pwned", check=False)
            out["other"] = (other.exit_status, other.stdout)
            try:
                await conn.run("cat /etc/shadow", term_type="xterm", check=False)
                out["pty"] = "allocated"
            except asyncssh.ChannelOpenError as exc:
                out["pty"] = f"refused: {exc.reason}"
            try:
                await conn.open_connection("127.0.0.1", sshd.port)
                out["forward"] = "opened"
            except asyncssh.ChannelOpenError as exc:
                out["forward"] = f"refused: {exc.reason}"
        return out

    seen = asyncio.run(attempts())
    # The server ran the forced command instead of the one asked for.
    assert seen["other"] == (0, "id -un; echo PWNED > /tmp/sentinel-pwned\n")
    assert seen["pty"] == "refused: PTY request failed"
    assert seen["forward"].startswith("refused")
    assert not Path("/tmp/sentinel-pwned").exists()

    time.sleep(4.5)

    async def after_expiry() -> None:
        async with await _connect(sshd, minted.key, minted.cert):
            pass

    with pytest.raises(asyncssh.PermissionDenied):
        asyncio.run(after_expiry())
    # And the executor itself, asked again, mints a new one rather than reusing it.
    r = ex.execute(ssh_action("show-original"), key)
    assert r["ok"] is True, r
    assert r["certificate"]["serial"] != minted.describe["serial"]
    assert r["stdout"] == "/usr/bin/printenv SSH_ORIGINAL_COMMAND\n"


def test_command_not_on_the_allow_list_is_refused_before_any_connection(sshd: Sshd) -> None:
    ex = SshExecutor(make_settings(sshd))
    before = sshd.connections()
    for command_id, why in [
        ("rm-rf", "not on the allow-list"),
        ("db-only", "allowed on host groups ['db']"),
    ]:
        r = ex.execute(ssh_action(command_id), new_key())
        assert r["ok"] is False and r["refused"] is True and r["may_have_run"] is False, r
        assert why in r["error"]
        assert "certificate" not in r
    r = ex.execute(ssh_action("say-hello", host="unknown-host"), new_key())
    assert r["refused"] is True and "unknown host" in r["error"]
    bad = ex.execute(
        {"action_id": "run_ssh_command", "params": {"host": "web-1", "command_id": "ls; rm"}},
        new_key(),
    )
    assert bad["refused"] is True
    assert sshd.connections() == before
    # The policy refuses it too: the inventory the executor reports is the policy's input.
    inv = Inventory.model_validate(ex.inventory())
    host = inv.host("web-1")
    assert host is not None
    assert "rm-rf" not in inv.allowed_commands(host)
    assert "db-only" not in inv.allowed_commands(host)
    assert "say-hello" in inv.allowed_commands(host)


def test_host_whose_key_does_not_match_is_refused(sshd: Sshd, tmp_path: Path) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    wrong = tmp_path / "known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sshd.port} {other}\n")
    ex = SshExecutor(make_settings(sshd, known_hosts_path=str(wrong)))
    r = ex.execute(ssh_action("say-hello"), new_key())
    assert r["ok"] is False and r["stage"] == "connect" and r["may_have_run"] is False, r
    assert "HostKeyNotVerifiable" in r["error"]
    # Host CA trust: the CA that certified the host key is accepted, any other is not.
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    ex = SshExecutor(
        make_settings(sshd, known_hosts_path=str(empty), host_ca_public_keys=[sshd.host_ca_pub])
    )
    r = ex.execute(ssh_action("say-hello"), new_key())
    assert r["ok"] is True, r
    ca = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    ex = SshExecutor(make_settings(sshd, known_hosts_path=str(empty), host_ca_public_keys=[ca]))
    r = ex.execute(ssh_action("say-hello"), new_key())
    assert r["ok"] is False and r["stage"] == "connect" and r["may_have_run"] is False, r
    assert "HostKeyNotVerifiable" in r["error"]


def test_bounds_timeouts_and_exit_status(sshd: Sshd) -> None:
    ex = SshExecutor(make_settings(sshd))
    big = ex.execute(ssh_action("big-output"), new_key())
    assert big["ok"] is True
    assert len(big["stdout"]) == 4096 and big["stdout_truncated"] is True
    assert big["stdout_bytes"] == len("".join(f"{i}\n" for i in range(1, 100001)))
    slow = ex.execute(ssh_action("slow"), new_key())
    assert slow["ok"] is False and slow["stage"] == "timeout" and slow["may_have_run"] is True
    assert slow["duration_ms"] < 5000
    fail = ex.execute(ssh_action("fail"), new_key())
    assert fail["ok"] is False and fail["exit_status"] == 1 and fail["may_have_run"] is True


def test_reconcile_reruns_only_safe_to_repeat_commands(sshd: Sshd) -> None:
    ex = SshExecutor(make_settings(sshd))
    again = ex.reconcile(ssh_action("show-original"), new_key())
    assert again is not None and again["ok"] is True
    assert again["reconciled"] is True and again["rerun"] is True
    assert "safe_to_repeat" in again["note"]
    assert ex.reconcile(ssh_action("say-hello"), new_key()) is None
    # A command dropped from the allow-list since: cannot tell.
    assert ex.reconcile(ssh_action("gone-now"), new_key()) is None


def test_constructor_refuses_to_run_without_host_key_trust(sshd: Sshd) -> None:
    with pytest.raises(ValueError, match="known_hosts_path or host_ca_public_keys"):
        SshExecutor(make_settings(sshd, known_hosts_path=None))
    with pytest.raises(ValueError, match="unknown host groups"):
        make_settings(sshd, commands={"x": {"argv": ["/bin/true"], "host_groups": ["nope"]}})
