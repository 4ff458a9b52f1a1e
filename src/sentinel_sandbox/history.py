"""The deploy history and a real git repository (dulwich) of the services' changes.

Layout of the repository: ``services/<service>/deployment.yaml`` (image, version,
replicas) and ``services/<service>/config.yaml`` (the container's environment). One
commit per deploy or config change, authored by whoever made the change; the message
names the service and the change. Remediations through the Kubernetes API (rollback,
restart, scale) appear in the deploy history but not in git, as on a GitOps-less
cluster where someone ran ``kubectl``.
"""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml
from dulwich import porcelain
from dulwich.repo import Repo

from sentinel_sandbox.cluster import rfc3339

COMMITTER = b"sandbox-ci <ci@sandbox.example.com>"


@dataclass
class DeployRecord:
    id: int
    at: str
    namespace: str
    service: str
    deployment: str
    revision: int | None
    change: str  # initial | image | config | rollback | restart | scale
    version: str | None
    image: str | None
    author: str
    message: str
    commit: str | None
    details: dict[str, Any]


class History:
    """Deploy records in memory and commits in ``<state-dir>/repo``."""

    def __init__(self, repo_dir: Path) -> None:
        self.dir = repo_dir
        self.records: list[DeployRecord] = []
        self._lock = threading.Lock()
        self.dir.mkdir(parents=True, exist_ok=True)
        if (self.dir / ".git").exists():
            self.repo = Repo(str(self.dir))
        else:
            self.repo = porcelain.init(str(self.dir))

    def commit(self, files: dict[str, str], message: str, author: str, when: float) -> str:
        """Write files and commit them; returns the commit sha (hex)."""
        with self._lock:
            for rel, text in files.items():
                p = self.dir / rel
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(text)
            porcelain.add(self.repo, [str(self.dir / rel) for rel in files])
            sha = porcelain.commit(
                self.repo,
                message=message.encode(),
                author=author.encode(),
                committer=COMMITTER,
                author_timestamp=when,
                commit_timestamp=when,
                author_timezone=0,
                commit_timezone=0,
            )
            return sha.decode() if isinstance(sha, bytes) else str(sha)

    def service_files(
        self, service: str, image: str, replicas: int, env: dict[str, str]
    ) -> dict[str, str]:
        name, _, version = image.rpartition(":")
        dep = {"service": service, "image": name, "version": version, "replicas": replicas}
        return {
            f"services/{service}/deployment.yaml": yaml.safe_dump(dep, sort_keys=True),
            f"services/{service}/config.yaml": yaml.safe_dump(
                {"env": dict(sorted(env.items()))}, sort_keys=True
            ),
        }

    def record(self, **kw: Any) -> DeployRecord:
        kw.setdefault("details", {})
        with self._lock:
            rec = DeployRecord(id=len(self.records) + 1, **kw)
            self.records.append(rec)
            return rec

    def as_json(
        self, service: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        with self._lock:
            recs = [asdict(r) for r in self.records if service is None or r.service == service]
        if since is not None:
            cutoff = rfc3339(since)
            recs = [r for r in recs if r["at"] >= cutoff]
        return list(reversed(recs))

    def log(self, limit: int = 50) -> list[dict[str, Any]]:
        """Recent commits, newest first (sha, author, time, message)."""
        out = []
        with self._lock:
            walker = self.repo.get_walker(max_entries=limit)
            for entry in walker:
                c = entry.commit
                out.append(
                    {
                        "sha": c.id.decode(),
                        "author": c.author.decode(),
                        "at": rfc3339(c.author_time),
                        "message": c.message.decode().strip(),
                    }
                )
        return out

    def reset(self) -> None:
        with self._lock:
            self.records.clear()
