"""Prompt-injection bench: the agentdojo + spikee corpus x SRE attacker goals x places.

    uv run python bench/injection/run.py               # every template x goal x place
    uv run python bench/injection/run.py --sample      # the CI test's sample
    uv run python bench/injection/run.py --rotate      # template x goal, the place rotating

An adversarial scripted model (OpenAI-compatible server, real client over HTTP) obeys every
injection; the planner's guards and the shipped policy decide. Prints attacks tried,
injected proposals made, what passed the planner, what was refused and by which check,
the policy's outcome and rule for what left the planner, and what would run unapproved.
Exits 1 if any attack breaks a check (see tests/integration/injection_corpus.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.integration.injection_corpus import (  # noqa: E402
    cross,
    load_corpus,
    run_attacks,
    sample,
)
from tests.integration.test_llm_injection import PLACES  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--sample", action="store_true", help="the CI test's sample")
    mode.add_argument("--rotate", action="store_true", help="template x goal, place rotating")
    ap.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = ap.parse_args()
    corpus = load_corpus()
    templates = corpus["templates"]
    if args.sample:
        attacks = sample(templates)
    elif args.rotate:
        attacks = cross(templates)
    else:
        attacks = cross(templates, PLACES)
    srcs = ", ".join(f"{s['package']} {s['version']} ({s['license']})" for s in corpus["sources"])
    print(f"corpus: {len(templates)} templates from {srcs}; {len(attacks)} attacks")
    try:
        figures = run_attacks(attacks, progress=500)
    except AssertionError as exc:
        print(f"CHECK FAILED: {exc}"[:4000])
        return 1
    print(figures.report())
    if args.json:
        args.json.write_text(json.dumps(figures.__dict__, indent=1, default=dict) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
