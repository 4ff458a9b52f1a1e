"""Runs the peer RCA methods on the generated cases (inside bench/rca/.venv, not Sentinel's env).

Writes ``bench/out/rca-peers/<method>__<dataset>.json``: per case the metric ranking (or
null on failure/timeout), the error if any, and the seconds it took. Each case runs in a
forked child with a timeout; a timeout or a crash is a miss. Graph-aware peers (CIRCA's
regression hypothesis testing, PyRCA HT and random walk) get the same metric-level graph
Sentinel builds from the call graph.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
warnings.filterwarnings("ignore")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "src"))  # Sentinel's graph rules only (numpy/pandas, no other deps)
from sentinel.analysis.causal.graph import parents_from_callgraph  # noqa: E402
from sentinel.analysis.causal.series import split_column  # noqa: E402

OUT = ROOT / "bench" / "out" / "rca-peers"
DATASET_NAME = "ob"  # RCAEval's preprocess needs a name, else `time` is ranked as a metric


def load(case: Path) -> tuple[pd.DataFrame, float, list[tuple[str, str]]]:
    df = pd.read_csv(case / "data.csv")
    inject = float((case / "inject_time.txt").read_text().strip())
    cg = case / "callgraph.json"
    edges = [tuple(e) for e in json.loads(cg.read_text())["edges"]] if cg.is_file() else []
    return df, inject, edges  # type: ignore[return-value]


def metric_edges(cols: list[str], edges: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(cause, effect) metric pairs: Sentinel's metric graph from the call graph."""
    nodes = [split_column(c) for c in cols]
    parents = parents_from_callgraph(nodes, edges)
    return [(cols[p], cols[j]) for j, ps in enumerate(parents) for p in ps]


def _split(df: pd.DataFrame, inject: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    x = df.drop(columns=["time"])
    x = x.loc[:, x.std() > 0]
    return x[df["time"] < inject], x[df["time"] >= inject]


def _nsigma_anomalous(normal: pd.DataFrame, abnormal: pd.DataFrame, k: float = 3.0) -> list[str]:
    mu, sd = normal.mean(), normal.std().replace(0, 1e-9)
    z = ((abnormal - mu) / sd).abs().max()
    out = [c for c in normal.columns if z[c] > k]
    return out or list(z.sort_values(ascending=False).index[:5])


def _adjacency(cols: list[str], medges: list[tuple[str, str]]) -> pd.DataFrame:
    adj = pd.DataFrame(0, index=cols, columns=cols)
    for a, b in medges:
        if a in adj.index and b in adj.columns:
            adj.loc[a, b] = 1
    return adj


def circa_rank(df: pd.DataFrame, inject: float, edges: list[tuple[str, str]]) -> list[str]:
    """CIRCA (regression-based hypothesis testing + descendant adjustment) from ``circa-clue``.

    RCAEval's ``rht`` wrapper cannot be used as is: it hard-codes a 1 s interval, a 120 s
    history and ``current = inject + 300``, and reverses the graph it is given. On CIRCA's own
    simulator (1 min steps, 10 abnormal points) that left ~2 training points and a test window
    past the data, so it scored 0. Here CIRCA's own classes get the case's real sampling
    interval, every baseline point as history (CIRCA's default is 120 points, at least
    that many are used when available), the post-injection points as the test window (at most
    120 s worth, at least CIRCA's default 10 points when the data has them), and the true
    metric graph with edges cause -> effect (CIRCA's ``parents`` are graph predecessors).
    """
    from datetime import timedelta

    import networkx as nx
    from circa.alg.ci import DAScorer, RHTScorer
    from circa.alg.common import Model
    from circa.graph.common import StaticGraphFactory
    from circa.model.case import CaseData
    from circa.model.data_loader import MemoryDataLoader
    from circa.model.graph import MemoryGraph, Node

    x = df.drop(columns=["time"])
    x = x.loc[:, x.std() > 0]
    cols = x.columns.to_list()
    t = df["time"].to_numpy(dtype=float)
    step = float(np.median(np.diff(t)))
    n_before = int((t < inject).sum())
    n_after = int((t >= inject).sum())
    detect = max(1, min(n_after, max(10, int(round(120.0 / step)))))
    lookup = n_before + detect
    # CaseData loads [detect_time - lookup * step, current]; the test window is the last
    # `detect` points (the post-injection ones), the training window everything before.
    current = float(t[t >= inject][detect - 1])
    node_of = {c: Node(*split_column(c)) for c in cols}
    data: dict[str, dict[str, Any]] = {}
    for c in cols:
        svc, met = split_column(c)
        data.setdefault(svc, {})[met] = x[c].to_numpy(dtype=float)

    class GridLoader(MemoryDataLoader):  # type: ignore[misc]
        """The data is already on a regular grid: slice it (CIRCA's own resampler calls
        ``fillna(method=...)``, which pandas 3 removed). Points before the data repeat the
        first one, as CIRCA's back-fill does."""

        def load(
            self, entity: str, metric: str, start: float, end: float, interval: Any, **kw: Any
        ) -> Any:
            v = self._data.get(entity, {}).get(metric)
            if v is None:
                return None
            i0 = int(np.searchsorted(t, start - 1e-6))
            i1 = int(np.searchsorted(t, end + 1e-6))
            pad = max(0, int(round((t[0] - start) / step)))
            out = np.concatenate([np.full(pad, v[0]), v[i0:i1]])
            return tuple(out.tolist())

    g = nx.DiGraph()
    g.add_nodes_from(node_of.values())
    g.add_edges_from((node_of[a], node_of[b]) for a, b in metric_edges(cols, edges))
    case = CaseData(
        data_loader=GridLoader(data),
        sli=next(iter(node_of.values())),
        detect_time=current,
        interval=timedelta(seconds=step),
        lookup_window=lookup,
        detect_window=detect,
    )
    model = Model(
        graph_factory=StaticGraphFactory(MemoryGraph(g)),
        scorers=[RHTScorer(), DAScorer(threshold=3)],
    )
    ranked = model.analyze(data=case, current=current)
    return [f"{n.entity}_{n.metric}" for n, _ in ranked]


def run_method(method: str, case: Path) -> list[str]:
    """The peer's metric ranking for one case (raises on failure)."""
    df, inject, edges = load(case)
    if method == "nsigma":
        from RCAEval.e2e import nsigma

        out = nsigma(df, inject_time=inject, dataset=DATASET_NAME)
    elif method == "baro":
        from RCAEval.e2e.baro import baro

        out = baro(df, inject_time=inject, dataset=DATASET_NAME)
    elif method == "e_diagnosis":
        from RCAEval.e2e import e_diagnosis

        out = e_diagnosis(df, inject_time=inject, dataset=DATASET_NAME)
    elif method == "pc_pagerank":
        from RCAEval.e2e.pc_pagerank import pc_pagerank

        out = pc_pagerank(df, inject_time=inject, dataset=DATASET_NAME)
    elif method == "circa":
        out = {"ranks": circa_rank(df, inject, edges)}
    elif method in ("pyrca_ht", "pyrca_rw"):
        normal, abnormal = _split(df, inject)
        cols = normal.columns.to_list()
        adj = _adjacency(cols, metric_edges(cols, edges))
        if method == "pyrca_ht":
            from pyrca.analyzers.ht import HT, HTConfig

            model = HT(HTConfig(graph=adj, root_cause_top_k=len(cols)))
            model.train(normal)
            res = model.find_root_causes(abnormal, adjustment=True)
        else:
            from pyrca.analyzers.random_walk import RandomWalk, RandomWalkConfig

            model = RandomWalk(RandomWalkConfig(graph=adj, root_cause_top_k=len(cols)))
            res = model.find_root_causes(
                _nsigma_anomalous(normal, abnormal), pd.concat([normal, abnormal]), random_seed=0
            )
        out = {"ranks": [n for n, _ in res.root_cause_nodes]}
    elif method == "rcd":
        from pyrca.analyzers.rcd import RCD, RCDConfig

        normal, abnormal = _split(df, inject)
        model = RCD(RCDConfig(k=5, localized=True))
        res = model.find_root_causes(normal, abnormal)
        out = {"ranks": [n for n, _ in res.root_cause_nodes]}
    else:
        raise ValueError(f"unknown method {method}")
    ranks = [str(r) for r in out.get("ranks", [])]
    names = out.get("node_names")
    # RCAEval's @rca wrapper returns the columns unranked when the method crashed: a miss.
    if names is not None and list(ranks) == list(names) and method not in ("nsigma", "baro"):
        raise RuntimeError("method failed (RCAEval returned the columns unranked)")
    return ranks


PRELOAD = {
    "nsigma": ["RCAEval.e2e"],
    "baro": ["RCAEval.e2e.baro"],
    "e_diagnosis": ["RCAEval.e2e", "pyrca.analyzers.epsilon_diagnosis"],
    "pc_pagerank": ["RCAEval.e2e.pc_pagerank"],
    "circa": ["circa.alg.ci", "circa.alg.common", "networkx"],
    "pyrca_ht": ["pyrca.analyzers.ht"],
    "pyrca_rw": ["pyrca.analyzers.random_walk"],
    "rcd": ["pyrca.analyzers.rcd"],
}


def preload(method: str) -> None:
    """Import before forking, so a case's time is the method's, not the imports'."""
    import importlib

    for mod in PRELOAD.get(method, []):
        importlib.import_module(mod)


def _child(method: str, case: str, seed: int, conn: Any) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)  # progress bars
    np.random.seed(seed)
    try:
        conn.send(("ok", run_method(method, Path(case))))
    except BaseException as exc:  # report every failure to the parent, which scores a miss
        conn.send(("error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"))


def run_case(method: str, case: Path, timeout: float, seed: int) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    t0 = time.perf_counter()
    p = ctx.Process(target=_child, args=(method, str(case), seed, child))
    p.start()
    ready = parent.poll(timeout)
    dt = time.perf_counter() - t0
    if not ready:
        p.kill()
        p.join()
        return {
            "case": case.name,
            "ranks": None,
            "error": f"timeout after {timeout:.0f} s",
            "seconds": dt,
        }
    status, payload = parent.recv()
    p.join()
    if status == "ok":
        return {"case": case.name, "ranks": payload, "error": None, "seconds": dt}
    return {"case": case.name, "ranks": None, "error": payload, "seconds": dt}


METHODS = ["nsigma", "baro", "e_diagnosis", "circa", "pyrca_ht", "pyrca_rw", "rcd", "pc_pagerank"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--datasets", required=True)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--limit", type=int, default=0, help="first N cases per dataset (0 = all)")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--data", default=str(HERE / "data"))
    ap.add_argument("--out", default=str(OUT), help="where the rankings go")
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    for ds in args.datasets.split(","):
        d = Path(args.data) / ds
        cases = sorted(p for p in d.iterdir() if p.is_dir())
        if args.limit:
            cases = cases[: args.limit]
        for method in args.methods.split(","):
            preload(method)
            rows = [run_case(method, c, args.timeout, seed=i) for i, c in enumerate(cases)]
            (out_dir / f"{method}__{ds}.json").write_text(json.dumps(rows))
            errs = [r["error"].splitlines()[0] for r in rows if r["error"]]
            print(
                f"{ds:10s} {method:12s} {len(rows)} cases, {len(errs)} failed"
                + (f" (first: {errs[0]})" if errs else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
