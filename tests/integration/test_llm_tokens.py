"""Prompt tokens of the LLM analyst + planner on every public scenario's captured context.

bench/llm_tokens/run.py prints the table; here the same measurement must stay under the
goal of 8,000 prompt tokens a request (estimated as the scripted server does: 4 chars/token).
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
        assert row["analyze_requests"] == 2 and row["plan_requests"] == 2, row
        assert row["first_max"] <= GOAL, row
        # Every request re-sends the conversation: none may reach the goal either.
        assert row["analyze_total"] - row["analyze_first"] <= GOAL, row
        assert row["plan_total"] - row["plan_first"] <= GOAL, row
        assert row["recorded_input_tokens"] == row["total"], row
