"""Saved models: a directory of safetensors weights plus a JSON manifest that vouches for them.

Layout of an artifact directory::

    manifest.json          format version, model config, normalisation, metrics, provenance,
                           and the sha256 of every other file in the directory
    weights.safetensors    the flattened parameter tree, float32, keys like
                           ``members/encoder/layer_0/kernel_in``; its metadata holds the
                           digest of the manifest's content (format 2)
    <extra files>          optional (report.json, plot.png, ...), hashed like the weights

One function per verb: :func:`save_model`, :func:`load_model`, :func:`verify`,
:func:`read_manifest`. Each takes a location: a local path, an fsspec URL
(``s3://bucket/models/x/3``, ``memory://x`` in tests) or a resolved
:class:`forecaster.registry.storage.Location`.

Nothing here unpickles or evaluates anything. Loading verifies before it trusts: every file must
be a regular file (no symlinks, FIFOs or devices) no larger than its cap (1 MiB for the manifest,
what the config implies for the weights), checked before reading; the manifest is parsed against
its schema; every file's hash is checked against the manifest *before* the weights are parsed
(from the very bytes that were hashed, so a file swapped between the check and the parse cannot
slip through); every tensor's name, dtype and shape is compared with the template the config
implies; the values must be finite; and the manifest's content must match the digest recorded in
the weights (format 2), so an edited manifest is refused. Each refusal raises a specific
:class:`ArtifactError` subclass whose message says what is wrong and what to do.

``save_model`` writes the manifest last, so a directory with a manifest is complete; local files
are fsynced so that a rename of the directory (see :mod:`forecaster.registry`) publishes durable
contents.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pydantic

from forecaster.calibration import Calibration
from forecaster.configs import ModelConfig
from forecaster.covariates import CovariateSpec
from forecaster.registry import storage
from forecaster.registry.manifest import (
    _FILE_NAME,
    COVARIATES_FORMAT_VERSION,
    DIGEST_KEY,
    FORMAT_VERSION,
    MANIFEST,
    MAX_MANIFEST_BYTES,
    NORMALIZATION,
    SUPPORTED_FORMAT_VERSIONS,
    WEIGHTS,
    ArtifactError,
    ArtifactNotFoundError,
    Covariates,
    DTypeError,
    FormatVersionError,
    IntegrityError,
    KeyMismatchError,
    Manifest,
    ManifestError,
    ManifestMismatchError,
    NonFiniteWeightsError,
    Normalization,
    ParsedManifest,
    ShapeError,
    WeightsFormatError,
    content_digest,
    forecaster_version,
    parse,
    parse_manifest,
)
from forecaster.registry.storage import FAILPOINT_ENV, Location
from forecaster.registry.weights import (
    check_params,
    encode_weights,
    few,
    flatten_params,
    max_weights_bytes,
    parse_weights,
    unflatten,
)

__all__ = [
    "FAILPOINT_ENV",
    "FORMAT_VERSION",
    "MANIFEST",
    "MAX_EXTRA_FILE_BYTES",
    "MAX_MANIFEST_BYTES",
    "NORMALIZATION",
    "SUPPORTED_FORMAT_VERSIONS",
    "WEIGHTS",
    "ArtifactError",
    "ArtifactNotFoundError",
    "DTypeError",
    "FormatVersionError",
    "IntegrityError",
    "KeyMismatchError",
    "LoadedModel",
    "Manifest",
    "ManifestError",
    "ManifestMismatchError",
    "NonFiniteWeightsError",
    "Normalization",
    "ShapeError",
    "WeightsFormatError",
    "load_model",
    "parse_manifest",
    "read_extra_file",
    "read_manifest",
    "save_model",
    "verify",
]

# Reports and plots beside the weights; anything bigger is not what extra files are for.
MAX_EXTRA_FILE_BYTES = 64 << 20

Where = str | os.PathLike | Location


def _resolve(where: Where) -> Location:
    try:
        return storage.resolve(where)
    except storage.UnsupportedLocationError as err:
        raise ArtifactError(str(err)) from err


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its config, its parameter tree (numpy float32) and its manifest."""

    config: ModelConfig
    params: dict
    manifest: Manifest

    @property
    def covariates(self) -> CovariateSpec:
        """What the model reads besides the target: its covariates with their role and kind,
        and its calendar features (empty for a model of the target alone)."""
        return self.manifest.covariate_spec


# --------------------------------------------------------------------------------------------
# Saving


def _library_versions() -> dict[str, str]:
    versions = {"forecaster": forecaster_version()}
    for package in ("jax", "flax", "numpy", "safetensors"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _jsonable(value: Any) -> Any:
    """Metrics often hold numpy/jax scalars; store them as plain JSON numbers."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if not isinstance(value, np.ndarray | np.generic) and hasattr(value, "__array__"):
        value = np.asarray(value)  # a JAX array
    if isinstance(value, np.ndarray):
        return _jsonable(list(value) if value.ndim else value[()])
    if isinstance(value, np.floating):
        # str() gives the shortest repr of the float32 value: 0.9, not 0.8999999761581421
        return _jsonable(float(str(value)))
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN/inf; null says "no usable value"
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise ValueError(f"metric value {value!r} ({type(value).__name__}) is not JSON-serialisable")


def _check_extra_files(extra_files: Mapping[str, bytes]) -> None:
    for name, data in extra_files.items():
        if not _FILE_NAME.match(name) or name in (MANIFEST, WEIGHTS):
            raise ArtifactError(
                f"extra file name {name!r} is not allowed: use a plain name like 'report.json' "
                f"(letters, digits, '_', '.', '-'; not {MANIFEST} or {WEIGHTS})"
            )
        if not isinstance(data, bytes | bytearray | memoryview):
            raise ArtifactError(f"extra file {name!r} must be bytes, got {type(data).__name__}")
        if len(data) > MAX_EXTRA_FILE_BYTES:
            raise ArtifactError(f"extra file {name!r} is larger than {MAX_EXTRA_FILE_BYTES} bytes")


def _prepare_dir(loc: Location) -> None:
    if loc.fs.exists(loc.path):
        if loc.fs.ls(loc.path, detail=False):
            raise ArtifactError(
                f"{loc} is not empty; save each model into a new directory "
                "(artifacts are immutable once written)"
            )
    else:
        loc.fs.makedirs(loc.path, exist_ok=True)


def _manifest_content(config: ModelConfig, **fields: Any) -> dict[str, Any]:
    """The manifest's JSON content without ``files``, schema-checked (format 4 with covariates,
    else format 3, which older versions read)."""
    covariates = fields.get("covariates")
    try:
        manifest = Manifest(
            format_version=COVARIATES_FORMAT_VERSION if covariates else FORMAT_VERSION,
            config=config,
            created_at=datetime.now(UTC),
            library_versions=_library_versions(),
            files={WEIGHTS: "0" * 64},  # placeholder: the schema requires the weights' entry
            **fields,
        )
    except pydantic.ValidationError as err:
        raise ManifestError(f"invalid manifest: {err}") from err
    exclude = {"files"} if covariates else {"files", "covariates"}
    return manifest.model_dump(mode="json", exclude=exclude)


def _write_artifact(
    loc: Location,
    content: dict[str, Any],
    flat: Mapping[str, np.ndarray],
    extra_files: Mapping[str, bytes],
) -> None:
    """Write weights (bound to ``content``), extra files, then the manifest (last)."""
    metadata = {
        "format": "forecaster",
        "format_version": str(content["format_version"]),
        DIGEST_KEY: content_digest(content),
    }
    blobs = {
        WEIGHTS: encode_weights(flat, metadata),
        **{k: bytes(v) for k, v in extra_files.items()},
    }
    files = {name: hashlib.sha256(data).hexdigest() for name, data in blobs.items()}
    # A manifest without covariates reads as format 3 did: no key for them.
    bare = None if content.get("covariates") else {"covariates"}
    text = Manifest.model_validate({**content, "files": files}).model_dump_json(
        indent=2, exclude=bare
    )
    if content_digest(json.loads(text)) != metadata[DIGEST_KEY]:  # what readers will compute
        raise ArtifactError(f"cannot save to {loc}: the manifest does not serialise stably")
    _prepare_dir(loc)
    for name, data in blobs.items():
        storage.write_bytes(loc.child(name), data)
        storage.failpoint("save:after-" + name.split(".")[0])
    storage.write_bytes(loc.child(MANIFEST), text.encode())
    if loc.local:
        storage.fsync_dir(loc.path)


def save_model(
    where: Where,
    config: ModelConfig,
    params: Mapping,
    *,
    metrics: dict | None = None,
    data_fingerprint: str | None = None,
    freq: str | None = None,
    seasonality: int | None = None,
    training: Mapping[str, Any] | None = None,
    calibration: Calibration | None = None,
    extra_files: dict[str, bytes] | None = None,
    covariates: CovariateSpec | None = None,
) -> Path | str:
    """Write a model artifact into ``where`` (created; must be empty if it exists).

    ``training`` is the training config (a :class:`~forecaster.configs.TrainConfig` as a dict),
    recorded so that a retraining starts from the same settings; ``calibration`` is the
    model's interval calibration (:func:`forecaster.calibration.calibrate`; None: its intervals
    are served uncalibrated); ``covariates``: what the model reads besides the target
    (:attr:`TrainResult.covariates <forecaster.train.TrainResult>`), whose widths must match
    the config's.

    The parameters are checked against the config before anything is written, so a broken
    model is refused at save time rather than at serving time. The manifest is written last:
    a directory holding a manifest is complete. Returns the directory (a ``Path`` for local
    directories, the URL as given for fsspec locations).
    """
    loc = _resolve(where)
    flat = flatten_params(params)
    check_params(flat, config, f"saving to {loc}")
    extra_files = dict(extra_files or {})
    _check_extra_files(extra_files)
    content = _manifest_content(
        config,
        freq=freq,
        seasonality=seasonality,
        data_fingerprint=data_fingerprint,
        metrics=_jsonable(metrics or {}),
        training=None if training is None else _jsonable(dict(training)),
        calibration=calibration,
        covariates=Covariates.of(covariates) if covariates else None,
    )
    _write_artifact(loc, content, flat, extra_files)
    if loc.local:
        return Path(loc.path)
    return loc.url if isinstance(where, Location) else os.fspath(where)


# --------------------------------------------------------------------------------------------
# Reading and verifying


def _entries(loc: Location) -> dict[str, storage.Kind]:
    try:
        return storage.list_entries(loc)
    except FileNotFoundError as err:
        raise ArtifactNotFoundError(f"no model artifact at {loc}: directory not found") from err


def _read_manifest(loc: Location, entries: Mapping[str, storage.Kind]) -> ParsedManifest:
    where = loc.child(MANIFEST)
    if MANIFEST not in entries:
        raise ManifestError(
            f"no {MANIFEST} in {loc}: not a saved model, or its save did not finish"
        )
    try:
        data = storage.read_bounded(where, MAX_MANIFEST_BYTES)
    except storage.FileTooLargeError as err:
        raise ManifestError(f"{where} is {err.size} bytes, too large to be a manifest") from err
    except OSError as err:  # not a regular file, permission denied, I/O error
        raise ManifestError(f"cannot read {where}: {err}; the artifact is damaged") from err
    return parse(data, str(where))


def read_manifest(where: Where) -> Manifest:
    """The artifact's manifest, schema-checked, without reading or hashing other files."""
    loc = _resolve(where)
    return _read_manifest(loc, _entries(loc)).manifest


def _read_file(loc: Location, kind: storage.Kind | None, limit: int) -> bytes:
    """A listed file's bytes; IntegrityError if it is missing, not regular, or over ``limit``."""
    if kind is None:
        raise IntegrityError(f"{loc} is missing; the artifact is incomplete")
    try:
        return storage.read_bounded(loc, limit)
    except storage.FileTooLargeError as err:
        raise IntegrityError(
            f"{loc} is {err.size} bytes, more than the {limit} its model config implies; "
            "it is not this model's file. Restore it or re-export the model."
        ) from err
    except storage.UnsafeFileError as err:  # symlinks included, wherever they point
        raise IntegrityError(
            f"{err}; artifacts hold regular files only: put the file itself in its place"
        ) from err
    except OSError as err:
        raise IntegrityError(f"cannot read {loc}: {err}") from err


def _read_verified_files(
    loc: Location, entries: Mapping[str, storage.Kind], manifest: Manifest
) -> dict[str, bytes]:
    """Every listed file's bytes, each size-capped and checked against the manifest's sha256."""
    unexpected = sorted(n for n in entries if n != MANIFEST and n not in manifest.files)
    if unexpected:
        raise IntegrityError(
            f"{loc} holds files the manifest does not list: {few(unexpected)}; someone "
            "modified the artifact. Remove them or re-export the model."
        )
    blobs = {}
    for name, digest in manifest.files.items():
        limit = max_weights_bytes(manifest.config) if name == WEIGHTS else MAX_EXTRA_FILE_BYTES
        data = _read_file(loc.child(name), entries.get(name), limit)
        if hashlib.sha256(data).hexdigest() != digest:
            raise IntegrityError(
                f"{loc.child(name)} is corrupt: its sha256 differs from the manifest "
                "(damaged or tampered with); restore it from a backup or re-export the model."
            )
        blobs[name] = data
    return blobs


def read_extra_file(where: Where, name: str) -> bytes | None:
    """One extra file of the artifact (``report.json``, ...) checked against the manifest's
    sha256; None when the manifest lists no such file. Raises :class:`IntegrityError`."""
    loc = _resolve(where)
    entries = _entries(loc)
    manifest = _read_manifest(loc, entries).manifest
    digest = manifest.files.get(name)
    if digest is None or name == WEIGHTS:
        return None
    data = _read_file(loc.child(name), entries.get(name), MAX_EXTRA_FILE_BYTES)
    if hashlib.sha256(data).hexdigest() != digest:
        raise IntegrityError(
            f"{loc.child(name)} is corrupt: its sha256 differs from the manifest "
            "(damaged or tampered with); restore it from a backup or re-export the model."
        )
    return data


def _check_binding(parsed: ParsedManifest, metadata: Mapping[str, str], where: str) -> None:
    """Refuse a manifest whose content is not the one the weights were saved with.

    A format-1 artifact carries no digest and is accepted as it is; anything else (a format-2
    manifest, or weights that carry a digest or claim format 2, e.g. a format-2 manifest edited
    to claim format 1) must match.
    """
    recorded = metadata.get(DIGEST_KEY)
    legacy = (
        parsed.manifest.format_version == 1
        and recorded is None
        and metadata.get("format_version") in (None, "1")
    )
    if legacy or recorded == parsed.digest:
        return
    found = "no manifest digest" if recorded is None else "the digest of another manifest"
    raise ManifestMismatchError(
        f"{where}: the manifest was edited after the model was saved: the weights carry {found}. "
        "A manifest's config, frequency, seasonality, normalisation and metrics cannot be "
        "changed in place; restore the original manifest.json or re-export the model."
    )


def _verify(loc: Location) -> tuple[Manifest, dict[str, np.ndarray]]:
    entries = _entries(loc)
    parsed = _read_manifest(loc, entries)
    blobs = _read_verified_files(loc, entries, parsed.manifest)
    where = str(loc.child(MANIFEST))
    flat, metadata = parse_weights(blobs[WEIGHTS], parsed.manifest.config, str(loc.child(WEIGHTS)))
    _check_binding(parsed, metadata, where)
    return parsed.manifest, flat


def verify(where: Where) -> Manifest:
    """Run every check :func:`load_model` runs, without building the parameter tree."""
    return _verify(_resolve(where))[0]


def load_model(where: Where) -> LoadedModel:
    """Load and fully verify a model artifact from a path, an fsspec URL or a Location."""
    manifest, flat = _verify(_resolve(where))
    return LoadedModel(config=manifest.config, params=unflatten(flat), manifest=manifest)
