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
        from RCAEval.graph_heads.rht import rht

        x = df.drop(columns=["time"])
        x = x.loc[:, x.std() > 0]
        cols = x.columns.to_list()
        pos = {c: i for i, c in enumerate(cols)}
        adj = np.zeros((len(cols), len(cols)))
        for a, b in metric_edges(cols, edges):  # causal-learn encoding of a -> b
            adj[pos[a], pos[b]] = -1
            adj[pos[b], pos[a]] = 1
        data = x.copy()
        data["time"] = df["time"]
        ranks = rht(adj, inject, data)
        out = {"ranks": [r[0] for r in sorted(ranks, key=lambda r: r[1], reverse=True)]}
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
    "circa": ["RCAEval.graph_heads.rht"],
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
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for ds in args.datasets.split(","):
        d = Path(args.data) / ds
        cases = sorted(p for p in d.iterdir() if p.is_dir())
        if args.limit:
            cases = cases[: args.limit]
        for method in args.methods.split(","):
            preload(method)
            rows = [run_case(method, c, args.timeout, seed=i) for i, c in enumerate(cases)]
            (OUT / f"{method}__{ds}.json").write_text(json.dumps(rows))
            errs = [r["error"].splitlines()[0] for r in rows if r["error"]]
            print(
                f"{ds:10s} {method:12s} {len(rows)} cases, {len(errs)} failed"
                + (f" (first: {errs[0]})" if errs else ""),
                flush=True,
            )


if __name__ == "__main__":
    main()
