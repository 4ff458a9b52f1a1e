"""Prompt tokens of the LLM analyst + planner on every public scenario's captured context.

bench/llm_tokens/run.py prints the table; here the same measurement must stay under the
goal of 8,000 prompt tokens an incident, every request of the analysis and the plan
together (estimated as the scripted server does: 4 chars/token).
"""

from __future__ import annotations

from bench.llm_tokens.run import GOAL, SNAPSHOTS, load, measure


def test_every_public_scenario_prompt_stays_under_the_goal() -> None:
    paths = sorted(SNAPSHOTS.glob("*.json.gz"))
    assert len(paths) == 7
    for path in paths:
        row = measure(load(path))
        assert row["rca_ok"], row
        assert row["plan"] == "rollout_restart_deployment", row
        # The analyst still reads the ranking and the error logs with its tools; the
        # planner finds the root cause's deployment in its prompt's inventory.
        assert row["analyze_requests"] == 2 and row["plan_requests"] == 1, row
        assert row["total"] <= GOAL, row
        assert row["recorded_input_tokens"] == row["total"], row
