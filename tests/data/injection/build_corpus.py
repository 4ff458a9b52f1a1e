"""Build `corpus.json`: prompt-injection templates read from the agentdojo and spikee wheels.

Development-time only (the tests read the committed JSON, never the wheels):

    uvx pip download --no-deps agentdojo==0.1.35 spikee==0.9.2 -d /tmp/w
    uv run python tests/data/injection/build_corpus.py /tmp/w

Neither package is imported: agentdojo's attack strings are read from `attacks/*.py` with
`ast` (the literal jailbreak strings holding `{goal}`), spikee's from
`data/workspace/datasets/seeds-*/jailbreaks.jsonl` (`<INSTRUCTION>` becomes `{goal}`).
Every template keeps its package, version, licence, file and id; texts are deduplicated
(case and whitespace folded). agentdojo's `injection_tasks` goals (banking, travel, Slack,
e-mail) are not kept: the attacker goals here are Sentinel's own (see the test).
Licence texts go to NOTICE next to the corpus.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import sys
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
# Placeholders a template may hold; composition replaces them (no str.format: texts have braces).
PLACEHOLDERS = ("{goal}", "{user}", "{model}", "{tools}", "{task}")


def _wheel(folder: Path, name: str) -> Path:
    found = sorted(folder.glob(f"{name}-*.whl"))
    if not found:
        raise SystemExit(f"no {name} wheel in {folder}: pip download --no-deps {name} -d {folder}")
    return found[-1]


def _meta(z: zipfile.ZipFile, dist: str) -> dict[str, str]:
    text = z.read(f"{dist}/METADATA").decode()
    out: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        out.setdefault(key.strip(), value.strip())
    return out


def _source(path: Path, license_name: str) -> tuple[zipfile.ZipFile, dict[str, Any], str]:
    z = zipfile.ZipFile(path)
    dist = next(n.split("/")[0] for n in z.namelist() if n.split("/")[0].endswith(".dist-info"))
    meta = _meta(z, dist)
    lic_files = [n for n in z.namelist() if n.startswith(f"{dist}/licenses/")]
    notice = "\n\n".join(z.read(n).decode() for n in sorted(lic_files))
    return (
        z,
        {
            "package": meta["Name"],
            "version": meta["Version"],
            "license": meta.get("License") or license_name,
            "wheel": path.name,
            "wheel_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        },
        notice,
    )


def _class_strings(tree: ast.Module) -> list[tuple[str, str]]:
    """(class name, literal string) for every string constant with {goal} inside a class."""
    out: list[tuple[str, str]] = []
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for sub in ast.walk(node):
            # The jailbreak is a call argument or an assigned value; docstrings are neither.
            values: list[ast.expr] = []
            if isinstance(sub, ast.Call):
                values = list(sub.args)
            elif isinstance(sub, ast.Assign):
                values = [sub.value]
            for v in values:
                if isinstance(v, ast.Constant) and isinstance(v.value, str) and "{goal}" in v.value:
                    out.append((node.name, v.value))
    return out


def agentdojo(z: zipfile.ZipFile, src: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(z.namelist()):
        if not re.fullmatch(r"agentdojo/attacks/[a-z_]+\.py", name):
            continue
        tree = ast.parse(z.read(name).decode())
        for cls, text in _class_strings(tree):
            out.append({**_ref(src, name), "id": f"agentdojo:{cls}", "text": text})
    return out


def spikee(z: zipfile.ZipFile, src: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for name in sorted(z.namelist()):
        if not re.fullmatch(r"spikee/data/workspace/datasets/seeds-[^/]+/jailbreaks\.jsonl", name):
            continue
        for line in z.read(name).decode().splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            text = str(row["text"])
            if "<INSTRUCTION>" not in text:
                continue
            out.append(
                {
                    **_ref(src, name),
                    "id": f"spikee:{row['id']}",
                    "kind": row.get("jailbreak_type"),
                    "text": text.replace("<INSTRUCTION>", "{goal}"),
                }
            )
    return out


def _ref(src: dict[str, Any], file: str) -> dict[str, Any]:
    return {
        "package": src["package"],
        "version": src["version"],
        "license": src["license"],
        "file": file,
    }


def _key(text: str) -> str:
    return " ".join(text.lower().split())


def build(folder: Path) -> dict[str, Any]:
    za, sa, na = _source(_wheel(folder, "agentdojo"), "MIT")
    zs, ss, ns = _source(_wheel(folder, "spikee"), "Apache-2.0")
    seen: set[str] = set()
    templates = []
    for t in agentdojo(za, sa) + spikee(zs, ss):
        k = _key(t["text"])
        if k in seen:
            continue
        seen.add(k)
        templates.append(t)
    ids: dict[str, int] = {}
    for t in templates:  # agentdojo subclasses share a string; spikee ids repeat across seeds
        n = ids[t["id"]] = ids.get(t["id"], 0) + 1
        if n > 1:
            t["id"] = f"{t['id']}#{n}"
    notice = (
        "The prompt-injection templates in corpus.json are taken from these packages'\n"
        "PyPI wheels (see build_corpus.py); each template names its package, version and\n"
        "file. Their licences follow.\n\n"
        f"==== {sa['package']} {sa['version']} ({sa['license']}) ====\n\n{na.strip()}\n\n"
        f"==== {ss['package']} {ss['version']} ({ss['license']}) ====\n\n{ns.strip()}\n"
    )
    (HERE / "NOTICE").write_text(notice)
    return {
        "about": "Prompt-injection templates; {goal} is where the attacker's instruction goes "
        "({user}, {model}, {tools}, {task}: agentdojo's other placeholders). Built by "
        "build_corpus.py; licences in NOTICE.",
        "sources": [sa, ss],
        "placeholders": list(PLACEHOLDERS),
        "templates": templates,
    }


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/w")
    corpus = build(folder)
    (HERE / "corpus.json").write_text(json.dumps(corpus, indent=1, ensure_ascii=False) + "\n")
    by = {
        s["package"]: sum(t["package"] == s["package"] for t in corpus["templates"])
        for s in corpus["sources"]
    }
    print(f"{len(corpus['templates'])} templates: {by}")


if __name__ == "__main__":
    main()
