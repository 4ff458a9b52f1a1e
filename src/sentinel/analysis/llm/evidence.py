"""The model's evidence: the snapshot, the causal ranking, the inventory and tool results.

Every item gets an id the model cites (`alert:0`, `snapshot:prometheus:error_rate`,
`ranking:1`, `tool:<call id>`). Everything the evidence names goes into a vocabulary;
a service, metric, pod, deployment or revision the model names outside it is flagged
and lowers the confidence, which the evidence also caps:

    no root cause found                         -> 0
    no valid evidence reference cited           -> at most 0.3
    each name absent from the evidence          -> halved, and at most 0.4
    root cause outside the ranking's top 5      -> at most 0.6
    no source answered and no tool succeeded    -> at most 0.2
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sentinel.analysis.llm.schemas import RcaOutput
from sentinel.core.redact import redact
from sentinel.policy.actions import (
    Action,
    EcsForceNewDeployment,
    FlushRedisCache,
    RebootEc2Instance,
    RestartKubernetesPod,
    RollbackDeployment,
    RolloutRestartDeployment,
    RunSshCommand,
    ScaleDeployment,
)
from sentinel.policy.facts import Inventory

__all__ = [
    "Evidence",
    "bind_action",
    "bind_rca",
    "compact",
    "compact_lines",
    "injection_flags",
    "ranking_of",
    "unknown_names",
]

_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:/-]*")
_SPLIT = re.compile(r"[^a-z0-9_-]+")
# Identifiers worth checking in free text: hyphen/underscore-joined words with a digit or
# an underscore (pod names, hashed replica sets, metric names); plain prose is left alone.
_CANDIDATE = re.compile(r"(?<![a-z0-9_.-])[a-z][a-z0-9]*(?:[-_][a-z0-9]+)+(?![a-z0-9_-])")
_REVISION = re.compile(r"\brev(?:ision)?\s*#?\s*(\d{1,9})\b")
_LABEL_KEYS = ("service", "job", "app", "deployment", "namespace", "pod", "instance", "container")


def _tokens(text: str) -> set[str]:
    out: set[str] = set()
    for tok in _TOKEN.findall(text.lower()):
        out.add(tok.strip(".:/-"))
        out.update(p for p in _SPLIT.split(tok) if p)
    return out


def _leaves(value: Any, depth: int = 0) -> Iterable[Any]:
    if depth > 8:
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            yield str(k)
            yield from _leaves(v, depth + 1)
    elif isinstance(value, list | tuple):
        for v in value[:2000]:
            yield from _leaves(v, depth + 1)
    else:
        yield value


def ranking_of(snapshot: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The causal engine's ranking carried by the snapshot ([{service, metric, score}, ...])."""
    for key in ("causal", "causal_rca", "causal_ranking", "ranking", "rca"):
        value = snapshot.get(key)
        if isinstance(value, Mapping):
            value = value.get("ranking")
        if isinstance(value, list):
            return [dict(r) for r in value if isinstance(r, Mapping)]
    return []


def compact(data: Any, max_series: int = 8) -> Any:
    """A short summary of a query's data: per series its labels, point count and range."""
    if isinstance(data, Mapping) and isinstance(data.get("series"), list):
        series = data["series"]
        out = []
        for s in series[:max_series]:
            values = [v for v in s.get("values", []) if isinstance(v, list | tuple) and len(v) == 2]
            nums = [_num(v[1]) for v in values]
            nums_ok = [n for n in nums if n is not None]
            out.append(
                {
                    "labels": s.get("metric", {}),
                    "points": len(values),
                    "first": nums[0] if nums else None,
                    "last": nums[-1] if nums else None,
                    "min": min(nums_ok) if nums_ok else None,
                    "max": max(nums_ok) if nums_ok else None,
                }
            )
        return {"series": out, "series_total": len(series)}
    if isinstance(data, Mapping) and isinstance(data.get("lines"), list):
        return compact_lines(data["lines"])
    if isinstance(data, Mapping) and isinstance(data.get("result"), list):
        return {
            "result": [
                {"labels": r.get("metric", {}), "value": _num((r.get("value") or [None, None])[1])}
                for r in data["result"][:max_series]
                if isinstance(r, Mapping)
            ],
            "series_total": len(data["result"]),
        }
    return data


_HEX_OR_NUM = re.compile(r"\b[0-9a-f]{8,}\b|\d+(?:\.\d+)?")


def compact_lines(lines: list[Any], max_distinct: int = 8, max_chars: int = 300) -> dict[str, Any]:
    """Log lines as their distinct messages, most frequent first: per message one example
    line (cut to max_chars), how many lines had that shape, the first and last time and the
    pods. Lines differing only in numbers or hex ids count as one shape."""
    groups: dict[str, dict[str, Any]] = {}
    for ln in lines:
        entry = ln if isinstance(ln, Mapping) else {"line": ln}
        text = str(entry.get("line") if entry.get("line") is not None else entry)
        key = _HEX_OR_NUM.sub("#", text)
        g = groups.get(key)
        at = entry.get("at")
        pod = (entry.get("labels") or {}).get("pod") if isinstance(entry, Mapping) else None
        if g is None:
            g = groups[key] = {"line": text[:max_chars], "count": 0, "first": at, "last": at}
            g["pods"] = set()
        g["count"] += 1
        if at is not None:
            g["first"] = min(g["first"] or at, at)
            g["last"] = max(g["last"] or at, at)
        if pod:
            g["pods"].add(str(pod))
    ranked = sorted(groups.values(), key=lambda g: -int(g["count"]))
    out = []
    for g in ranked[:max_distinct]:
        item = {k: v for k, v in g.items() if k != "pods" and v is not None}
        if g["pods"]:
            item["pods"] = sorted(g["pods"])[:5]
        out.append(item)
    return {"lines_total": len(lines), "distinct": len(groups), "top": out}


def _num(v: Any) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return round(f, 6) if f == f else None


@dataclass
class Evidence:
    """Evidence items by id, the ranking, and the vocabulary of names they contain."""

    items: dict[str, dict[str, Any]] = field(default_factory=dict)
    full: dict[str, Any] = field(default_factory=dict)
    ranking: list[dict[str, Any]] = field(default_factory=list)
    known: set[str] = field(default_factory=set)
    known_ints: set[int] = field(default_factory=set)
    answered: int = 0
    tool_ok: int = 0
    inventory: Inventory = field(default_factory=Inventory)

    @classmethod
    def build(
        cls,
        incident: Mapping[str, Any],
        snapshot: Mapping[str, Any],
        inventory: Mapping[str, Any] | None = None,
    ) -> Evidence:
        """Collect the evidence of one incident (secrets redacted)."""
        ev = cls()
        incident = redact(dict(incident))
        snapshot = redact(dict(snapshot))
        ev.learn(incident.get("service"))
        alerts = list(snapshot.get("alerts") or [])
        source_alert = incident.get("source_alert")
        if not alerts and isinstance(source_alert, Mapping):
            alerts = [source_alert]
        for i, a in enumerate(alerts):
            if not isinstance(a, Mapping):
                continue
            item = {
                "kind": "alert",
                "alertname": a.get("alertname") or (a.get("labels") or {}).get("alertname"),
                "labels": a.get("labels") or {},
                "annotations": a.get("annotations") or {},
                "starts_at": a.get("starts_at") or a.get("startsAt"),
            }
            ev.add(f"alert:{i}", item, a)
        data = snapshot.get("data") or snapshot.get("results") or {}
        meta = snapshot.get("sources") or {}
        names = (
            list(dict.fromkeys([*data.keys(), *meta.keys()])) if isinstance(data, Mapping) else []
        )
        for name in names:
            src = data.get(name) if isinstance(data, Mapping) else None
            if not isinstance(src, Mapping):
                src = meta.get(name) or {}
            ev.add_source(str(name), src)
        for i, r in enumerate(ranking_of(snapshot)):
            ev.ranking.append(r)
            ev.add(f"ranking:{i}", {"kind": "ranking", "rank": i + 1, **r}, r)
        ev.inventory = Inventory.model_validate(inventory or {})
        ev.learn(ev.inventory.model_dump(mode="json"))
        for d in ev.inventory.deployments:
            ev.known_ints.update([d.current_revision, *d.revisions])
        return ev

    def add_source(self, name: str, src: Mapping[str, Any]) -> None:
        """Add one context source: one item per query (or one for the source)."""
        self.learn(name)
        if src.get("ok"):
            self.answered += 1
        queries = src.get("queries") or []
        if not queries:
            self.add(
                f"snapshot:{name}",
                {"kind": "source", "source": name, "ok": src.get("ok"), "error": src.get("error")},
                src,
            )
            return
        for j, q in enumerate(queries):
            if isinstance(q, str):  # the workflow's metadata shape: just the query text
                q = {"name": str(j), "query": q, "ok": src.get("ok")}
            if not isinstance(q, Mapping):
                continue
            qname = str(q.get("name") or j)
            item = {
                "kind": "query",
                "source": name,
                "query": q.get("query"),
                "ok": q.get("ok"),
                "error": q.get("error"),
                "truncated": q.get("truncated", False),
                "summary": compact(q.get("data")),
            }
            self.add(f"snapshot:{name}:{qname}", item, q)

    def add(self, item_id: str, item: dict[str, Any], full: Any) -> None:
        """Register an item and learn the names in it."""
        self.items[item_id] = item
        self.full[item_id] = full
        self.learn(full)

    def add_tool_result(self, call_id: str, envelope: Mapping[str, Any]) -> None:
        """A tool's envelope becomes evidence `tool:<call id>`."""
        if envelope.get("ok"):
            self.tool_ok += 1
        self.items[f"tool:{call_id}"] = {"kind": "tool", "query": envelope.get("query")}
        self.full[f"tool:{call_id}"] = envelope
        self.learn(envelope.get("query"))
        self.learn(envelope.get("data"))

    def learn(self, value: Any) -> None:
        """Add every name found in a value to the vocabulary."""
        for leaf in _leaves(value):
            if isinstance(leaf, bool) or leaf is None:
                continue
            if isinstance(leaf, int):
                self.known_ints.add(leaf)
                continue
            if isinstance(leaf, float):
                continue
            text = str(leaf)
            if len(text) > 20_000:
                text = text[:20_000]
            self.known.update(_tokens(text))
            if text.isdigit() and len(text) < 10:
                self.known_ints.add(int(text))

    # ------------------------------------------------------------ checks

    def knows(self, name: str) -> bool:
        """Whether a name (or every part of a dotted/slashed name) appears in the evidence."""
        n = name.strip().lower()
        if not n:
            return True
        if n in self.known:
            return True
        parts = [p for p in re.split(r"[/:\s]+", n) if p]
        return bool(parts) and all(p in self.known for p in parts)

    def ref_ok(self, ref: str) -> bool:
        """Whether an evidence reference names an item (or a prefix of one, like `snapshot:x`)."""
        if ref in self.items:
            return True
        return any(i.startswith(ref + ":") for i in self.items)

    def services(self) -> set[str]:
        """Service-like names: the incident's, alert labels, ranking, inventory services."""
        out: set[str] = set()
        for item in self.items.values():
            labels = item.get("labels")
            if isinstance(labels, Mapping):
                out.update(str(labels[k]) for k in _LABEL_KEYS if k in labels)
            if item.get("kind") == "ranking" and item.get("service"):
                out.add(str(item["service"]))
        return out

    def prompt_items(
        self,
        max_chars: int,
        render: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> tuple[dict[str, Any], list[str]]:
        """Items for the prompt (as `render` shows them) until `max_chars`; returns (items,
        the ids left out).

        Alerts and the ranking's top 5 go first, then the alert queries, the metrics the
        top 3 candidates deviate on, logs, deployments and commits, then the rest of the
        snapshot in its order, then the rest of the ranking: a large source must not push
        the causal ranking out. A summary equal to a shown item's is "same as <id>"."""

        # The metrics the top candidates deviate on (snapshot:<source>:<metric>).
        top_metrics = {str(r.get("metric")) for r in self.ranking[:3] if r.get("metric")}

        def priority(entry: tuple[str, dict[str, Any]]) -> int:
            item_id, item = entry
            if item.get("kind") == "alert":
                return 0
            if item.get("kind") == "ranking":
                return 1 if int(item.get("rank") or 0) <= 5 else 4
            if (
                item.get("source") in _FIRST_SOURCES
                or ":alert:" in item_id
                or item_id.rsplit(":", 1)[-1] in top_metrics
            ):
                return 2
            return 3

        out: dict[str, Any] = {}
        used = 0
        omitted: list[str] = []
        seen: dict[str, str] = {}
        for item_id, item in sorted(self.items.items(), key=priority):
            if item.get("kind") == "tool":
                continue
            summary = ""
            if render is not None:
                item = render(item)
                if item.get("summary"):
                    summary = json.dumps(item["summary"], sort_keys=True, default=str)
                    if summary in seen:
                        item = {**item, "summary": f"same as {seen[summary]}"}
            size = len(json.dumps(item, default=str, separators=(",", ":")))  # as rendered
            if used + size > max_chars:
                omitted.append(item_id)
                continue
            out[item_id] = item
            used += size
            if summary:
                seen.setdefault(summary, item_id)
        return out, omitted


# Sources the prompt shows before the rest of the snapshot: what changed, what fails.
_FIRST_SOURCES = frozenset({"loki", "deployments", "git"})


def _flag(kind: str, **kw: Any) -> dict[str, Any]:
    return {"kind": kind, **kw}


def bind_rca(rca: RcaOutput, ev: Evidence) -> tuple[float, list[dict[str, Any]], list[str]]:
    """Check an RCA against the evidence: (capped confidence, flags, reasons for the caps)."""
    flags: list[dict[str, Any]] = []
    caps: list[str] = []
    if not rca.root_cause_found:
        return 0.0, flags, ["no root cause found: confidence 0"]
    conf = rca.confidence
    names: list[tuple[str, str, str]] = []  # (kind, name, where)
    if rca.root_cause_service:
        names.append(("service", rca.root_cause_service, "root_cause_service"))
    names += [("service", link.service, "causal_chain") for link in rca.causal_chain]
    for e in rca.entities:
        if e.kind != "other":
            names.append((e.kind, e.name, "entities"))
    text = f"{rca.hypothesis}\n" + "\n".join(link.symptom for link in rca.causal_chain)
    names += [("name", tok, "hypothesis") for tok in _CANDIDATE.findall(text.lower())]
    seen: set[tuple[str, str]] = set()
    unknown = 0
    for kind, name, where in names:
        if (kind, name.lower()) in seen:
            continue
        seen.add((kind, name.lower()))
        ok = _revision_known(name, ev) if kind == "revision" else ev.knows(name)
        if not ok:
            unknown += 1
            flags.append(_flag("unknown_entity", entity_kind=kind, name=name, field=where))
    for m in _REVISION.finditer(text.lower()):
        if int(m.group(1)) not in ev.known_ints:
            unknown += 1
            flags.append(
                _flag("unknown_entity", entity_kind="revision", name=m.group(1), field="hypothesis")
            )
    if unknown:
        conf = min(conf * 0.5**unknown, 0.4)
        caps.append(f"{unknown} name(s) absent from the evidence: at most 0.4, halved for each")
    refs = list(rca.evidence_refs) + [r for link in rca.causal_chain for r in link.evidence_refs]
    bad = [r for r in dict.fromkeys(refs) if not ev.ref_ok(r)]
    for r in bad:
        flags.append(_flag("unknown_evidence_ref", ref=r))
    if not any(ev.ref_ok(r) for r in refs):
        conf = min(conf, 0.3)
        caps.append("no valid evidence reference cited: at most 0.3")
    if ev.ranking and rca.root_cause_service:
        top = [str(r.get("service", "")).lower() for r in ev.ranking[:5]]
        if rca.root_cause_service.lower() not in top:
            conf = min(conf, 0.6)
            caps.append("root cause outside the causal ranking's top 5: at most 0.6")
            flags.append(_flag("disagrees_with_ranking", service=rca.root_cause_service))
    if ev.answered == 0 and ev.tool_ok == 0:
        conf = min(conf, 0.2)
        caps.append("no context source answered and no tool succeeded: at most 0.2")
    return round(conf, 4), flags, caps


def _revision_known(name: str, ev: Evidence) -> bool:
    digits = re.sub(r"\D", "", name)
    return bool(digits) and int(digits[:9]) in ev.known_ints


def bind_action(action: Action, inv: Inventory) -> str | None:
    """Why the action's params name nothing in the inventory (None when they all exist)."""
    if isinstance(action, RestartKubernetesPod):
        if inv.pod(action.namespace, action.pod) is None:
            return f"pod {action.namespace}/{action.pod} is not in the inventory"
    elif isinstance(action, RolloutRestartDeployment | RollbackDeployment | ScaleDeployment):
        dep = inv.deployment(action.namespace, action.deployment)
        if dep is None:
            return f"deployment {action.namespace}/{action.deployment} is not in the inventory"
        if isinstance(action, RollbackDeployment):
            if action.to_revision == dep.current_revision:
                return f"revision {action.to_revision} is the current revision of {dep.name}"
            if action.to_revision not in dep.revisions:
                return (
                    f"revision {action.to_revision} of {dep.name} is not in the inventory "
                    f"(known: {sorted(dep.revisions)})"
                )
    elif isinstance(action, FlushRedisCache):
        cluster = inv.redis_cluster(action.cluster)
        if cluster is None:
            return f"redis cluster {action.cluster} is not in the inventory"
        if action.db is not None and action.db not in cluster.dbs:
            return f"db {action.db} is not a db of {cluster.name}"
        if action.key_pattern is not None and action.key_pattern not in cluster.key_patterns:
            return f"key pattern {action.key_pattern!r} is not allow-listed for {cluster.name}"
    elif isinstance(action, RunSshCommand):
        host = inv.host(action.host)
        if host is None:
            return f"host {action.host} is not in the inventory"
        if action.command_id not in inv.allowed_commands(host):
            return f"command {action.command_id} is not allowed on {host.name}"
    elif isinstance(action, RebootEc2Instance):
        if inv.ec2_instance(action.instance_id) is None:
            return f"instance {action.instance_id} is not in the inventory"
    elif isinstance(action, EcsForceNewDeployment):
        if inv.ecs_service(action.cluster, action.service) is None:
            return f"ECS service {action.cluster}/{action.service} is not in the inventory"
    elif action.read_only:
        return f"{action.action_id.value} is read-only: call the tool instead of proposing it"
    return None


def unknown_names(text: str, ev: Evidence) -> list[str]:
    """Identifier-like names in free text (pod names, metric names) absent from the evidence."""
    return [t for t in dict.fromkeys(_CANDIDATE.findall(text.lower())) if not ev.knows(t)]


# Phrases that try to steer a model from inside data. Seeing one does not change what
# the model may do (the catalog, the inventory check and the policy do that); it makes
# the attempt visible in the audit log.
_INJECTION = re.compile(
    r"(ignore (all |any |the )?(previous|prior|above|earlier) (instructions|rules|prompts?)"
    r"|disregard (all |the )?(previous|prior|above|system)"
    r"|new (system )?instructions|system prompt|system (notice|message|override)"
    r"|you are now|developer mode|note to the (ai|assistant|model)|\bai assistant"
    r"|approve (it|this|yourself|the action|automatically)|auto-?approve|self-?approv"
    r"|pre-?approved|skip the (policy|approval)"
    r"|mark (this|it|the)( action| proposal| change)? (as )?safe|risk(_level)?\s*[:=]\s*\"?safe"
    r"|set risk"
    r"|(delete|drop|wipe) (the )?(namespace|database|cluster)|kubectl delete|rm -rf"
    r"|curl [^\n]*\|\s*(ba)?sh|run (this|the following) (shell )?command"
    r"|<\|im_start\|>|\[/?inst\]|</?system>)",
    re.IGNORECASE,
)


def injection_flags(ev: Evidence) -> list[dict[str, Any]]:
    """Evidence items whose text looks like instructions to a model (one flag per item)."""
    out: list[dict[str, Any]] = []
    for item_id, full in ev.full.items():
        for leaf in _leaves(full):
            if isinstance(leaf, str) and (m := _INJECTION.search(leaf)):
                out.append(_flag("injection_suspected", evidence_id=item_id, match=m.group(0)))
                break
    return out
