"""The SSH executor: ``run_ssh_command(host, command_id)`` with a fresh CA-signed certificate per action.

Sentinel holds an SSH certificate authority key, never host passwords or standing user
keys. For each action it generates a new key pair and signs an OpenSSH user certificate:

- valid for ``cert_valid_seconds`` (minutes at most), from ``clock_skew_seconds`` ago;
- one principal: the one configured for the host group that allows the command;
- ``force-command`` = the allow-listed argv, shell-quoted, so the certificate can run
  nothing else; no ``permit-*`` extension (no pty, port, agent or X11 forwarding, no
  user rc); optionally ``source-address``.

Only commands from the allow-list (``command_id -> argv, host_groups``) run, and only on
hosts in one of their groups; anything else is refused before any connection. The host
key is verified against a known_hosts file and/or host CA keys (never skipped). Connect,
login and command time out; stdout and stderr are bounded. The result carries the exit
status, the (bounded) output and the certificate's key id, serial, principals and
validity under ``certificate`` and ``jit``; never the private key.

Idempotency: a command cannot be asked whether it ran, so ``reconcile`` re-runs a command
declared ``safe_to_repeat`` (the result says so) and returns None for any other.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import re
import secrets
import shlex
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from sentinel.executors.base import (
    RUN_SSH_COMMAND,
    ActionCall,
    Stopwatch,
    envelope,
    error_text,
    parse_action,
    refused,
    unsupported_action,
)
from sentinel.executors.jit import JitGrant, incident_id_from_key, sanitize

log = logging.getLogger("sentinel.executors.ssh")

# The catalog's shapes (policy/actions.py), repeated because executors may not import policy.
_HOST_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_COMMAND_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
_PRINCIPAL = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")

# Serials stay below 2**53 so they survive canonical JSON (RFC 8785) in the audit chain.
_MAX_SERIAL = 2**53 - 1

_T = TypeVar("_T")


# -- settings -------------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SshCommand(_Model):
    """One allow-listed command: the exact argv and the host groups it may run on."""

    argv: list[str] = Field(min_length=1)
    host_groups: list[str] = Field(min_length=1)
    safe_to_repeat: bool = False
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    description: str = ""

    @field_validator("argv")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if any(not a or "\x00" in a or "\n" in a for a in argv):
            raise ValueError("argv items must be non-empty and hold no NUL or newline")
        return argv


class SshHost(_Model):
    """Where a host is reached and which groups it belongs to."""

    address: str = Field(min_length=1)
    port: int = Field(default=22, ge=1, le=65535)
    groups: list[str] = Field(min_length=1)
    # Name to look the host key up by instead of address (OpenSSH HostKeyAlias).
    host_key_alias: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    service: str | None = None


class SshHostGroup(_Model):
    """A host group and the certificate principal that logs in on its hosts."""

    principal: str

    @field_validator("principal")
    @classmethod
    def _principal(cls, value: str) -> str:
        if not _PRINCIPAL.match(value):
            raise ValueError(f"principal {value!r} must match {_PRINCIPAL.pattern}")
        return value


class SshSettings(BaseModel):
    """SSH executor configuration: the CA key, host key trust, hosts, groups and the allow-list."""

    model_config = ConfigDict(extra="forbid")

    ca_key_path: Path | None = None  # OpenSSH private key of the user CA
    ca_key_passphrase: SecretStr | None = None
    known_hosts_path: Path | None = None  # OpenSSH known_hosts (may hold @cert-authority lines)
    host_ca_public_keys: list[str] = Field(default_factory=list)  # trusted for every host
    user: str = "sentinel"
    key_type: str = "ssh-ed25519"
    cert_valid_seconds: int = Field(default=300, ge=1, le=3600)
    clock_skew_seconds: int = Field(default=30, ge=0, le=600)
    cert_source_addresses: list[str] = Field(default_factory=list)  # CIDRs; empty = any
    connect_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_output_bytes: int = Field(default=65536, ge=256, le=16 * 1024 * 1024)
    hosts: dict[str, SshHost] = Field(default_factory=dict)
    host_groups: dict[str, SshHostGroup] = Field(default_factory=dict)
    commands: dict[str, SshCommand] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _references(self) -> SshSettings:
        bad_hosts = [h for h in self.hosts if not _HOST_NAME.match(h)]
        if bad_hosts:
            raise ValueError(f"host names {bad_hosts} must match {_HOST_NAME.pattern}")
        bad_ids = [c for c in self.commands if not _COMMAND_ID.match(c)]
        if bad_ids:
            raise ValueError(f"command ids {bad_ids} must match {_COMMAND_ID.pattern}")
        for name, host in self.hosts.items():
            missing = sorted(set(host.groups) - set(self.host_groups))
            if missing:
                raise ValueError(f"host {name!r}: unknown host groups {missing}")
        for cid, cmd in self.commands.items():
            missing = sorted(set(cmd.host_groups) - set(self.host_groups))
            if missing:
                raise ValueError(f"command {cid!r}: unknown host groups {missing}")
        return self

    def is_configured(self) -> bool:
        """Whether there is enough to run anything: a CA key, host key trust, hosts, commands."""
        return (
            self.ca_key_path is not None
            and (self.known_hosts_path is not None or bool(self.host_ca_public_keys))
            and bool(self.hosts)
            and bool(self.commands)
        )


# -- the executor ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Request:
    """A validated run_ssh_command call, resolved against the configuration."""

    call: ActionCall
    host: str
    command_id: str
    spec: SshHost
    command: SshCommand
    group: str
    principal: str

    @property
    def force_command(self) -> str:
        return shlex.join(self.command.argv)


@dataclass(frozen=True)
class _Minted:
    """A fresh key pair and its certificate; ``describe`` is what may be recorded."""

    key: asyncssh.SSHKey
    cert: asyncssh.SSHCertificate
    describe: dict[str, Any]
    grant: JitGrant


class SshExecutor:
    """Runs allow-listed commands on configured hosts with a per-action SSH certificate."""

    name = "ssh"
    supported_actions: frozenset[str] = frozenset({RUN_SSH_COMMAND})

    def __init__(self, settings: SshSettings) -> None:
        if settings.ca_key_path is None:
            raise ValueError("ssh: ca_key_path is required")
        if settings.known_hosts_path is None and not settings.host_ca_public_keys:
            # Host key checking is never switched off.
            raise ValueError("ssh: give known_hosts_path or host_ca_public_keys")
        passphrase = (
            settings.ca_key_passphrase.get_secret_value() if settings.ca_key_passphrase else None
        )
        try:
            self._ca_key = asyncssh.read_private_key(settings.ca_key_path, passphrase)
        except (OSError, asyncssh.KeyImportError) as exc:
            # Name the file, never its content.
            raise ValueError(f"ssh: cannot read CA key {settings.ca_key_path}: {exc}") from None
        for line in settings.host_ca_public_keys:
            try:
                asyncssh.import_public_key(line)
            except asyncssh.KeyImportError as exc:
                raise ValueError(f"ssh: bad host CA public key {line[:40]!r}: {exc}") from None
        self.settings = settings
        self.ca_fingerprint = self._ca_key.get_fingerprint("sha256")

    # -- the Executor port -----------------------------------------------------------------

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Run the allow-listed command on the host with a fresh certificate; full result."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return req
        return self._run(req, idempotency_key)

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """Re-run a ``safe_to_repeat`` command (said so in the result); None for any other."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            if req.get("config_dependent"):
                # The allow-list may have changed since the call: do not claim it never ran.
                return None
            return {**req, "reconciled": True}
        if not req.command.safe_to_repeat:
            return None
        result = self._run(req, idempotency_key)
        return {
            **result,
            "reconciled": True,
            "rerun": True,
            "note": f"command {req.command_id!r} is declared safe_to_repeat: it was run again"
            " because an earlier attempt may have been interrupted",
        }

    # -- read-only facts for the policy ----------------------------------------------------

    def inventory(self) -> dict[str, list[dict[str, Any]]]:
        """Hosts and host groups with their allowed command ids (policy.facts shapes)."""
        hosts = [
            {
                "name": name,
                "groups": list(h.groups),
                "labels": dict(h.labels),
                "service": h.service,
            }
            for name, h in sorted(self.settings.hosts.items())
        ]
        groups = [
            {
                "name": group,
                "allowed_command_ids": sorted(
                    cid for cid, c in self.settings.commands.items() if group in c.host_groups
                ),
            }
            for group in sorted(self.settings.host_groups)
        ]
        return {"hosts": hosts, "host_groups": groups}

    # -- validation ------------------------------------------------------------------------

    def _validate(self, action: dict[str, Any], key: str) -> _Request | dict[str, Any]:
        call = parse_action(action)
        if not isinstance(call, ActionCall):
            return refused(self.name, action, key, call)
        if call.action_id not in self.supported_actions:
            return unsupported_action(self.name, action, key, self.supported_actions)
        if not isinstance(key, str) or not key:
            return refused(self.name, action, key, "idempotency_key must be a non-empty string")
        p = call.params
        unknown = sorted(set(p) - {"host", "command_id"})
        if unknown:
            return refused(self.name, action, key, f"unknown parameters {unknown}")
        host, command_id = p.get("host"), p.get("command_id")
        if not isinstance(host, str) or not _HOST_NAME.match(host):
            return refused(self.name, action, key, f"params.host {host!r} is not a host name")
        if not isinstance(command_id, str) or not _COMMAND_ID.match(command_id):
            return refused(
                self.name, action, key, f"params.command_id {command_id!r} is not a command id"
            )
        spec = self.settings.hosts.get(host)
        if spec is None:
            return refused(
                self.name,
                action,
                key,
                f"unknown host {host!r}; configured: {sorted(self.settings.hosts)}",
                config_dependent=True,
            )
        command = self.settings.commands.get(command_id)
        if command is None:
            return refused(
                self.name,
                action,
                key,
                f"command id {command_id!r} is not on the allow-list;"
                f" allowed: {sorted(self.settings.commands)}",
                config_dependent=True,
            )
        groups = [g for g in spec.groups if g in command.host_groups]
        if not groups:
            return refused(
                self.name,
                action,
                key,
                f"command {command_id!r} is allowed on host groups {command.host_groups},"
                f" host {host!r} is in {spec.groups}",
                config_dependent=True,
            )
        group = groups[0]
        return _Request(
            call=call,
            host=host,
            command_id=command_id,
            spec=spec,
            command=command,
            group=group,
            principal=self.settings.host_groups[group].principal,
        )

    # -- the certificate -------------------------------------------------------------------

    def _mint(self, req: _Request, key: str) -> _Minted:
        """A new key pair and a user certificate for this one command on this one host group."""
        s = self.settings
        now = int(time.time())
        valid_after = now - s.clock_skew_seconds
        valid_before = now + s.cert_valid_seconds
        serial = secrets.randbelow(_MAX_SERIAL) + 1
        # sshd logs the key id on login, tying the host's auth log to the incident.
        incident = sanitize(incident_id_from_key(key), 64)
        key_id = f"sentinel:{incident}:{req.command_id}@{req.host}:{serial}"
        user_key = asyncssh.generate_private_key(s.key_type)
        cert = self._ca_key.generate_user_certificate(
            user_key,
            key_id,
            serial=serial,
            principals=[req.principal],
            valid_after=valid_after,
            valid_before=valid_before,
            force_command=req.force_command,
            source_address=list(s.cert_source_addresses) or None,
            permit_x11_forwarding=False,
            permit_agent_forwarding=False,
            permit_port_forwarding=False,
            permit_pty=False,
            permit_user_rc=False,
        )
        issued = datetime.fromtimestamp(valid_after, UTC)
        expires = datetime.fromtimestamp(valid_before, UTC)
        describe = {
            "type": "openssh-user-certificate",
            "key_id": key_id,
            "serial": serial,
            "principals": [req.principal],
            "valid_after": issued.isoformat(),
            "valid_before": expires.isoformat(),
            "valid_seconds": valid_before - valid_after,
            "force_command": req.force_command,
            "source_address": list(s.cert_source_addresses),
            "extensions": [],
            "denied": [
                "permit-pty",
                "permit-port-forwarding",
                "permit-agent-forwarding",
                "permit-X11-forwarding",
                "permit-user-rc",
            ],
            "key_type": s.key_type,
            "public_key_fingerprint": user_key.get_fingerprint("sha256"),
            "ca_fingerprint": self.ca_fingerprint,
        }
        grant = JitGrant(
            mechanism="ssh_user_certificate",
            identity=key_id,
            issued_at=issued,
            expires_at=expires,
            scope={
                "host": req.host,
                "user": s.user,
                "principal": req.principal,
                "host_group": req.group,
                "command_id": req.command_id,
                "force_command": req.force_command,
            },
        )
        return _Minted(key=user_key, cert=cert, describe=describe, grant=grant)

    # -- the run ---------------------------------------------------------------------------

    def _base(self, req: _Request, key: str) -> dict[str, Any]:
        return {
            **envelope(
                self.name,
                {
                    "action_id": req.call.action_id,
                    "params": req.call.params,
                    "target": req.call.target,
                },
                key,
            ),
            "host": req.host,
            "address": req.spec.address,
            "port": req.spec.port,
            "user": self.settings.user,
            "host_group": req.group,
            "command_id": req.command_id,
            "argv": list(req.command.argv),
            "safe_to_repeat": req.command.safe_to_repeat,
            "timeout_seconds": req.command.timeout_seconds,
            "connect_timeout_seconds": self.settings.connect_timeout_seconds,
            "max_output_bytes": self.settings.max_output_bytes,
        }

    def _run(self, req: _Request, key: str) -> dict[str, Any]:
        sw = Stopwatch()
        base = self._base(req, key)
        try:
            minted = self._mint(req, key)
        except (ValueError, asyncssh.KeyGenerationError, asyncssh.KeyImportError) as exc:
            return {
                "ok": False,
                **base,
                "stage": "certificate",
                "may_have_run": False,
                "error": error_text(exc),
                **sw.stamp(),
            }
        base.update(certificate=minted.describe, jit=minted.grant.as_dict())
        out = _run_sync(self._session(req, minted))
        return {**base, **out, **sw.stamp()}

    async def _session(self, req: _Request, minted: _Minted) -> dict[str, Any]:
        """Connect, run, collect; a dict with ok, stage, may_have_run and what was seen."""
        try:
            known_hosts = self._known_hosts()
        except (OSError, ValueError) as exc:
            return {"ok": False, "stage": "known_hosts", "may_have_run": False, **_err(exc)}
        s = self.settings
        try:
            conn = await asyncssh.connect(
                req.spec.address,
                req.spec.port,
                username=s.user,
                client_keys=[(minted.key, minted.cert)],
                known_hosts=known_hosts,
                host_key_alias=req.spec.host_key_alias,
                config=None,  # no ~/.ssh/config
                agent_path=None,
                agent_forwarding=False,
                x11_forwarding=False,
                request_pty=False,
                preferred_auth=["publickey"],
                password_auth=False,
                kbdint_auth=False,
                host_based_auth=False,
                gss_host=None,
                connect_timeout=s.connect_timeout_seconds,
                login_timeout=s.connect_timeout_seconds,
            )
        except (TimeoutError, OSError, asyncssh.Error) as exc:
            return {"ok": False, "stage": "connect", "may_have_run": False, **_err(exc)}
        try:
            seen: dict[str, Any] = {}
            host_key = conn.get_server_host_key()
            if host_key is not None:
                seen["host_key_fingerprint"] = host_key.get_fingerprint("sha256")
            return {**seen, **await self._command(conn, req)}
        finally:
            conn.abort()

    async def _command(self, conn: asyncssh.SSHClientConnection, req: _Request) -> dict[str, Any]:
        limit = self.settings.max_output_bytes
        try:
            proc = await conn.create_process(req.force_command, encoding=None, request_pty=False)
        except asyncssh.ChannelOpenError as exc:
            return {"ok": False, "stage": "open_session", "may_have_run": False, **_err(exc)}
        except (OSError, asyncssh.Error) as exc:
            # The exec request may have reached sshd before the connection broke.
            return {"ok": False, "stage": "exec", "may_have_run": True, **_err(exc)}
        proc.stdin.write_eof()
        stdout, stderr = _Bounded(limit), _Bounded(limit)

        async def collect() -> asyncssh.SSHCompletedProcess:
            await asyncio.gather(stdout.drain(proc.stdout), stderr.drain(proc.stderr))
            return await proc.wait(check=False)

        try:
            done = await asyncio.wait_for(collect(), req.command.timeout_seconds)
        except TimeoutError:
            # Ask for SIGKILL, then drop the channel. OpenSSH refuses signals to forced-command
            # sessions, so the command may run on until it exits or writes to the closed pipe:
            # bound it on the host too (e.g. argv ["timeout", "60", ...]).
            with contextlib.suppress(OSError, asyncssh.Error):
                proc.kill()
            proc.close()
            return {
                "ok": False,
                "stage": "timeout",
                "may_have_run": True,
                "error": f"command did not finish within {req.command.timeout_seconds}s;"
                " asked for SIGKILL and closed the channel (sshd does not signal forced"
                " commands, so it may still be running on the host)",
                "exit_status": None,
                **stdout.as_dict("stdout"),
                **stderr.as_dict("stderr"),
            }
        except (OSError, asyncssh.Error) as exc:
            return {
                "ok": False,
                "stage": "run",
                "may_have_run": True,
                **_err(exc),
                **stdout.as_dict("stdout"),
                **stderr.as_dict("stderr"),
            }
        exit_status = done.exit_status
        result: dict[str, Any] = {
            "ok": exit_status == 0,
            "exit_status": exit_status,
            "exit_signal": list(done.exit_signal) if done.exit_signal else None,
            **stdout.as_dict("stdout"),
            **stderr.as_dict("stderr"),
            "may_have_run": True,
        }
        if exit_status != 0:
            result.update(
                stage="exit_status",
                error=f"command exited with status {exit_status}"
                + (f" (signal {done.exit_signal[0]})" if done.exit_signal else ""),
            )
        return result

    def _known_hosts(self) -> asyncssh.SSHKnownHosts:
        """The trusted host keys: the known_hosts file plus ``@cert-authority *`` CA lines."""
        s = self.settings
        text = ""
        if s.known_hosts_path is not None:
            text = s.known_hosts_path.read_text(encoding="utf-8")
        ca_lines = "".join(f"@cert-authority * {line.strip()}\n" for line in s.host_ca_public_keys)
        return asyncssh.import_known_hosts(text + "\n" + ca_lines)


class _Bounded:
    """Keeps the first ``limit`` bytes of a stream and counts the rest (read, then dropped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.kept = bytearray()
        self.total = 0

    async def drain(self, reader: asyncssh.SSHReader[bytes]) -> None:
        # Keep reading past the limit so the remote command is never blocked on a full window.
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return
            self.total += len(chunk)
            room = self.limit - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]

    def as_dict(self, name: str) -> dict[str, Any]:
        return {
            name: self.kept.decode("utf-8", errors="backslashreplace"),
            f"{name}_bytes": self.total,
            f"{name}_truncated": self.total > len(self.kept),
        }


def _err(exc: BaseException) -> dict[str, Any]:
    return {"error": error_text(exc) if str(exc) else type(exc).__name__}


def _run_sync(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a coroutine to completion from sync code, on a private loop (own thread if needed)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    # Called from inside an event loop: run on a private loop in a worker thread.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
