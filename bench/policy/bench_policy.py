"""Policy engine benchmark: decisions per second and µs per decision (p50/p99).

Evaluates a mix of proposals against the shipped policy (policies/default.yaml) and an
inventory of --pods pods in --pods/5 deployments, with --history past actions for the rate
limits to scan. Each decision is timed alone, on the wall clock (perf_counter_ns) and on
the thread's CPU clock (thread_time_ns): on a busy machine the wall-clock tail is the
scheduler's time slices, which the CPU clock leaves out. The goal printed is p99 < 100 µs.
The garbage collector is off while timing (a collection pause is the collector's cost,
not the engine's); everything the engine allocates is still allocated inside the timing.

Two runs of the same cases:

- warm: one `Facts` per case, reused for every decision: a long-lived facts snapshot
  (the per-key timestamp lists of the rate limits stay sorted on it).
- cold: a fresh `Facts` and `Inventory` per decision, as the workflow builds them from
  its recorded facts right before it decides. A Facts indexes itself when it is built
  (pods, deployments, ... by key; history records by action, target and service): that is
  part of loading the snapshot, not of the decision, and is timed on its own line
  ("facts construction"), next to what the workflow's `Facts.model_validate` of the
  recorded dict costs in all. The copies are made before timing (model_construct over
  the same lists: no validation, no deep copy, the indexes built) and each is freed after
  its decision, outside the timing.
  The policy is loaded once, as the worker does, so what the engine derives from it once
  (rate limits' action sets and windows) stays built.

    uv run python bench/policy/bench_policy.py [--n 20000] [--cold-n 3000] [--pods 300] [--history 200]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sentinel.policy import (
    ActionRecord,
    ApprovalFact,
    DeploymentFact,
    Facts,
    Inventory,
    PodFact,
    Policy,
    ProposedAction,
    RedisClusterFact,
    evaluate,
    load_policy_file,
    proposal_digest,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)


def build_inventory(pods: int) -> Inventory:
    """`pods` pods, five per deployment, over five namespaces."""
    deployments = [
        DeploymentFact(
            namespace=f"ns{d % 5}",
            name=f"svc{d}",
            replicas=5,
            current_revision=3,
            revisions=[1, 2, 3],
            service=f"svc{d}",
        )
        for d in range(max(1, pods // 5))
    ]
    return Inventory(
        pods=[
            PodFact(
                namespace=f"ns{(p // 5) % 5}",
                name=f"svc{p // 5}-{p % 5}",
                deployment=f"svc{p // 5}",
            )
            for p in range(pods)
        ],
        deployments=deployments,
        redis_clusters=[RedisClusterFact(name="cache", dbs=[0, 1], key_patterns=["session:*"])],
    )


def build_history(n: int) -> list[ActionRecord]:
    """`n` past actions over the last two hours, on other targets."""
    return [
        ActionRecord(
            action_id="restart_kubernetes_pod",
            target=f"k8s:nsX/pod/old-{i}",
            service=f"old{i % 7}",
            at=NOW - timedelta(seconds=30 * i),
        )
        for i in range(n)
    ]


def workload(pods: int) -> list[tuple[str, ProposedAction, bool]]:
    """(label, proposal, with a valid approval) — what a busy day looks like."""
    last = max(0, pods // 5 - 1)
    ns = f"ns{last % 5}"
    restart = ProposedAction(
        action_id="restart_kubernetes_pod", params={"namespace": ns, "pod": f"svc{last}-0"}
    )
    rollback = ProposedAction(
        action_id="rollback_deployment",
        params={"namespace": ns, "deployment": f"svc{last}", "to_revision": 2},
    )
    return [
        ("restart pod -> EXECUTE", restart, False),
        ("rollback -> REQUIRE_APPROVAL", rollback, False),
        ("rollback + approval -> EXECUTE", rollback, True),
        (
            "flush keys -> EXECUTE",
            ProposedAction(
                action_id="flush_redis_cache",
                params={"cluster": "cache", "key_pattern": "session:*"},
            ),
            False,
        ),
        (
            "hallucinated pod -> DENY",
            ProposedAction(
                action_id="restart_kubernetes_pod", params={"namespace": ns, "pod": "ghost-1"}
            ),
            False,
        ),
        ("unknown action -> DENY", ProposedAction(action_id="delete_namespace", params={}), False),
        (
            "query_metrics -> EXECUTE",
            ProposedAction(action_id="query_metrics", params={"promql": "up == 0"}),
            False,
        ),
    ]


def cold_copies(facts: Facts, n: int) -> list[Facts]:
    """`n` copies of `facts` sharing its data but none of its cached tables."""
    fields = dict(facts)
    return [
        Facts.model_construct(
            **{**fields, "inventory": Inventory.model_construct(**dict(facts.inventory))}
        )
        for _ in range(n)
    ]


def pct(sorted_ns: list[int], q: float) -> float:
    """q-quantile in µs of sorted nanosecond samples."""
    return sorted_ns[min(len(sorted_ns) - 1, int(q * len(sorted_ns)))] / 1000


def main() -> None:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="decisions per workload item")
    parser.add_argument(
        "--cold-n", type=int, default=3000, help="decisions per item on fresh facts"
    )
    parser.add_argument("--pods", type=int, default=300)
    parser.add_argument("--history", type=int, default=200)
    args = parser.parse_args()

    policy: Policy = load_policy_file(ROOT / "policies" / "default.yaml")
    inventory = build_inventory(args.pods)
    history = build_history(args.history)
    cases = []
    for label, proposal, approved in workload(args.pods):
        approval = None
        if approved:
            approval = ApprovalFact(
                approval_id="apr-1",
                approver="alice",
                approver_roles=["approver"],
                requester="sentinel",
                proposal_digest=proposal_digest(proposal),
                expires_at=NOW + timedelta(minutes=30),
            )
        facts = Facts(
            environment="prod", now=NOW, inventory=inventory, history=history, approval=approval
        )
        cases.append((label, proposal, facts))

    print(
        f"policy sha256:{policy.sha256[:16]}…  inventory {len(inventory.pods)} pods / "
        f"{len(inventory.deployments)} deployments  history {len(history)}  n={args.n} per case"
    )
    load = os.getloadavg()[0]
    cores = os.cpu_count() or 1
    if load > 0.5:
        print(
            f"warning: load average {load:.1f} on {cores} cores; wall-clock tails include waiting"
        )
    run("warm", cases, policy, args.n, cold=False)
    run("cold", cases, policy, args.cold_n, cold=True)
    construction(cases[0][2])
    print(
        f"\nload average {load:.2f} at the start, {os.getloadavg()[0]:.2f} at the end "
        f"({cores} cores): compare runs made at similar loads"
    )


def construction(facts: Facts, n: int = 200) -> None:
    """Print what building a decision's facts costs: validation, and the indexes in it."""
    recorded = facts.model_dump(mode="json")
    fields = dict(facts)
    inv_fields = dict(facts.inventory)

    def median_us(build: Callable[[], object]) -> float:
        times = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            build()
            times.append(time.perf_counter_ns() - t0)
        return statistics.median(times) / 1000

    validate = median_us(lambda: Facts.model_validate(recorded))
    indexed = median_us(
        lambda: Facts.model_construct(
            **{**fields, "inventory": Inventory.model_construct(**inv_fields)}
        )
    )
    print(
        f"\nfacts construction (median of {n}): Facts.model_validate of the recorded dict, as "
        f"the workflow does before each decision, {validate:,.0f} µs; of which building the "
        f"lookup indexes (model_construct, no validation) {indexed:,.0f} µs"
    )


def run(
    name: str,
    cases: list[tuple[str, ProposedAction, Facts]],
    policy: Policy,
    n: int,
    *,
    cold: bool,
) -> None:
    """Time `n` decisions per case and print a table (warm: reused facts; cold: fresh)."""
    print(
        f"\n{name:<34}{'outcome':>18}{'mean µs':>10}{'p50 µs':>9}{'p99 µs':>9}"
        f"{'cpu p99':>9}{'dec/s':>10}"
    )
    everything: list[int] = []
    everything_cpu: list[int] = []
    for label, proposal, facts in cases:
        outcome = evaluate(proposal, facts, policy).outcome.value
        fresh = cold_copies(facts, n + min(1000, n)) if cold else []
        gc.collect()
        gc.disable()  # time the engine, not the collector's pauses
        try:
            for _ in range(min(1000, n)):  # warm-up
                evaluate(proposal, fresh.pop() if cold else facts, policy)
            samples: list[int] = []
            cpu: list[int] = []
            clock, cpu_clock = time.perf_counter_ns, time.thread_time_ns
            for _ in range(n):
                f = fresh.pop() if cold else facts
                c0 = cpu_clock()
                t0 = clock()
                evaluate(proposal, f, policy)
                t1 = clock()
                c1 = cpu_clock()
                samples.append(t1 - t0)
                cpu.append(c1 - c0)
                del f  # a fresh copy is freed here, outside the timing
        finally:
            gc.enable()
        samples.sort()
        cpu.sort()
        everything.extend(samples)
        everything_cpu.extend(cpu)
        mean = statistics.fmean(samples) / 1000
        print(
            f"{label:<34}{outcome:>18}{mean:>10.1f}{pct(samples, 0.5):>9.1f}"
            f"{pct(samples, 0.99):>9.1f}{pct(cpu, 0.99):>9.1f}{1e6 / mean:>10,.0f}"
        )
    everything.sort()
    everything_cpu.sort()
    mean = statistics.fmean(everything) / 1000
    p99, cpu_p99 = pct(everything, 0.99), pct(everything_cpu, 0.99)
    print(
        f"{'all':<34}{'':>18}{mean:>10.1f}{pct(everything, 0.5):>9.1f}{p99:>9.1f}"
        f"{cpu_p99:>9.1f}{1e6 / mean:>10,.0f}"
    )
    print(
        f"{name}: goal p99 < 100 µs: wall {'met' if p99 < 100 else 'NOT met'} ({p99:.1f} µs), "
        f"cpu {'met' if cpu_p99 < 100 else 'NOT met'} ({cpu_p99:.1f} µs)"
    )


if __name__ == "__main__":
    main()
