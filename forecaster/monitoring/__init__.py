"""Forecast monitoring: every served forecast recorded, scored against the actuals as they
arrive, per model version and horizon step.

- :mod:`~forecaster.monitoring.tables` and ``migrations/``: the schema (SQLAlchemy, Alembic).
- :mod:`~forecaster.monitoring.store`: :class:`MonitoringStore` (SQLite by default, PostgreSQL
  by URL): write forecasts, ingest actuals, sum errors per version and step.
- :mod:`~forecaster.monitoring.recorder`: :class:`Recorder`, the bounded queue and writer thread
  that keeps recording off the request path.
- :mod:`~forecaster.monitoring.accuracy`: the figures (sMAPE, MASE, MAE, coverage, and the
  seasonal naive's on the same points); :mod:`~forecaster.monitoring.health`: whether live
  accuracy has degraded (``forecaster retrain --when degraded``).
"""
