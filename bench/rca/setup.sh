#!/usr/bin/env bash
# Creates bench/rca/.venv: the peers' own environment (PyPI only), separate from Sentinel's.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/python ]; then
  uv venv --python 3.11 .venv
fi
export VIRTUAL_ENV="$PWD/.venv"
# Dependencies known to work on Python 3.11 here (see ../../../shared/design/RCA-BENCH-NOTES.md).
uv pip install "numpy<2" pandas scipy scikit-learn statsmodels networkx tqdm causal-learn \
  scikit-network pingouin pyyaml schema dill pyparsing tabulate requests "setuptools<81"
# The peer packages themselves: --no-deps (sfr-pyrca's javabridge does not build on 3.11).
uv pip install --no-deps rcaeval==1.8.1 sfr-pyrca==1.0.1 circa-clue==0.1.1 fse-baro==0.2.2
.venv/bin/python - <<'PY'
import importlib
for mod in ["RCAEval.e2e.baro", "RCAEval.e2e.nsigma", "pyrca.analyzers.ht", "circa.alg.ci", "causallearn"]:
    try:
        importlib.import_module(mod)
        print("ok  ", mod)
    except Exception as exc:  # report, do not stop: the benchmark skips what is missing
        print("FAIL", mod, type(exc).__name__, exc)
PY
