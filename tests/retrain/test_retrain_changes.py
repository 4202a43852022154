"""The retraining report lists only settings that change (issue 34, item 11): a champion's
settings read back from its manifest (JSON: tuples are lists) are not changes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from forecaster.configs import TrainConfig
from forecaster.model import init_params
from forecaster.registry import Registry
from forecaster.retrain.jobs import challenger_configs, job_from_settings
from tests.retrain.test_retrain import TINY, write_long_csv


def test_a_champion_trained_with_the_same_settings_has_no_changes(tmp_path: Path) -> None:
    csv = write_long_csv(tmp_path / "hourly.csv")
    root = tmp_path / "models"
    # What `forecaster train` records: every TrainConfig field, theta_weights a JSON list.
    training = json.loads(json.dumps(dataclasses.asdict(TrainConfig(steps=30, seasonality=6))))
    assert isinstance(training["theta_weights"], list)
    Registry(root).publish("demo", TINY, init_params(TINY, 7), promote=True, freq="h",
                           seasonality=6, training=training)  # fmt: skip
    job = job_from_settings({"name": "demo", "data": str(csv), "registry": str(root)})
    champion = Registry(root).load("demo")
    _, _, changes = challenger_configs(job, champion, job.data.load())
    assert changes == {}
    job = job_from_settings(
        {"name": "demo", "data": str(csv), "registry": str(root), "train": {"steps": 40}}
    )
    _, _, changes = challenger_configs(job, champion, job.data.load())
    assert changes == {"steps": [30, 40]}
