"""Change context: recent deployments (an HTTP deploy history) and recent commits (git, GitHub).

``DeploymentsContext`` reads a deploy-history endpoint shaped like the sandbox's
``GET /sandbox/deployments?service=&since=<unix s>`` → ``{"deployments": [...]}``, newest
first: once for the service, once for every service (an upstream's deploy is a suspect
too). ``GitContext`` walks a local repository with dulwich (message, author, time,
changed files) and, when configured, the GitHub REST API's
``GET /repos/{owner}/{repo}/commits?since=``. The GitHub token goes in the Authorization
header only; it is never logged or put in a result.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from dulwich.diff_tree import TreeChange
from dulwich.errors import NotGitRepository
from dulwich.repo import Repo
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from sentinel.context.base import ContextRequest, QueryResult, SourceResult
from sentinel.core.redact import redact


class ChangesSettings(BaseModel):
    """Where the deploy history and the commits are, how far back to look, and the bounds."""

    model_config = ConfigDict(extra="forbid")

    deployments_url: str | None = None  # e.g. http://sandbox:8800/sandbox/deployments
    git_repo_path: str | None = None  # a local clone (read-only use)
    github_owner: str | None = None
    github_repo: str | None = None
    github_token: SecretStr | None = None  # optional for public repositories
    github_api_url: str = "https://api.github.com"
    timeout_seconds: float = Field(default=5.0, gt=0, le=120)
    lookback_seconds: int = Field(default=6 * 3600, ge=60, le=90 * 86400)
    max_deployments: int = Field(default=50, ge=1, le=1000)
    max_commits: int = Field(default=30, ge=1, le=100)  # GitHub's per_page is at most 100
    max_files_per_commit: int = Field(default=50, ge=1, le=1000)
    max_message_chars: int = Field(default=2000, ge=80, le=65536)
    max_bytes: int = Field(default=65536, ge=1024, le=16 * 1024 * 1024)  # per query

    @model_validator(mode="after")
    def _github_pair(self) -> ChangesSettings:
        if bool(self.github_owner) != bool(self.github_repo):
            raise ValueError("changes: github_owner and github_repo go together (one is missing)")
        return self

    def github_configured(self) -> bool:
        """Whether the GitHub commits query is switched on."""
        return bool(self.github_owner and self.github_repo)


def _since(request: ContextRequest, lookback_seconds: int) -> datetime:
    starts = [a.starts_at for a in request.alerts if a.starts_at is not None]
    anchor = min([*starts, request.now])
    return (anchor - timedelta(seconds=lookback_seconds)).astimezone(UTC)


def _bound(
    items: list[dict[str, Any]], max_items: int, max_bytes: int
) -> tuple[list[dict[str, Any]], bool]:
    """The first items that fit both bounds, and whether any were left out."""
    kept: list[dict[str, Any]] = []
    used = 0
    for item in items[:max_items]:
        size = len(json.dumps(item, default=str))
        if used + size > max_bytes:
            return kept, True
        used += size
        kept.append(item)
    return kept, len(items) > max_items


def _source(name: str, results: list[QueryResult]) -> SourceResult:
    ok = any(r.ok for r in results)
    return SourceResult(
        source=name,
        ok=ok,
        error=None if ok else (results[0].error if results else "not configured"),
        truncated=any(r.truncated for r in results),
        queries=results,
    )


def _trim(text: str, limit: int) -> tuple[str, bool]:
    return (text[:limit] + "…", True) if len(text) > limit else (text, False)


class DeploymentsContext:
    """Recent deployments of the service and of every service, from a deploy-history URL."""

    name = "deployments"

    def __init__(self, settings: ChangesSettings, transport: httpx.BaseTransport | None = None):
        if not settings.deployments_url:
            raise ValueError("DeploymentsContext needs changes.deployments_url")
        self.settings = settings
        self.url = settings.deployments_url
        self._client = httpx.Client(timeout=settings.timeout_seconds, transport=transport)

    def gather(self, request: ContextRequest) -> SourceResult:
        """The service's deployments, then everyone's, since lookback before the alert."""
        since = _since(request, self.settings.lookback_seconds)
        results = [
            self._query("service", {"service": request.service}, since),
            self._query("all", {}, since),
        ]
        return _source(self.name, results)

    def _query(self, name: str, params: dict[str, str], since: datetime) -> QueryResult:
        params = {**params, "since": f"{since.timestamp():.0f}"}
        q = str(httpx.URL(self.url, params=params))
        try:
            resp = self._client.get(self.url, params=params)
        except httpx.HTTPError as exc:
            return QueryResult(name=name, query=q, ok=False, error=f"{type(exc).__name__}: {exc}")
        if resp.status_code != 200:
            body = resp.text.strip()[:2000]
            return QueryResult(
                name=name, query=q, ok=False, error=f"HTTP {resp.status_code}: {redact(body)}"
            )
        try:
            body_json = resp.json()
            records = body_json["deployments"] if isinstance(body_json, dict) else body_json
            if not isinstance(records, list):
                raise ValueError("expected a list of deployments")
        except (ValueError, KeyError) as exc:
            return QueryResult(name=name, query=q, ok=False, error=f"{type(exc).__name__}: {exc}")
        clean = [redact(r) for r in records if isinstance(r, dict)]
        kept, truncated = _bound(clean, self.settings.max_deployments, self.settings.max_bytes)
        return QueryResult(
            name=name,
            query=q,
            ok=True,
            truncated=truncated,
            data={"since": since.isoformat(), "count": len(records), "deployments": kept},
        )

    def close(self) -> None:
        self._client.close()


class GitContext:
    """Recent commits: a local repository (dulwich) and, when configured, GitHub's REST API."""

    name = "git"

    def __init__(self, settings: ChangesSettings, transport: httpx.BaseTransport | None = None):
        if not settings.git_repo_path and not settings.github_configured():
            raise ValueError("GitContext needs changes.git_repo_path or changes.github_owner/repo")
        self.settings = settings
        self._client: httpx.Client | None = None
        if settings.github_configured():
            headers = {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
            if settings.github_token is not None:
                headers["Authorization"] = f"Bearer {settings.github_token.get_secret_value()}"
            self._client = httpx.Client(
                base_url=settings.github_api_url.rstrip("/"),
                timeout=settings.timeout_seconds,
                headers=headers,
                transport=transport,
            )

    def gather(self, request: ContextRequest) -> SourceResult:
        """Commits since lookback before the alert, newest first; each query its own envelope."""
        since = _since(request, self.settings.lookback_seconds)
        results: list[QueryResult] = []
        if self.settings.git_repo_path:
            results.append(self._local(request.service, since))
        if self._client is not None:
            results.append(self._github(request.service, since))
        return _source(self.name, results)

    # -- a local repository ----------------------------------------------------------------

    def _local(self, service: str, since: datetime) -> QueryResult:
        s = self.settings
        path = str(s.git_repo_path)
        q = f"git log --since={since.isoformat()} --max-count={s.max_commits} --name-only ({path})"
        try:
            with Repo(path) as repo:
                if not _has_head(repo):
                    commits: list[dict[str, Any]] = []
                    more = False
                else:
                    commits, more = self._walk(repo, service, since)
        except (NotGitRepository, OSError, KeyError, ValueError) as exc:
            return QueryResult(
                name="local", query=q, ok=False, error=f"{type(exc).__name__}: {exc}"
            )
        kept, truncated = _bound(commits, s.max_commits, s.max_bytes)
        return QueryResult(
            name="local",
            query=q,
            ok=True,
            truncated=truncated or more,
            data={"repo": Path(path).name, "since": since.isoformat(), "commits": kept},
        )

    def _walk(self, repo: Repo, service: str, since: datetime) -> tuple[list[dict[str, Any]], bool]:
        s = self.settings
        out: list[dict[str, Any]] = []
        more = False
        walker = repo.get_walker(max_entries=s.max_commits + 1, since=int(since.timestamp()))
        for entry in walker:
            if len(out) >= s.max_commits:
                more = True
                break
            c = entry.commit
            files: list[str] = []
            for change in entry.changes():
                # A merge gives one list per parent; a plain commit a flat list.
                group = change if isinstance(change, list) else [change]
                for item in group:
                    p = _change_path(item)
                    if p is not None and p not in files:
                        files.append(p)
            message, cut = _trim(c.message.decode("utf-8", "replace").strip(), s.max_message_chars)
            record = {
                "sha": c.id.decode(),
                "author": c.author.decode("utf-8", "replace"),
                "at": datetime.fromtimestamp(c.author_time, UTC).isoformat(),
                "committed_at": datetime.fromtimestamp(c.commit_time, UTC).isoformat(),
                "message": message,
                "message_truncated": cut,
                "files": files[: s.max_files_per_commit],
                "files_truncated": len(files) > s.max_files_per_commit,
                "touches_service": _touches(files, service),
            }
            out.append(redact(record))
        return out, more

    # -- GitHub ----------------------------------------------------------------------------

    def _github(self, service: str, since: datetime) -> QueryResult:
        assert self._client is not None
        s = self.settings
        path = f"/repos/{s.github_owner}/{s.github_repo}/commits"
        params = {
            "since": since.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "per_page": str(min(s.max_commits, 100)),
        }
        q = f"GET {path}?since={params['since']}&per_page={params['per_page']}"
        try:
            resp = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            return QueryResult(
                name="github", query=q, ok=False, error=f"{type(exc).__name__}: {exc}"
            )
        if resp.status_code != 200:
            try:
                detail = str(resp.json().get("message", ""))
            except ValueError:
                detail = resp.text.strip()[:2000]
            return QueryResult(
                name="github",
                query=q,
                ok=False,
                error=f"HTTP {resp.status_code}: {redact(detail)}",
            )
        try:
            items = resp.json()
            if not isinstance(items, list):
                raise ValueError("expected a list of commits")
        except ValueError as exc:
            return QueryResult(
                name="github", query=q, ok=False, error=f"{type(exc).__name__}: {exc}"
            )
        commits: list[dict[str, Any]] = []
        for it in items:
            if not isinstance(it, dict):
                continue
            info = it.get("commit") or {}
            author = info.get("author") or {}
            message, cut = _trim(str(info.get("message", "")).strip(), s.max_message_chars)
            files = [str(f.get("filename")) for f in it.get("files") or [] if isinstance(f, dict)]
            commits.append(
                redact(
                    {
                        "sha": it.get("sha"),
                        "author": f"{author.get('name', '')} <{author.get('email', '')}>",
                        "at": author.get("date"),
                        "message": message,
                        "message_truncated": cut,
                        "url": it.get("html_url"),
                        "files": files[: s.max_files_per_commit],
                        "touches_service": _touches(files, service) if files else None,
                    }
                )
            )
        kept, truncated = _bound(commits, s.max_commits, s.max_bytes)
        return QueryResult(
            name="github",
            query=q,
            ok=True,
            truncated=truncated or len(items) >= min(s.max_commits, 100),
            data={
                "repo": f"{s.github_owner}/{s.github_repo}",
                "since": params["since"],
                "commits": kept,
            },
        )

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def _has_head(repo: Repo) -> bool:
    try:
        repo.head()
    except KeyError:
        return False
    return True


def _change_path(change: TreeChange | None) -> str | None:
    if change is None:
        return None
    entry = change.new if change.new is not None and change.new.path else change.old
    if entry is None or entry.path is None:
        return None
    return entry.path.decode("utf-8", "replace")


def _touches(files: list[str], service: str) -> bool:
    """Whether any path names the service as a directory or file stem."""
    svc = service.lower()
    for f in files:
        parts = f.lower().split("/")
        if svc in parts[:-1] or parts[-1].split(".")[0] == svc:
            return True
    return False
