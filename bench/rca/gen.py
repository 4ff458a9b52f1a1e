"""Generates the RCA benchmark datasets offline, seeded, in the RCAEval case layout.

Datasets (``bench/rca/data/<name>/<case>/{data.csv,inject_time.txt,callgraph.json}`` plus one
``labels.json`` per dataset that only the scorer reads):

* ``ob11``, ``ob11-hard``, ``rand30``, ``rand50``: our structural causal model (SCM) over
  microservice call graphs, documented in README.md;
* ``circa10``, ``circa50``: CIRCA's own VAR simulator (``circa-clue``), one root cause;
* ``pyrca20``: PyRCA's own simulator (``sfr-pyrca``), one root cause.

The SCM sets need numpy, pandas and scipy only; the simulator sets need the peers' venv
(``bench/rca/setup.sh``). ``--perf`` writes one 50-service, one-hour, 1-second case for the
timing target.
"""

from __future__ import annotations

import argparse
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.signal import lfilter

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
METRICS = ("cpu", "mem", "diskio", "latency", "error")
FAULTS = ("cpu", "mem", "disk", "delay", "loss")
T0 = 1_700_000_000  # unix seconds of the first sample

OB_EDGES = [
    ("frontend", "cartservice"),
    ("frontend", "productcatalogservice"),
    ("frontend", "currencyservice"),
    ("frontend", "recommendationservice"),
    ("frontend", "adservice"),
    ("frontend", "checkoutservice"),
    ("frontend", "shippingservice"),
    ("checkoutservice", "cartservice"),
    ("checkoutservice", "productcatalogservice"),
    ("checkoutservice", "currencyservice"),
    ("checkoutservice", "shippingservice"),
    ("checkoutservice", "emailservice"),
    ("checkoutservice", "paymentservice"),
    ("recommendationservice", "productcatalogservice"),
    ("cartservice", "redis"),
]


@dataclass(frozen=True)
class Knobs:
    """Difficulty knobs of the SCM."""

    fault_sigma: tuple[float, float] = (3.0, 8.0)  # fault size in noise sigmas of its metric
    distractor_prob: float = 0.5  # chance a case has distractor spikes on healthy services
    distractors: tuple[int, int] = (1, 2)
    distractor_sigma: tuple[float, float] = (5.0, 10.0)
    surge_prob: float = 0.3  # chance of a concurrent load surge (not a fault)
    surge_size: tuple[float, float] = (0.3, 0.7)
    lag: tuple[int, int] = (0, 3)  # propagation delay per call edge, seconds
    length: int = 1200
    inject: tuple[int, int] = (700, 900)


DEFAULT = Knobs()
HARD = Knobs(
    fault_sigma=(1.5, 3.0),
    distractor_prob=1.0,
    distractors=(2, 4),
    distractor_sigma=(8.0, 15.0),
    surge_prob=1.0,
    surge_size=(0.5, 1.0),
    lag=(5, 30),
)


def random_callgraph(n: int, rng: np.random.Generator) -> tuple[list[str], list[tuple[str, str]]]:
    """A connected call DAG: s00 is the entry; every other service has 1-3 callers before it."""
    names = [f"s{i:02d}" for i in range(n)]
    edges: set[tuple[str, str]] = set()
    for i in range(1, n):
        k = min(i, 1 + int(rng.binomial(2, 0.25)))
        for j in rng.choice(i, size=k, replace=False):
            edges.add((names[int(j)], names[i]))
    return names, sorted(edges)


def _ar_noise(rng: np.random.Generator, n: int, sigma: float, phi: float = 0.5) -> np.ndarray:
    """AR(1) noise with marginal standard deviation sigma."""
    e = rng.standard_normal(n) * sigma * np.sqrt(1 - phi**2)
    return np.asarray(lfilter([1.0], [1.0, -phi], e))


def _shift(x: np.ndarray, lag: int) -> np.ndarray:
    if lag <= 0:
        return x
    return np.concatenate([np.full(lag, x[0]), x[:-lag]])


def _topo_callees_first(names: list[str], edges: list[tuple[str, str]]) -> list[str]:
    callees: dict[str, list[str]] = {s: [] for s in names}
    for caller, callee in edges:
        callees[caller].append(callee)
    done: list[str] = []
    seen: set[str] = set()

    def visit(s: str) -> None:
        if s in seen:
            return
        seen.add(s)
        for c in callees[s]:
            visit(c)
        done.append(s)

    for s in names:
        visit(s)
    return done


def simulate_scm(
    names: list[str],
    edges: list[tuple[str, str]],
    knobs: Knobs,
    rng: np.random.Generator,
    *,
    root: str | None = None,
    fault: str | None = None,
) -> tuple[pd.DataFrame, int, dict[str, Any]]:
    """One case of the SCM (see README.md); returns (data, inject_time, truth)."""
    n_t = knobs.length
    t = np.arange(n_t, dtype=float)
    inject = int(rng.integers(knobs.inject[0], knobs.inject[1] + 1))
    root = root or str(rng.choice(names))
    fault = fault or str(rng.choice(FAULTS))

    # Exogenous load: seasonality + slow noise (+ a concurrent surge that is not a fault).
    period = rng.uniform(400, 1500)
    load = 1 + 0.15 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
    load += _ar_noise(rng, n_t, 0.02, phi=0.95)
    surge: dict[str, Any] | None = None
    if rng.random() < knobs.surge_prob:
        start = inject + int(rng.integers(-60, 61))
        dur = int(rng.integers(120, 400))
        amp = rng.uniform(*knobs.surge_size)
        ramp = np.clip((t - start) / 20, 0, 1) * np.clip((start + dur - t) / 20, 0, 1)
        load = load * (1 + amp * ramp)
        surge = {"start": T0 + start, "duration": dur, "size": round(float(amp), 3)}

    callees: dict[str, list[str]] = {s: [] for s in names}
    for caller, callee in edges:
        callees[caller].append(callee)
    lag = {e: int(rng.integers(knobs.lag[0], knobs.lag[1] + 1)) for e in edges}
    w_lat = {e: rng.uniform(0.5, 1.0) * int(rng.choice([1, 1, 2, 3])) for e in edges}
    w_err = {e: rng.uniform(0.4, 1.0) for e in edges}

    after = (t >= inject).astype(float)
    size_sigma = rng.uniform(*knobs.fault_sigma)
    cols: dict[str, np.ndarray] = {}
    for s in _topo_callees_first(names, edges):
        sig = {
            "cpu": rng.uniform(1, 4),
            "mem": rng.uniform(0.5, 3),
            "diskio": rng.uniform(1, 5),
            "latency": float(np.exp(rng.uniform(np.log(0.3), np.log(4)))),
            "error": rng.uniform(0.02, 0.3),
        }
        base_cpu = rng.uniform(15, 45)
        base_mem = rng.uniform(100, 800)
        base_disk = rng.uniform(5, 40)
        base_lat = rng.uniform(3, 25)
        f = {m: np.zeros(n_t) for m in METRICS}
        if s == root:
            size = size_sigma
            if fault == "cpu":
                f["cpu"] = after * size * sig["cpu"] * 3
            elif fault == "mem":  # a leak: ramps up over 1-3 minutes, then stays
                ramp_len = rng.uniform(60, 180)
                f["mem"] = np.clip((t - inject) / ramp_len, 0, 1) * size * sig["mem"] * 3
            elif fault == "disk":
                f["diskio"] = after * size * sig["diskio"] * 3
            elif fault == "delay":
                f["latency"] = after * size * sig["latency"]
            else:  # loss
                f["error"] = after * size * sig["error"]
        cpu = base_cpu * load + _ar_noise(rng, n_t, sig["cpu"]) + f["cpu"]
        mem = base_mem + 0.05 * base_mem * (load - 1) + _ar_noise(rng, n_t, sig["mem"], 0.9)
        mem = mem + f["mem"]
        disk = base_disk * load + _ar_noise(rng, n_t, sig["diskio"]) + f["diskio"]
        util = np.clip(cpu / 100.0, 0, 0.95)
        own = base_lat * (1 - base_cpu / 100.0) / (1 - util)
        own += 0.05 * base_lat * np.maximum(0, disk - 1.5 * base_disk) / sig["diskio"]
        mem_excess = np.maximum(0, mem - base_mem - 4 * sig["mem"]) / sig["mem"]
        own += 0.3 * sig["latency"] * mem_excess  # GC pauses
        lat = own + _ar_noise(rng, n_t, sig["latency"]) + f["latency"]
        err = 0.1 + np.abs(_ar_noise(rng, n_t, sig["error"], 0.3)) + f["error"]
        err += 0.02 * sig["error"] * mem_excess  # OOM kills
        if s == root and fault == "loss":
            lat = lat + 0.5 * size_sigma * sig["latency"] * after  # retries
        for c in callees[s]:
            e = (s, c)
            lat = lat + w_lat[e] * _shift(cols[f"{c}_latency"], lag[e])
            err = err + w_err[e] * _shift(cols[f"{c}_error"] - 0.1, lag[e])
        cols[f"{s}_cpu"] = cpu
        cols[f"{s}_mem"] = mem
        cols[f"{s}_diskio"] = disk
        cols[f"{s}_latency"] = lat
        cols[f"{s}_error"] = err

    # Distractor spikes on healthy services after the injection (a cron job, a GC storm...).
    distractors = []
    if rng.random() < knobs.distractor_prob:
        healthy = [s for s in names if s != root]
        for _ in range(int(rng.integers(knobs.distractors[0], knobs.distractors[1] + 1))):
            s = str(rng.choice(healthy))
            m = str(rng.choice(METRICS))
            col = cols[f"{s}_{m}"]
            base = col[:inject]
            scale = float(np.std(base)) or 1.0
            start = int(rng.integers(inject, n_t - 5))
            dur = int(rng.integers(5, 31))
            amp = rng.uniform(*knobs.distractor_sigma) * scale
            col[start : start + dur] += amp
            distractors.append({"service": s, "metric": m, "start": T0 + start, "duration": dur})

    ordered = {f"{s}_{m}": cols[f"{s}_{m}"] for s in names for m in METRICS}
    df = pd.DataFrame(
        {"time": (T0 + t).astype(int), **{k: np.round(v, 4) for k, v in ordered.items()}}
    )
    truth = {
        "root_cause": root,
        "metric": {
            "cpu": "cpu",
            "mem": "mem",
            "disk": "diskio",
            "delay": "latency",
            "loss": "error",
        }[fault],
        "fault": fault,
        "size_sigma": round(float(size_sigma), 3),
        "surge": surge,
        "distractors": distractors,
    }
    return df, T0 + inject, truth


def _write_case(
    d: Path, df: pd.DataFrame, inject: int, edges: list[tuple[str, str]] | None
) -> None:
    d.mkdir(parents=True, exist_ok=True)
    df.to_csv(d / "data.csv", index=False)
    (d / "inject_time.txt").write_text(f"{inject}\n")
    if edges is not None:
        (d / "callgraph.json").write_text(json.dumps({"edges": [list(e) for e in edges]}))


def gen_scm_set(name: str, n_cases: int, seed: int, kind: str, knobs: Knobs) -> None:
    out = DATA / name
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    labels = {}
    for i in range(n_cases):
        if kind == "ob":
            names = sorted({s for e in OB_EDGES for s in e})
            edges = OB_EDGES
        else:
            names, edges = random_callgraph(int(kind), rng)
        df, inject, truth = simulate_scm(names, edges, knobs, rng)
        case = f"case{i:03d}"
        _write_case(out / case, df, inject, edges)
        labels[case] = truth
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


# ------------------------------------------------------------------ peers' own simulators


def gen_circa_set(name: str, n_nodes: int, n_cases: int, seed: int) -> None:
    """CIRCA's VAR simulator (circa.experiment.simulation), one root cause per case."""
    from circa.experiment.simulation import generate_case, generate_sedag

    out = DATA / name
    shutil.rmtree(out, ignore_errors=True)
    rng = np.random.default_rng(seed)
    matrix = generate_sedag(num_node=n_nodes, num_edge=2 * n_nodes, rng=rng)
    weight = np.eye(n_nodes)
    prod = np.eye(n_nodes)
    for _ in range(1, n_nodes):
        prod = prod @ matrix
        weight += prod
    # matrix[i, j] != 0: j causes i, so i (the caller, the one affected) calls j.
    edges = [(f"n{i:02d}", f"n{j:02d}") for i, j in zip(*np.where(matrix), strict=True)]
    labels = {}
    for k in range(n_cases):
        while True:
            case = generate_case(weight=weight, rng=rng)
            if len(case._causes) == 1:
                break
        ts = case._time_series
        interval = 60
        df = pd.DataFrame({"time": T0 + interval * np.arange(ts.shape[0])})
        for j in range(n_nodes):
            df[f"n{j:02d}_latency"] = ts[:, j]
        cname = f"case{k:03d}"
        _write_case(out / cname, df, T0 + interval * case._length_normal, edges)
        cause = next(iter(case._causes))
        labels[cname] = {"root_cause": f"n{int(cause):02d}", "metric": "latency", "fault": "var"}
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


def gen_pyrca_set(name: str, n_nodes: int, n_cases: int, seed: int) -> None:
    """PyRCA's simulator (pyrca.simulation.data_gen), seeded from outside, one root cause."""
    from pyrca.simulation import data_gen

    out = DATA / name
    shutil.rmtree(out, ignore_errors=True)
    # PyRCA draws from unseeded default_rng() and the legacy global state: seed both.
    np.random.seed(seed)
    seeds = np.random.SeedSequence(seed)
    orig: Callable[..., np.random.Generator] = np.random.default_rng

    def seeded(s: Any = None) -> np.random.Generator:
        return orig(s if s is not None else seeds.spawn(1)[0])

    np.random.default_rng = seeded  # type: ignore[assignment]
    labels = {}
    try:
        for k in range(n_cases):
            found = None
            while found is None:  # a graph whose SLI a single fault can move (PyRCA's own check)
                dag = data_gen.DAGGen(
                    data_gen.DAGGenConfig(
                        num_node=n_nodes, num_edge=int(1.5 * n_nodes), rng=seeded()
                    )
                ).gen()
                normal, pw, nw, func, noise = data_gen.DataGen(
                    data_gen.DataGenConfig(dag=dag, num_samples=2000)
                ).gen()
                mu, sd = normal[:, 0].mean(), normal[:, 0].std()
                for _ in range(8):
                    try:
                        anomalous, fault = data_gen.AnomalyDataGen(
                            data_gen.AnomalyDataGenConfig(
                                parent_weights=pw,
                                noise_weights=nw,
                                noise_type=noise,
                                func_type=func,
                                baseline=mu,
                                threshold=sd,
                                num_samples=300,
                                anomaly_type=0,  # PyRCA's default: a shift of the noise term
                            )
                        ).gen()
                    except TypeError:  # PyRCA raises a str when no fault size moves the SLI
                        break
                    causes = np.where(fault != 0)[0]
                    if len(causes) == 1:
                        found = (anomalous, causes)
                        break
            anomalous, causes = found
            ts = np.vstack([normal, anomalous])
            df = pd.DataFrame({"time": T0 + np.arange(ts.shape[0])})
            for j in range(n_nodes):
                df[f"n{j:02d}_latency"] = np.round(ts[:, j], 5)
            # dag[i, j] != 0: i causes j, so j calls i.
            edges = [(f"n{j:02d}", f"n{i:02d}") for i, j in zip(*np.where(dag), strict=True)]
            cname = f"case{k:03d}"
            _write_case(out / cname, df, T0 + normal.shape[0], edges)
            labels[cname] = {
                "root_cause": f"n{int(causes[0]):02d}",
                "metric": "latency",
                "fault": "pyrca",
            }
    finally:
        np.random.default_rng = orig  # type: ignore[assignment]
    (out / "labels.json").write_text(json.dumps(labels, indent=1))


SETS: dict[str, Callable[[int, int], None]] = {
    "ob11": lambda n, seed: gen_scm_set("ob11", n, seed, "ob", DEFAULT),
    "ob11-hard": lambda n, seed: gen_scm_set("ob11-hard", n, seed + 1, "ob", HARD),
    "rand30": lambda n, seed: gen_scm_set("rand30", n, seed + 2, "30", DEFAULT),
    "rand50": lambda n, seed: gen_scm_set("rand50", n, seed + 3, "50", DEFAULT),
    "circa10": lambda n, seed: gen_circa_set("circa10", 10, n, seed + 4),
    "circa50": lambda n, seed: gen_circa_set("circa50", 50, n, seed + 5),
    "pyrca20": lambda n, seed: gen_pyrca_set("pyrca20", 20, n, seed + 6),
}


def gen_perf(seed: int) -> None:
    """One 50-service x 5-metric x 1-hour case at 1 s (the timing target)."""
    rng = np.random.default_rng(seed)
    names, edges = random_callgraph(50, rng)
    knobs = Knobs(length=3600, inject=(2400, 3000))
    df, inject, truth = simulate_scm(names, edges, knobs, rng)
    out = DATA / "perf50-1h"
    shutil.rmtree(out, ignore_errors=True)
    _write_case(out / "case000", df, inject, edges)
    (out / "labels.json").write_text(json.dumps({"case000": truth}, indent=1))


def main() -> None:
    global DATA
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sets", default=",".join(SETS), help="comma-separated dataset names")
    ap.add_argument("--cases", type=int, default=20, help="cases per dataset")
    ap.add_argument(
        "--seed", type=int, default=1000, help="base seed (report seeds you did not tune on)"
    )
    ap.add_argument("--perf", action="store_true", help="also write the 50x5x1h timing case")
    ap.add_argument(
        "--out", default=str(DATA), help="output directory (e.g. bench/rca/data-dev for tuning)"
    )
    args = ap.parse_args()
    DATA = Path(args.out)
    for name in args.sets.split(","):
        try:
            SETS[name](args.cases, args.seed)
            print(f"wrote {DATA / name} ({args.cases} cases)")
        except ImportError as exc:
            print(f"skipped {name}: {type(exc).__name__}: {exc}")
    if args.perf:
        gen_perf(args.seed + 99)
        print(f"wrote {DATA / 'perf50-1h'}")


if __name__ == "__main__":
    main()
