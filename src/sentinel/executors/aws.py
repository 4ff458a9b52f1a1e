"""The AWS executor: EC2 reboot and ECS force-new-deployment, each under its own scoped STS session.

Sentinel's standing identity may only call ``sts:AssumeRole`` on the configured role. For
every action it assumes that role with:

- an inline session ``Policy`` allowing exactly one API action on exactly one resource
  ARN (``ec2:RebootInstances`` on ``arn:...:instance/<id>``, ``ecs:UpdateService`` on
  ``arn:...:service/<cluster>/<service>``): the session can do nothing else even if the
  role can;
- ``DurationSeconds`` 900, the shortest STS allows;
- ``RoleSessionName`` ``<prefix>-<incident id>`` (CloudTrail's userIdentity shows it).

The result records the session policy document (exact JSON sent), the assumed-role ARN
and the session's expiry under ``jit``, never the access key, secret key or session
token. Mutating calls are sent once (no SDK retries); a 4xx answer means AWS refused
and nothing ran, a lost or 5xx answer may have run.

Reconcile: an EC2 reboot leaves no state to prove it happened (None). For ECS, a
deployment created at or after the intent's start time (``intent_started_at``) proves
the forced deployment; without one, None.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.config  # type: ignore[import-untyped]
import botocore.exceptions  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, field_validator

from sentinel.core.clock import utcnow
from sentinel.executors.base import (
    ECS_FORCE_NEW_DEPLOYMENT,
    REBOOT_EC2_INSTANCE,
    ActionCall,
    Stopwatch,
    envelope,
    error_text,
    parse_action,
    refused,
    unsupported_action,
)
from sentinel.executors.jit import JitGrant, incident_id_from_key, sanitize

log = logging.getLogger("sentinel.executors.aws")

# The catalog's shapes (policy/actions.py), repeated because executors may not import policy.
_INSTANCE_ID = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
_ECS_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
_ROLE_ARN = re.compile(r"^arn:(aws[a-z-]*):iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")

SESSION_DURATION_SECONDS = 900  # STS minimum
SESSION_NAME_MAX = 64  # STS RoleSessionName: [\w+=,.@-]{2,64}
POLICY_MAX_CHARS = 2048  # packed session policy limit (inline + managed ARNs)
_LIVE_STATES = ["pending", "running", "stopping", "stopped"]
_INVENTORY_ACTIONS = [
    "ec2:DescribeInstances",
    "ecs:ListClusters",
    "ecs:ListServices",
    "ecs:DescribeServices",
]


class AwsSettings(BaseModel):
    """AWS executor configuration: the role to assume, where, and how long to wait."""

    model_config = ConfigDict(extra="forbid")

    role_arn: str | None = None  # the action role; Sentinel's identity may only assume it
    inventory_role_arn: str | None = None  # read-only role for inventory; default role_arn
    external_id: str | None = None
    region: str = "us-east-1"
    endpoint_url: str | None = None  # e.g. a moto server; None = the real AWS endpoints
    profile: str | None = None  # base identity profile; None = the default chain
    session_duration_seconds: int = Field(default=SESSION_DURATION_SECONDS, ge=900, le=43200)
    session_name_prefix: str = Field(default="sentinel", pattern=r"^[\w+=,.@-]{1,20}$")
    ecs_clusters: list[str] = Field(default_factory=list)  # inventory; empty = every cluster
    service_tag: str = "service"  # the tag whose value names a resource's service
    connect_timeout_seconds: float = Field(default=5.0, gt=0)
    read_timeout_seconds: float = Field(default=20.0, gt=0)

    @field_validator("role_arn", "inventory_role_arn")
    @classmethod
    def _arn(cls, value: str | None) -> str | None:
        if value is not None and not _ROLE_ARN.match(value):
            raise ValueError(f"{value!r} is not an IAM role ARN")
        return value

    def is_configured(self) -> bool:
        """Whether a role to assume is configured."""
        return self.role_arn is not None


@dataclass(frozen=True)
class _Request:
    """A validated action, with the one API call and resource its session may touch."""

    call: ActionCall
    api: str  # "ec2:RebootInstances" | "ecs:UpdateService"
    resource_arn: str
    fields: dict[str, str]


@dataclass(frozen=True)
class _Session:
    """An assumed-role session: clients come from ``boto``; ``describe`` is what may be recorded."""

    boto: boto3.Session
    describe: dict[str, Any]
    grant: JitGrant


class _StsFailed(Exception):
    """AssumeRole failed; the message is the full error."""


def session_policy(actions: list[str], resources: list[str]) -> dict[str, Any]:
    """An IAM policy document allowing exactly these actions on exactly these resources."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "SentinelJustInTime",
                "Effect": "Allow",
                "Action": list(actions),
                "Resource": list(resources),
            }
        ],
    }


def session_name(prefix: str, idempotency_key: str) -> str:
    """``<prefix>-<incident id>``, limited to STS's RoleSessionName charset and 64 chars."""
    name = sanitize(f"{prefix}-{incident_id_from_key(idempotency_key)}", SESSION_NAME_MAX)
    return name if len(name) >= 2 else f"{prefix}-x"


class AwsExecutor:
    """Runs ``reboot_ec2_instance`` and ``ecs_force_new_deployment`` under per-action STS sessions."""

    name = "aws"
    supported_actions: frozenset[str] = frozenset({REBOOT_EC2_INSTANCE, ECS_FORCE_NEW_DEPLOYMENT})

    def __init__(
        self,
        settings: AwsSettings,
        *,
        session: boto3.Session | None = None,
        intent_started_at: Callable[[str], datetime | None] | None = None,
    ) -> None:
        if settings.role_arn is None:
            raise ValueError("aws: role_arn is required")
        m = _ROLE_ARN.match(settings.role_arn)
        assert m is not None  # checked by the settings validator
        self.partition, self.account_id = m.group(1), m.group(2)
        self.settings = settings
        self.role_arn = settings.role_arn
        self._base = session or boto3.Session(
            profile_name=settings.profile, region_name=settings.region
        )
        self._intent_started_at = intent_started_at
        timeouts: dict[str, Any] = {
            "region_name": settings.region,
            "connect_timeout": settings.connect_timeout_seconds,
            "read_timeout": settings.read_timeout_seconds,
        }
        # A state-changing call is sent once: a retried reboot reboots twice.
        self._once = botocore.config.Config(
            **timeouts, retries={"total_max_attempts": 1, "mode": "standard"}
        )
        self._reads = botocore.config.Config(
            **timeouts, retries={"max_attempts": 3, "mode": "standard"}
        )

    # -- the Executor port -----------------------------------------------------------------

    def execute(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
        """Assume the role scoped to this one action and resource, then make the one call."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return req
        sw = Stopwatch()
        base = self._result_base(req, idempotency_key)
        policy = session_policy([req.api], [req.resource_arn])
        try:
            sess = self._assume(self.role_arn, policy, idempotency_key)
        except _StsFailed as exc:
            return {
                "ok": False,
                **base,
                **_policy_fields(policy),
                "stage": "assume_role",
                "may_have_run": False,
                "error": str(exc),
                **sw.stamp(),
            }
        base.update(sess.describe, jit=sess.grant.as_dict())
        if req.api == "ec2:RebootInstances":
            out = self._reboot(sess, req)
        else:
            out = self._force_deployment(sess, req)
        return {**base, **out, **sw.stamp()}

    def reconcile(self, action: dict[str, Any], idempotency_key: str) -> dict[str, Any] | None:
        """ECS: the deployment created after the intent, if any; EC2 reboot: None (no trace)."""
        req = self._validate(action, idempotency_key)
        if isinstance(req, dict):
            return {**req, "reconciled": True}
        if req.api != "ecs:UpdateService" or self._intent_started_at is None:
            return None
        since = self._intent_started_at(idempotency_key)
        if since is None:
            return None
        since = _utc(since)
        policy = session_policy(["ecs:DescribeServices"], [req.resource_arn])
        try:
            sess = self._assume(self.role_arn, policy, idempotency_key)
            ecs = sess.boto.client(
                "ecs", endpoint_url=self.settings.endpoint_url, config=self._reads
            )
            found = ecs.describe_services(
                cluster=req.fields["cluster"], services=[req.fields["service"]]
            )
        except (_StsFailed, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            log.warning("reconcile %s: cannot describe the service", idempotency_key, exc_info=True)
            return None
        services = found.get("services") or []
        if not services:
            return None
        newer = [d for d in services[0].get("deployments", []) if _utc(d["createdAt"]) >= since]
        if not newer:
            return None
        newest = max(newer, key=lambda d: _utc(d["createdAt"]))
        return {
            "ok": True,
            **self._result_base(req, idempotency_key),
            **sess.describe,
            "jit": sess.grant.as_dict(),
            "deployment": _deployment(newest),
            "reconciled": True,
            "reconciled_from": f"ecs:DescribeServices: deployment {newest.get('id')} created at"
            f" {_utc(newest['createdAt']).isoformat()}, at or after the intent at"
            f" {since.isoformat()}",
            "may_have_run": True,
        }

    # -- read-only facts for the policy ----------------------------------------------------

    def inventory(self) -> dict[str, Any]:
        """EC2 instances and ECS services that exist now (policy.facts shapes), plus ``errors``.

        Read under the inventory role with a session policy allowing only the four read
        calls. A failed read leaves its list empty (no target is valid) and says why.
        """
        out: dict[str, Any] = {"ec2_instances": [], "ecs_services": [], "errors": []}
        role = self.settings.inventory_role_arn or self.role_arn
        policy = session_policy(_INVENTORY_ACTIONS, ["*"])
        try:
            sess = self._assume(role, policy, "inventory")
        except _StsFailed as exc:
            out["errors"].append(f"assume_role: {exc}")
            return out
        out["read_as"] = sess.describe["assumed_role_arn"]
        try:
            out["ec2_instances"] = list(self._instances(sess))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            out["errors"].append(f"ec2:DescribeInstances: {error_text(exc)}")
        try:
            out["ecs_services"] = list(self._services(sess))
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            out["errors"].append(f"ecs: {error_text(exc)}")
        return out

    def _instances(self, sess: _Session) -> Iterator[dict[str, Any]]:
        ec2 = sess.boto.client("ec2", endpoint_url=self.settings.endpoint_url, config=self._reads)
        pages = ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "instance-state-name", "Values": _LIVE_STATES}]
        )
        for page in pages:
            for reservation in page.get("Reservations", []):
                for inst in reservation.get("Instances", []):
                    tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
                    yield {
                        "instance_id": inst["InstanceId"],
                        "name": tags.get("Name"),
                        "tags": tags,
                        "service": tags.get(self.settings.service_tag),
                    }

    def _services(self, sess: _Session) -> Iterator[dict[str, Any]]:
        ecs = sess.boto.client("ecs", endpoint_url=self.settings.endpoint_url, config=self._reads)
        clusters = list(self.settings.ecs_clusters)
        if not clusters:
            for page in ecs.get_paginator("list_clusters").paginate():
                clusters.extend(arn.rsplit("/", 1)[-1] for arn in page.get("clusterArns", []))
        for cluster in sorted(clusters):
            arns: list[str] = []
            for page in ecs.get_paginator("list_services").paginate(cluster=cluster):
                arns.extend(page.get("serviceArns", []))
            for i in range(0, len(arns), 10):  # DescribeServices takes at most 10
                found = ecs.describe_services(
                    cluster=cluster, services=arns[i : i + 10], include=["TAGS"]
                )
                for svc in found.get("services", []):
                    if svc.get("status") == "INACTIVE":
                        continue
                    tags = {t["key"]: t["value"] for t in svc.get("tags", []) or []}
                    yield {
                        "cluster": cluster,
                        "name": svc["serviceName"],
                        "tags": tags,
                        "service": tags.get(self.settings.service_tag),
                    }

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
        where = f"arn:{self.partition}:%s:{self.settings.region}:{self.account_id}"
        if call.action_id == REBOOT_EC2_INSTANCE:
            unknown = sorted(set(p) - {"instance_id"})
            if unknown:
                return refused(self.name, action, key, f"unknown parameters {unknown}")
            iid = p.get("instance_id")
            if not isinstance(iid, str) or not _INSTANCE_ID.match(iid):
                return refused(
                    self.name, action, key, f"params.instance_id {iid!r} is not an instance id"
                )
            return _Request(
                call=call,
                api="ec2:RebootInstances",
                resource_arn=f"{where % 'ec2'}:instance/{iid}",
                fields={"instance_id": iid},
            )
        unknown = sorted(set(p) - {"cluster", "service"})
        if unknown:
            return refused(self.name, action, key, f"unknown parameters {unknown}")
        cluster, service = p.get("cluster"), p.get("service")
        for label, value in (("cluster", cluster), ("service", service)):
            if not isinstance(value, str) or not _ECS_NAME.match(value):
                return refused(
                    self.name, action, key, f"params.{label} {value!r} is not an ECS name"
                )
        assert isinstance(cluster, str) and isinstance(service, str)
        return _Request(
            call=call,
            api="ecs:UpdateService",
            resource_arn=f"{where % 'ecs'}:service/{cluster}/{service}",
            fields={"cluster": cluster, "service": service},
        )

    # -- the session -----------------------------------------------------------------------

    def _assume(self, role_arn: str, policy: dict[str, Any], key: str) -> _Session:
        """AssumeRole with the inline session policy; raises _StsFailed with the full error."""
        s = self.settings
        doc = json.dumps(policy, separators=(",", ":"))
        if len(doc) > POLICY_MAX_CHARS:
            raise _StsFailed(f"session policy is {len(doc)} chars; STS allows {POLICY_MAX_CHARS}")
        name = session_name(s.session_name_prefix, key)
        kwargs: dict[str, Any] = {
            "RoleArn": role_arn,
            "RoleSessionName": name,
            "Policy": doc,
            "DurationSeconds": s.session_duration_seconds,
        }
        if s.external_id is not None:
            kwargs["ExternalId"] = s.external_id
        try:
            sts = self._base.client("sts", endpoint_url=s.endpoint_url, config=self._reads)
            issued = utcnow()
            answer = sts.assume_role(**kwargs)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            raise _StsFailed(error_text(exc)) from exc
        creds = answer["Credentials"]
        user = answer.get("AssumedRoleUser", {})
        expires = _utc(creds["Expiration"])
        boto = boto3.Session(
            aws_access_key_id=creds["AccessKeyId"],
            aws_secret_access_key=creds["SecretAccessKey"],
            aws_session_token=creds["SessionToken"],
            region_name=s.region,
        )
        describe = {
            "role_arn": role_arn,
            "assumed_role_arn": user.get("Arn"),
            "assumed_role_id": user.get("AssumedRoleId"),
            "session_name": name,
            "session_duration_seconds": s.session_duration_seconds,
            "session_expires_at": expires.isoformat(),
            "packed_policy_size": answer.get("PackedPolicySize"),
            **_policy_fields(policy),
        }
        grant = JitGrant(
            mechanism="sts_assume_role",
            identity=str(user.get("Arn") or f"{role_arn} as {name}"),
            issued_at=issued,
            expires_at=expires,
            scope={
                "actions": list(policy["Statement"][0]["Action"]),
                "resources": list(policy["Statement"][0]["Resource"]),
                "role_arn": role_arn,
                "session_name": name,
            },
        )
        return _Session(boto=boto, describe=describe, grant=grant)

    # -- the two calls ---------------------------------------------------------------------

    def _result_base(self, req: _Request, key: str) -> dict[str, Any]:
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
            "region": self.settings.region,
            "api": req.api,
            "resource_arn": req.resource_arn,
            **req.fields,
        }

    def _reboot(self, sess: _Session, req: _Request) -> dict[str, Any]:
        iid = req.fields["instance_id"]
        request = {"InstanceIds": [iid]}
        ec2 = sess.boto.client("ec2", endpoint_url=self.settings.endpoint_url, config=self._once)
        try:
            answer = ec2.reboot_instances(**request)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            return {"ok": False, "request": request, "stage": "call", **_aws_error(exc)}
        return {
            "ok": True,
            "request": request,
            **_meta(answer),
            "may_have_run": True,
            "note": "RebootInstances queues a reboot; the instance restarts shortly after",
        }

    def _force_deployment(self, sess: _Session, req: _Request) -> dict[str, Any]:
        request = {
            "cluster": req.fields["cluster"],
            "service": req.fields["service"],
            "forceNewDeployment": True,
        }
        ecs = sess.boto.client("ecs", endpoint_url=self.settings.endpoint_url, config=self._once)
        try:
            answer = ecs.update_service(**request)
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            return {"ok": False, "request": request, "stage": "call", **_aws_error(exc)}
        service = answer.get("service", {})
        deployments = service.get("deployments", [])
        primary = next((d for d in deployments if d.get("status") == "PRIMARY"), None)
        return {
            "ok": True,
            "request": request,
            **_meta(answer),
            "service_arn": service.get("serviceArn"),
            "deployment": _deployment(primary) if primary else None,
            "deployments": [_deployment(d) for d in deployments],
            "may_have_run": True,
        }


def _policy_fields(policy: dict[str, Any]) -> dict[str, Any]:
    doc = json.dumps(policy, separators=(",", ":"))
    return {"session_policy": policy, "session_policy_json": doc}


def _meta(answer: dict[str, Any]) -> dict[str, Any]:
    meta = answer.get("ResponseMetadata", {})
    return {"aws_request_id": meta.get("RequestId"), "http_status": meta.get("HTTPStatusCode")}


def _aws_error(exc: Exception) -> dict[str, Any]:
    """The full error and whether the call may have changed anything."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        return {
            "error": error_text(exc),
            "error_code": err.get("Code"),
            "http_status": status or None,
            "aws_request_id": exc.response.get("ResponseMetadata", {}).get("RequestId"),
            # AWS answered 4xx: it refused and did nothing. 5xx: it may have acted.
            "rejected_by_aws": 400 <= status < 500,
            "may_have_run": not (400 <= status < 500),
        }
    # Could not connect at all: nothing was sent. Anything else (read timeout, connection
    # closed mid-response) may have reached AWS.
    not_sent = isinstance(
        exc,
        botocore.exceptions.EndpointConnectionError
        | botocore.exceptions.ConnectTimeoutError
        | botocore.exceptions.ParamValidationError
        | botocore.exceptions.NoCredentialsError,
    )
    return {"error": error_text(exc), "may_have_run": not not_sent}


def _deployment(d: dict[str, Any]) -> dict[str, Any]:
    created = d.get("createdAt")
    return {
        "id": d.get("id"),
        "status": d.get("status"),
        "task_definition": d.get("taskDefinition"),
        "rollout_state": d.get("rolloutState"),
        "desired_count": d.get("desiredCount"),
        "created_at": _utc(created).isoformat() if isinstance(created, datetime) else created,
    }


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
