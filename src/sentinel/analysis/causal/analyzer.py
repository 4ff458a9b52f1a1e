"""The public entry points: ``rank_case`` (offline cases) and ``CausalAnalyzer`` (the workflow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sentinel.analysis.causal.engine import Analysis, analyze_frame
from sentinel.analysis.causal.explain import chain, confidence, explanation, ranking
from sentinel.analysis.causal.series import MetricFrame, frame_from_snapshot, load_case

NO_CAUSE = "no root cause found"


def result_from_analysis(analysis: Analysis, target_service: str | None = None) -> dict[str, Any]:
    """The JSON-serializable result shared by the CLI and the workflow."""
    links = chain(analysis, target_service)
    rank = ranking(analysis)
    conf = confidence(analysis)
    text = explanation(analysis, links)
    return {
        "ranking": rank,
        "explanation": text,
        "chain": links,
        "confidence": conf,
        "onset": {"time": analysis.onset_time, "source": analysis.onset_source},
        "graph": analysis.graph_source,
    }


def rank_case(case_dir: Path) -> dict[str, Any]:
    """Rank root-cause candidates of one offline case (RCAEval layout); raises CaseError."""
    frame = load_case(Path(case_dir))
    return result_from_analysis(analyze_frame(frame))


def analyze_frame_json(frame: MetricFrame, target_service: str | None = None) -> dict[str, Any]:
    """``rank_case`` for an in-memory frame."""
    return result_from_analysis(analyze_frame(frame), target_service)


def _call_edges(incident: dict[str, Any], snapshot: dict[str, Any]) -> list[tuple[str, str]]:
    """A call graph if the snapshot or incident carries one (``{"edges": [[caller, callee]]}``)."""
    for doc in (incident, *[s for s in snapshot.values() if isinstance(s, dict)]):
        cg = doc.get("callgraph") if isinstance(doc, dict) else None
        if isinstance(cg, dict):
            edges = cg.get("edges")
            if isinstance(edges, list):
                return [(str(e[0]), str(e[1])) for e in edges if isinstance(e, list | tuple)]
    return []


def _alert_start(incident: dict[str, Any]) -> float | None:
    alert = incident.get("source_alert")
    if not isinstance(alert, dict):
        return None
    raw = alert.get("starts_at")
    if raw is None:
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        pass
    try:
        from datetime import datetime

        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


class CausalAnalyzer:
    """The deterministic analyzer of the RootCauseAnalysis step (no LLM, no I/O)."""

    name = "causal"

    def analyze(self, incident: dict[str, Any], snapshot: dict[str, Any]) -> dict[str, Any]:
        """Rank causes from the context snapshot's series; never raises."""
        service = str(incident.get("service") or "unknown") if isinstance(incident, dict) else ""
        try:
            frame = frame_from_snapshot(snapshot if isinstance(snapshot, dict) else {}, service)
            edges = _call_edges(incident if isinstance(incident, dict) else {}, snapshot)
            frame.callgraph = edges or None
            start = _alert_start(incident if isinstance(incident, dict) else {})
            # Prometheus alerts fire after their `for:` delay; the fault began before.
            frame.inject_time = None if start is None else start - 60.0
            analysis = analyze_frame(frame)
            result = result_from_analysis(analysis, service.replace("_", "-") or None)
        except Exception as exc:  # the workflow must get an answer, with the reason
            return _empty(f"analysis failed: {type(exc).__name__}: {exc}")
        if not result["ranking"] or result["ranking"][0]["score"] <= 0:
            return _empty(result["explanation"], points=len(frame.times))
        top = result["ranking"][0]
        metric = f" {top['metric']}" if top.get("metric") else ""
        hypothesis = f"root cause: {top['service']}{metric} — {result['explanation']}"
        evidence = [
            {
                "service": r.service,
                "metric": r.metric,
                "deviation_z": round(r.anomaly, 2),
                "unexplained_z": round(r.residual, 2),
                "explained_by_parents": round(r.explained, 3),
                "onset": r.onset,
            }
            for r in sorted(analysis.nodes, key=lambda r: -r.score)[:10]
        ]
        for svc, (ev, w) in analysis.event_boost.items():
            evidence.append(
                {"change": ev.kind, "service": svc, "time": ev.time, "weight": round(w, 3)}
            )
        return {
            "hypothesis": hypothesis,
            "ranking": result["ranking"],
            "chain": result["chain"],
            "confidence": result["confidence"],
            "evidence": evidence,
            "explanation": result["explanation"],
            "onset": result["onset"],
            "graph": result["graph"],
        }


def _empty(reason: str, points: int = 0) -> dict[str, Any]:
    return {
        "hypothesis": reason if reason.startswith(NO_CAUSE) else f"{NO_CAUSE}: {reason}",
        "ranking": [],
        "chain": [],
        "confidence": 0.0,
        "evidence": [{"reason": reason, "points": points}],
    }
