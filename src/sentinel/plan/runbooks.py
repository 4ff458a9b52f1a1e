"""The runbook planner: YAML maps an alert to one catalog action with parameters from labels and inventory.

It is the planner when no LLM is configured and the fallback when the LLM fails. It only
proposes: the policy engine decides, and checks every parameter against the inventory.

Parameter values in a runbook are literals or references:
  ``$labels.<name>``   the alert's label (the runbook does not apply if it is missing)
  ``$service``         the incident's service
  ``{previous_revision: {namespace: ..., deployment: ...}}``  the newest revision below current
  ``{replicas_plus: {namespace: ..., deployment: ..., by: 1, max: 10}}``  current replicas + by
  ``{replicas_times: {namespace: ..., deployment: ..., factor: 2, max: 10}}``  replicas × factor
  ``{redis_cluster_of: <service ref>}``  the inventory's Redis cluster serving that service
  ``{key_pattern_of: <cluster ref>}``  the first deletable key pattern the inventory lists for it

``match.alertname`` and label matchers are exact values or ``~<regex>`` (full match).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field

from sentinel.policy.actions import ProposedAction, parse_proposal
from sentinel.policy.facts import DeploymentFact, Inventory


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunbookMatch(_Strict):
    alertname: str
    # exact value, or "~<regex>" for a full-match regular expression
    labels: dict[str, str] = Field(default_factory=dict)


class Runbook(_Strict):
    id: str
    description: str
    match: RunbookMatch
    action: str
    params: dict[str, Any]


class RunbookFile(_Strict):
    version: int = 1
    runbooks: list[Runbook]


class NotApplicable(Exception):
    """A reference could not be resolved; the reason is recorded."""


def load_runbooks(paths: list[Path]) -> list[Runbook]:
    """Load and validate runbook files (a directory means every *.yaml in it, sorted)."""
    files: list[Path] = []
    for p in paths:
        files.extend(sorted(p.glob("*.yaml")) if p.is_dir() else [p])
    out: list[Runbook] = []
    for f in files:
        doc = RunbookFile.model_validate(yaml.safe_load(f.read_text()))
        for rb in doc.runbooks:
            parsed = parse_proposal(ProposedAction(action_id=rb.action, params={}))
            if getattr(parsed, "code", None) == "not_in_catalog":
                raise ValueError(
                    f"{f}: runbook {rb.id}: action {rb.action!r} is not in the catalog"
                )
            out.append(rb)
    return out


def _value_matches(want: str, have: str) -> bool:
    return bool(re.fullmatch(want[1:], have)) if want.startswith("~") else have == want


def _matches(rb: Runbook, labels: dict[str, str]) -> bool:
    if not _value_matches(rb.match.alertname, labels.get("alertname", "")):
        return False
    for k, want in rb.match.labels.items():
        have = labels.get(k)
        if have is None:
            return False
        if not _value_matches(want, have):
            return False
    return True


def _ref(value: Any, labels: dict[str, str], service: str) -> Any:
    if isinstance(value, str) and value.startswith("$labels."):
        name = value[len("$labels.") :]
        if name not in labels:
            raise NotApplicable(f"the alert has no label {name!r}")
        return labels[name]
    if value == "$service":
        return service
    return value


def _deployment(
    args: dict[str, Any], labels: dict[str, str], service: str, inv: Inventory
) -> DeploymentFact:
    ns = _ref(args["namespace"], labels, service)
    name = _ref(args["deployment"], labels, service)
    dep = inv.deployment(ns, name)
    if dep is None:
        raise NotApplicable(f"deployment {ns}/{name} is not in the inventory")
    return dep


def _scaled(dep: DeploymentFact, target: int, cap: int) -> int:
    target = min(target, cap)
    if target <= dep.replicas:
        raise NotApplicable(
            f"deployment {dep.namespace}/{dep.name} is already at the runbook's maximum"
        )
    return target


def _resolve(value: Any, labels: dict[str, str], service: str, inv: Inventory) -> Any:
    if not isinstance(value, dict):
        return _ref(value, labels, service)
    if len(value) != 1:
        raise NotApplicable(f"a resolver is a one-key mapping, got {sorted(value)}")
    ((kind, args),) = value.items()
    if kind == "previous_revision":
        dep = _deployment(args, labels, service, inv)
        older = sorted(r for r in dep.revisions if r < dep.current_revision)
        if not older:
            raise NotApplicable(
                f"deployment {dep.namespace}/{dep.name} has no revision before {dep.current_revision}"
            )
        return older[-1]
    if kind == "replicas_plus":
        dep = _deployment(args, labels, service, inv)
        return _scaled(dep, dep.replicas + int(args.get("by", 1)), int(args.get("max", 10)))
    if kind == "replicas_times":
        dep = _deployment(args, labels, service, inv)
        factor = int(args.get("factor", 2))
        return _scaled(dep, max(dep.replicas, 1) * factor, int(args.get("max", 10)))
    if kind == "key_pattern_of":
        cname = _ref(args, labels, service)
        cluster = inv.redis_cluster(cname)
        if cluster is None:
            raise NotApplicable(f"Redis cluster {cname!r} is not in the inventory")
        if not cluster.key_patterns:
            raise NotApplicable(f"Redis cluster {cname!r} declares no deletable key pattern")
        return cluster.key_patterns[0]
    if kind == "redis_cluster_of":
        svc = _ref(args, labels, service)
        found = [c.name for c in inv.redis_clusters if c.service == svc]
        if not found:
            raise NotApplicable(f"no Redis cluster in the inventory serves {svc!r}")
        return sorted(found)[0]
    raise NotApplicable(f"unknown resolver {kind!r}")


class RunbookPlanner:
    """Proposes the first matching runbook's action."""

    name = "runbook"

    def __init__(self, runbooks: list[Runbook]) -> None:
        self.runbooks = runbooks

    def plan(
        self, incident: dict[str, Any], rca: dict[str, Any] | None, context: dict[str, Any]
    ) -> dict[str, Any]:
        """Return {action_id, params, reasoning, runbook_id}, or {action_id: None, reason}."""
        labels: dict[str, str] = dict((incident.get("source_alert") or {}).get("labels") or {})
        service = str(incident.get("service", ""))
        inv = Inventory.model_validate(context.get("inventory") or {})
        tried: list[str] = []
        for rb in self.runbooks:
            if not _matches(rb, labels):
                continue
            try:
                params = {k: _resolve(v, labels, service, inv) for k, v in rb.params.items()}
            except (NotApplicable, KeyError, TypeError, ValueError) as exc:
                tried.append(f"{rb.id}: {exc}")
                continue
            return {
                "action_id": rb.action,
                "params": params,
                "reasoning": f"runbook {rb.id}: {rb.description}",
                "runbook_id": rb.id,
            }
        why = "; ".join(tried) if tried else f"no runbook matches alert {labels.get('alertname')!r}"
        return {"action_id": None, "reason": why}
