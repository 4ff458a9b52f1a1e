"""Alembic environment: the URL comes from the caller (sentinel db upgrade) or SENTINEL_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context

import sentinel.approval.models
import sentinel.audit.models
import sentinel.auth.models
import sentinel.flows.models
import sentinel.incident.models
import sentinel.notify.models
import sentinel.plan.models  # noqa: F401
from sentinel.core.db import Base, make_engine

config = context.config
target_metadata = Base.metadata


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Autogenerate sees only Sentinel's tables (the workflow engine owns its own)."""
    return type_ != "table" or name in target_metadata.tables


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(
        "SENTINEL_DATABASE_URL", "sqlite:///./var/sentinel.db"
    )
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            include_name=include_name,
            render_as_batch=connection.dialect.name == "sqlite",
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
    engine.dispose()


run_migrations_online()
