"""forecaster.options: a dataclass field is a setting's one home (flag, config key, help, docs)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Literal

import pytest

from forecaster.cli import build_parser
from forecaster.configs import ModelConfig, TrainConfig, build_configs
from forecaster.job import Job
from forecaster.options import (
    REFERENCE,
    ConfigError,
    add_flags,
    check_choices,
    option,
    options,
    reference,
    table,
    typed_fields,
)
from forecaster.retrain.jobs import job_from_settings

ROOT = Path(__file__).resolve().parents[1]


def test_the_committed_options_reference_is_generated_from_the_dataclasses() -> None:
    assert (ROOT / REFERENCE).read_text() == reference(), "run: python -m forecaster.options"


def test_the_dataclass_defaults_are_the_recipe_training_derives_for_hourly_data() -> None:
    model, train = build_configs(freq="h")
    assert ModelConfig() == model
    assert TrainConfig() == train


@dataclasses.dataclass(frozen=True)
class Covariates:
    """A list-valued option, declared as the covariates work would add one."""

    future_covariates: tuple[str, ...] = option("columns known ahead", (), metavar="COL")
    holidays: str | None = option("country code of the holiday calendar", None, metavar="CC")
    scaled: bool = option("normalise the covariates", True)
    role: Literal["past", "future"] = option("how an unnamed column is read", "past")


def parser_of(cls: type) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_flags(parser, cls)
    return parser


def test_one_field_makes_the_flag_the_config_key_and_the_docs_row() -> None:
    args = parser_of(Covariates).parse_args(
        ["--future-covariates", "temp", "price", "--holidays", "US", "--no-scaled"]
    )
    assert args.future_covariates == ["temp", "price"] and args.holidays == "US"
    assert args.scaled is False and args.role is None  # not given: left to the dataclass
    with pytest.raises(argparse.ArgumentError, match="invalid choice"):
        parser_of(Covariates).parse_args(["--role", "static"])
    typed = typed_fields(Covariates, {"future_covariates": ["temp"], "holidays": "FR"})
    assert Covariates(**typed) == Covariates(future_covariates=("temp",), holidays="FR")
    with pytest.raises(ConfigError, match="`future_covariates` has the wrong type"):
        typed_fields(Covariates, {"future_covariates": [1, 2]}, "models[0]")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['holiday'\]"):
        typed_fields(Covariates, {"holiday": "FR"})
    with pytest.raises(ConfigError, match="role must be one of past, future, not 'both'"):
        check_choices(Covariates(role="both"))  # type: ignore[arg-type]
    helps = {a.dest: a.help or "" for a in parser_of(Covariates)._actions}
    assert helps["holidays"].endswith("(default: derived from the data)")
    assert helps["scaled"].endswith("(default: on)")
    usage = parser_of(Covariates).format_usage()
    assert "[--future-covariates COL [COL ...]] [--holidays CC]" in " ".join(usage.split())
    rows = table(Covariates).splitlines()
    assert "| `--future-covariates` | `future_covariates` | list of str | none |" in rows[2]


def commands() -> dict[str, argparse.ArgumentParser]:
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return action.choices


def test_every_flag_of_train_and_retrain_states_its_default() -> None:
    sub = commands()
    for command in ("train", "retrain"):
        for cls in (ModelConfig, TrainConfig, Job):
            for f in options(cls):
                if (command == "train" and cls is Job) or not f.metadata["flag"]:
                    continue
                [action] = [a for a in sub[command]._actions if a.dest == f.name]
                assert action.default is None  # given or not: the dataclass decides
                assert f.name == "registry" or "(default: " in (action.help or ""), f.name


def test_retrain_flags_and_config_keys_are_the_job_fields() -> None:
    sub = commands()
    flags = {a.dest for a in sub["retrain"]._actions}
    assert {f.name for f in options(Job)} <= flags
    job = job_from_settings(
        {"name": "m", "data": "x.csv", "registry": "r", "when": "degraded", "live_margin": 1}
    )
    assert (job.when, job.live_margin) == ("degraded", 1.0)
    assert job.coverage_margin == 5.0  # points of coverage below nominal
    base = {"name": "m", "data": "x.csv", "registry": "r"}
    assert job_from_settings(base | {"coverage_margin": 2.5}).coverage_margin == 2.5
    for bad in (-1, 100):
        with pytest.raises(ConfigError, match=r"coverage_margin must be in \[0, 100\)"):
            job_from_settings(base | {"coverage_margin": bad})
    with pytest.raises(ConfigError, match="when must be one of always, degraded, not 'often'"):
        job_from_settings({"name": "m", "data": "x.csv", "registry": "r", "when": "often"})
    with pytest.raises(ConfigError, match="`plot_series` has the wrong type"):
        job_from_settings({"name": "m", "data": "x.csv", "registry": "r", "plot_series": "4"})
