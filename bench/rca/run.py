"""RCA benchmark: Sentinel and the peers on the same cases; prints AC@1, AC@3, Avg@5, s/case.

    bash bench/rca/setup.sh                                  # peers' venv (once)
    bench/rca/.venv/bin/python bench/rca/gen.py --cases 20   # datasets (seeded, offline)
    bench/rca/.venv/bin/python bench/rca/peers.py --datasets ob11,...   # peers' rankings
    uv run python bench/rca/run.py                           # Sentinel + table + CSV

Sentinel runs in this process (Sentinel's env); the peers' results are read from
bench/out/rca-peers/ (written by peers.py in bench/rca/.venv). ``--run-peers`` calls peers.py.
Sentinel is also run with the injection time shifted by +60 s and with no injection time.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
from scoring import dedupe_services, labels, service_of, summarize  # noqa: E402

from sentinel.analysis.causal.analyzer import analyze_frame_json  # noqa: E402
from sentinel.analysis.causal.series import load_case  # noqa: E402

PEERS_OUT = ROOT / "bench" / "out" / "rca-peers"
DEFAULT_SETS = "ob11,ob11-hard,rand30,rand50,circa10,circa50,pyrca20"
VARIANTS = {"sentinel": "exact", "sentinel (onset +60 s)": "shift", "sentinel (no onset)": "none"}


def run_sentinel(
    ds_dir: Path, cases: list[str], variant: str
) -> list[tuple[list[str] | None, str, float]]:
    lab = labels(ds_dir)
    rows: list[tuple[list[str] | None, str, float]] = []
    for case in cases:
        t0 = time.perf_counter()
        frame = load_case(ds_dir / case)
        if variant == "shift" and frame.inject_time is not None:
            frame.inject_time += 60.0
        elif variant == "none":
            frame.inject_time = None
        out = analyze_frame_json(frame)
        dt = time.perf_counter() - t0
        rows.append(([r["service"] for r in out["ranking"]], str(lab[case]["root_cause"]), dt))
    return rows


def read_peer(
    method: str, ds_dir: Path, cases: list[str], peers_out: Path = PEERS_OUT
) -> list[tuple[list[str] | None, str, float]] | None:
    f = peers_out / f"{method}__{ds_dir.name}.json"
    if not f.is_file():
        return None
    lab = labels(ds_dir)
    got = {r["case"]: r for r in json.loads(f.read_text())}
    rows: list[tuple[list[str] | None, str, float]] = []
    for case in cases:
        if case not in got:
            continue
        r = got[case]
        ranked = dedupe_services([service_of(c) for c in r["ranks"]]) if r["ranks"] else None
        rows.append((ranked, str(lab[case]["root_cause"]), float(r["seconds"])))
    return rows or None


PEER_METHODS = {
    "nsigma": "N-Sigma",
    "baro": "BARO",
    "e_diagnosis": "ε-Diagnosis",
    "circa": "CIRCA (RHT, call graph)",
    "pyrca_ht": "PyRCA HT (call graph)",
    "pyrca_rw": "PyRCA RandomWalk (call graph)",
    "rcd": "RCD (PyRCA)",
    "pc_pagerank": "PC-PageRank",
}


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--datasets", default=DEFAULT_SETS)
    ap.add_argument("--limit", type=int, default=0, help="first N cases per dataset (0 = all)")
    ap.add_argument(
        "--run-peers", action="store_true", help="run peers.py in bench/rca/.venv first"
    )
    ap.add_argument("--csv", default=str(ROOT / "bench" / "out" / "rca.csv"))
    ap.add_argument("--data", default=str(HERE / "data"), help="datasets (gen.py --out)")
    ap.add_argument("--peers", default=str(PEERS_OUT), help="peers' rankings (peers.py --out)")
    ap.add_argument(
        "--variants", default=",".join(VARIANTS.values()), help="exact,shift,none (Sentinel)"
    )
    ap.add_argument("--rankings", default="", help="also write Sentinel's rankings here")
    args = ap.parse_args()
    variants = set(args.variants.split(","))
    if args.run_peers:
        cmd = [
            str(HERE / ".venv" / "bin" / "python"),
            str(HERE / "peers.py"),
            "--datasets",
            args.datasets,
            "--data",
            args.data,
            "--out",
            args.peers,
        ]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        subprocess.run(cmd, check=False)
    table: list[dict[str, object]] = []
    for ds in args.datasets.split(","):
        ds_dir = Path(args.data) / ds
        if not (ds_dir / "labels.json").is_file():
            print(f"skipping {ds}: not generated (run gen.py)")
            continue
        cases = sorted(labels(ds_dir))
        if args.limit:
            cases = cases[: args.limit]
        for name, variant in VARIANTS.items():
            if variant not in variants:
                continue
            rows = run_sentinel(ds_dir, cases, variant)
            table.append({"dataset": ds, "method": name, **summarize(rows)})
            if args.rankings:  # per-case service rankings, for the determinism check
                out = Path(args.rankings)
                out.mkdir(parents=True, exist_ok=True)
                ranks = {c: r[0] for c, r in zip(cases, rows, strict=True)}
                (out / f"{variant}__{ds}.json").write_text(json.dumps(ranks, indent=0))
        for key, name in PEER_METHODS.items():
            rows = read_peer(key, ds_dir, cases, Path(args.peers))
            if rows is not None:
                table.append({"dataset": ds, "method": name, **summarize(rows)})
    cols = ["dataset", "method", "cases", "AC@1", "AC@3", "Avg@5", "s/case", "failed"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for row in table:
        cells = []
        for c in cols:
            v = row[c]
            if c in ("cases", "failed"):
                cells.append(str(int(float(str(v)))))
            elif isinstance(v, float):
                cells.append(f"{v:.3f}" if c == "s/case" else f"{v:.2f}")
            else:
                cells.append(str(v))
        print("| " + " | ".join(cells) + " |")
    Path(args.csv).parent.mkdir(parents=True, exist_ok=True)
    with open(args.csv, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        for row in table:
            w.writerow({c: row[c] for c in cols})
    print(f"wrote {args.csv}")


if __name__ == "__main__":
    main()
