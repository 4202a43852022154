"""Alembic's environment: run by :func:`forecaster.monitoring.store.migrate` on a connection it
opens itself (no ``alembic.ini``; the URL comes from the service's settings)."""

from __future__ import annotations

from alembic import context

from forecaster.monitoring.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
