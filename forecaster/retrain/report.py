"""What a job leaves inside the challenger's version: ``report.json`` and ``plot.png``."""

from __future__ import annotations

import dataclasses
import io
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from forecaster import data
from forecaster.retrain.backtest import Backtest
from forecaster.retrain.state import Decided

REPORT = "report.json"
PLOT = "plot.png"


def plot_png(result: Backtest, labels: tuple[str, str], n: int = 4) -> bytes:
    """PNG of the last history points, the actuals and both forecasts for ``n`` series."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    hold = result.holdout
    picks = np.unique(np.linspace(0, len(hold.ids) - 1, min(n, len(hold.ids))).astype(int))
    fig = Figure(figsize=(10, 2.6 * len(picks)), layout="constrained")
    FigureCanvasAgg(fig)  # an explicit canvas: no pyplot, no global backend state
    for row, i in enumerate(picks):
        ax = fig.add_subplot(len(picks), 1, row + 1)
        past = hold.histories[i][-3 * hold.horizon :]
        t_past = np.arange(-len(past), 0)
        t_next = np.arange(hold.horizon)
        ax.plot(t_past, past, color="0.4", lw=1, label="history")
        ax.plot(t_next, hold.targets[i], color="black", lw=1.5, label="actual")
        ax.plot(t_next, result.challenger[i], color="tab:blue", lw=1.5, label=labels[0])
        if result.champion is not None:
            ax.plot(t_next, result.champion[i], color="tab:orange", ls="--", label=labels[1])
        ax.set_title(f"series {hold.ids[i]}", fontsize=9)
        ax.axvline(-0.5, color="0.8", lw=0.8)
    fig.axes[0].legend(loc="upper left", fontsize=8, ncol=4)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, metadata={"Software": None})
    return buf.getvalue()


def _metrics_json(values: Mapping[str, float] | None) -> dict[str, float | None] | None:
    if values is None:
        return None
    return {k: finite_or_none(float(v)) for k, v in values.items()}


def build_report(run: Decided, version: int) -> dict[str, Any]:
    """The JSON document stored as ``report.json`` inside the challenger's version."""
    job, result, decision, champion = run.job, run.backtest, run.decision, run.champion
    before = champion.version
    return {
        "name": job.name,
        "registry": job.registry,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "data": {
            "source": job.data.url,
            "fingerprint": data.fingerprint(run.series),
            "series": len(run.series),
            "observations": int(run.series.lengths.sum()),
            "freq": run.series.freq,
        },
        "backtest": {
            "series": len(result.holdout.ids),
            "horizon": result.holdout.horizon,
            "seasonality": result.holdout.seasonality,
            "window": "the last horizon points of every series, forecast from all points "
            "before them; the challenger never trained on them",
            "naive2": _metrics_json(result.naive2_metrics),
        },
        "challenger": {
            "version": version,
            "config": run.model.to_dict(),
            "train": dataclasses.asdict(run.train),
            "changes_from_champion": run.changes,
            "metrics": _metrics_json(result.challenger_metrics),
            "validation": _metrics_json(run.fitted.val_metrics),
            "best_step": run.fitted.best_step,
            "warm_start": run.warm,
            "sanity": {"passed": not run.problems, "problems": run.problems},
        },
        "champion": {
            "version": before,
            "error": champion.error,
            "metrics": _metrics_json(result.champion_metrics),
            "config": champion.model.config.to_dict() if champion.model else None,
            "data_fingerprint": champion.model.manifest.data_fingerprint
            if champion.model
            else None,
        },
        "decision": {
            "action": "promote" if decision.promote else "keep",
            "status": decision.status,
            "reason": decision.reason,
            "policy": job.promote,
            "margin": job.margin,
            "improvement": finite_or_none(decision.improvement),
            "production_before": before,
            # Read under the registry's lock as the version was published: someone else's
            # change during the run shows here (and makes a promotion "superseded").
            "production_after": run.production_after(version),
        },
        # The production version's recorded forecasts scored against the actuals.
        "live": run.live,
        "timings": dict(run.seconds),
        "devices": _devices(),
    }


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _devices() -> dict[str, Any]:
    import jax

    return {
        "count": jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
    }
