"""Add an interval calibration to a saved model from its training data (format 3 manifest).

    python -m benchmarks.calibrate_model --model models/m4-hourly/1 \\
        --data ../shared/data/m4/Hourly-train.csv --freq h

A manifest is bound to its weights (editing it in place fails verification), so the model is
saved again, into the same directory, with the same weights, config, metrics and provenance and
the calibration :func:`forecaster.calibration.calibrate` computes on ``--data`` (the file it was
trained on: the data's fingerprint must match the manifest's). This is how the shipped
``models/m4-hourly`` was calibrated; the service never needs the data.

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from forecaster import calibration, data
from forecaster.predict import Predictor
from forecaster.registry import load_model, save_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True, help="an artifact directory")
    p.add_argument("--data", required=True, help="the data file the model was trained on")
    p.add_argument("--freq", help="the data's frequency, when its file has no timestamps")
    p.add_argument("--origins", type=int, default=calibration.ORIGINS)
    args = p.parse_args(argv)
    loaded = load_model(args.model)
    manifest = loaded.manifest
    series = data.load_series(args.data, freq=args.freq)
    if manifest.data_fingerprint and data.fingerprint(series) != manifest.data_fingerprint:
        raise SystemExit(f"{args.data} is not the data {args.model} was trained on")
    season = manifest.seasonality or 1
    cal = calibration.calibrate(
        Predictor(loaded.config, loaded.params), series.values, season, origins=args.origins
    )
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "model"
        save_model(out, loaded.config, loaded.params, metrics=manifest.metrics,
                   data_fingerprint=manifest.data_fingerprint, freq=manifest.freq,
                   seasonality=manifest.seasonality, training=manifest.training,
                   calibration=cal)  # fmt: skip
        load_model(out)  # verified before anything is replaced
        for name in ("weights.safetensors", "manifest.json"):  # the manifest last
            shutil.copyfile(out / name, args.model / name)
    load_model(args.model)
    summary = {
        "calibrated": str(args.model),
        "errors_per_step": cal.model.count,
        "optimism": cal.optimism,
        "fallback": sorted(cal.fallback),
        "cpu_s": cal.seconds,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
