"""Saved models: a directory of safetensors weights plus a JSON manifest that vouches for them.

Layout of an artifact directory::

    manifest.json          format version, model config, normalisation, metrics, provenance,
                           and the sha256 of every other file in the directory
    weights.safetensors    the flattened parameter tree, float32, keys like
                           ``members/encoder/layer_0/kernel_in``
    <extra files>          optional (report.json, plot.png, ...), hashed like the weights

Nothing here unpickles or evaluates anything. Loading verifies before it trusts: the manifest is
parsed against its schema, every file's hash is checked against the manifest *before* the weights
are parsed (the weights are parsed from the very bytes that were hashed, so a file swapped between
the check and the parse cannot slip through), then every tensor's name, dtype and shape is
compared with the template that :func:`forecaster.model.init_params` builds from the config (via
``jax.eval_shape``, so no compute), and the values must be finite. Each refusal raises a specific
:class:`ArtifactError` subclass whose message says what is wrong and what to do.

Directories may be local paths or fsspec URLs (``s3://bucket/models/x/3``, ``memory://x`` in
tests). ``save_model`` writes the manifest last, so a directory with a manifest is complete; local
files are fsynced so that a rename of the directory (see :mod:`forecaster.registry`) publishes
durable contents.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import math
import os
import re
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

import flax
import fsspec
import jax
import numpy as np
import pydantic
import safetensors
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict
from fsspec.implementations.local import LocalFileSystem
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    PositiveInt,
)

from forecaster.model import ModelConfig, init_params
from forecaster.scaling import MAX_LOG_RATIO

FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = frozenset({1})
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
NORMALIZATION = "log-mean-ratio"
FAILPOINT_ENV = "FORECASTER_FAILPOINT"

# A manifest is a few KB; refusing anything huge keeps a hostile file from exhausting memory.
MAX_MANIFEST_BYTES = 1 << 20
# Same bound as the safetensors library applies to its JSON header.
MAX_HEADER_BYTES = 100_000_000
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


# --------------------------------------------------------------------------------------------
# Errors


class ArtifactError(Exception):
    """A saved model could not be written, read or trusted."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The artifact directory does not exist."""


class ManifestError(ArtifactError):
    """manifest.json is missing, not JSON, or does not match the schema."""


class FormatVersionError(ManifestError):
    """The artifact uses a format version this code cannot read."""


class IntegrityError(ArtifactError):
    """A file is missing, unexpected, or its sha256 differs from the manifest."""


class WeightsFormatError(ArtifactError):
    """weights.safetensors is not a well-formed safetensors file."""


class KeyMismatchError(ArtifactError):
    """The weights' parameter names differ from the ones the config needs."""


class ShapeError(ArtifactError):
    """A parameter's shape differs from the one the config needs."""


class DTypeError(ArtifactError):
    """A parameter is not float32."""


class NonFiniteWeightsError(ArtifactError):
    """A parameter holds NaN or infinity."""


# --------------------------------------------------------------------------------------------
# Manifest schema


def _config_from_json(value: Any) -> ModelConfig:
    """Strict ModelConfig parse: known keys with JSON types matching the field defaults.

    Keys missing from the manifest take the field default, so a field added to ModelConfig later
    (with a default that keeps the old behaviour) does not orphan older artifacts.
    """
    if isinstance(value, ModelConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError("config must be an object")
    defaults = {
        f.name: f.default if f.default is not dataclasses.MISSING else f.default_factory()
        for f in dataclasses.fields(ModelConfig)
    }
    for key, item in value.items():
        if key in defaults and not _same_json_kind(item, defaults[key]):
            raise ValueError(f"config field {key!r} has the wrong type: {item!r}")
    try:
        return ModelConfig.from_dict(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid model config: {err}") from err


def _same_json_kind(item: Any, default: Any) -> bool:
    if isinstance(default, bool) or isinstance(item, bool):
        return isinstance(item, bool) and isinstance(default, bool)
    if isinstance(default, float):
        return isinstance(item, int | float)
    if isinstance(default, tuple):
        return isinstance(item, list) and all(
            isinstance(x, int | float) and not isinstance(x, bool) for x in item
        )
    return isinstance(item, type(default))


def _check_files(files: dict[str, str]) -> dict[str, str]:
    for name, digest in files.items():
        if not _FILE_NAME.match(name) or name == MANIFEST:
            raise ValueError(f"invalid file name in manifest: {name!r}")
        if not _SHA256.match(digest):
            raise ValueError(f"invalid sha256 for {name!r}: {digest!r}")
    if WEIGHTS not in files:
        raise ValueError(f"files must list {WEIGHTS}")
    return files


ConfigField = Annotated[
    ModelConfig,
    PlainValidator(_config_from_json),
    PlainSerializer(lambda c: c.to_dict(), return_type=dict),
]


class Normalization(BaseModel):
    """How inputs were scaled in training; serving must scale the same way."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: Literal["log-mean-ratio"] = NORMALIZATION
    max_log_ratio: float = MAX_LOG_RATIO


class Manifest(BaseModel):
    """The parsed manifest.json of an artifact (format version 1)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    format_version: int
    config: ConfigField
    freq: str | None = None
    seasonality: PositiveInt | None = None
    normalization: Normalization = Field(default_factory=Normalization)
    data_fingerprint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    created_at: AwareDatetime
    library_versions: dict[str, str] = Field(default_factory=dict)
    files: Annotated[dict[str, str], AfterValidator(_check_files)]


@dataclass(frozen=True)
class LoadedModel:
    """A verified model: its config, its parameter tree (numpy float32) and its manifest."""

    config: ModelConfig
    params: dict
    manifest: Manifest


# --------------------------------------------------------------------------------------------
# Storage helpers (local paths and fsspec URLs alike)


def _resolve(directory: str | os.PathLike) -> tuple[fsspec.AbstractFileSystem, str]:
    fs, path = fsspec.core.url_to_fs(os.fspath(directory))
    return fs, path.rstrip("/") or "/"


def _join(path: str, name: str) -> str:
    return f"{path.rstrip('/')}/{name}"


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    """Whether ``fs`` is the local disk (where fsync and atomic rename exist)."""
    return isinstance(fs, LocalFileSystem)


def fsync_dir(path: str) -> None:
    """Make a local directory's entries (created, renamed files) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Write a whole file; on local disk also fsync it, as a later rename relies on it."""
    if not is_local(fs):
        fs.pipe_file(path, data)
        return
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def failpoint(name: str) -> None:
    """Crash-test hook: SIGKILL this process when ``$FORECASTER_FAILPOINT`` equals ``name``.

    SIGKILL rather than an exception, so no ``finally``/atexit cleanup runs, as in a real crash.
    """
    if os.environ.get(FAILPOINT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)


def list_entries(fs: fsspec.AbstractFileSystem, path: str) -> dict[str, str]:
    """{basename: "file" | "directory"} of a directory's direct entries."""
    try:
        entries = fs.ls(path, detail=True)
    except (FileNotFoundError, NotADirectoryError) as err:
        raise ArtifactNotFoundError(f"no model artifact at {path}: directory not found") from err
    out = {}
    for entry in entries:
        full = entry["name"].rstrip("/")
        if full != path.rstrip("/"):  # ls of a file lists the file itself
            out[full.rsplit("/", 1)[-1]] = entry["type"]
    return out


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Parameter checks shared by save and load


@lru_cache(maxsize=64)
def _template(config: ModelConfig) -> dict[str, jax.ShapeDtypeStruct]:
    """Flat {key: ShapeDtypeStruct} the config's model expects; abstract, so no compute."""
    try:
        tree = jax.eval_shape(lambda: init_params(config, 0))
    except Exception as err:  # e.g. absurd sizes from a hostile manifest overflow JAX's shapes
        raise ManifestError(
            f"the model config ({_describe(config)}) cannot be built: {err}"
        ) from err
    return flatten_dict(tree, sep="/")


def _describe(config: ModelConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.to_dict().items())


def _check_keys(keys: set[str], config: ModelConfig, where: str) -> None:
    expected = set(_template(config))
    missing, extra = sorted(expected - keys), sorted(keys - expected)
    if not (missing or extra):
        return
    parts = []
    if missing:
        parts.append(f"missing {_few(missing)}")
    if extra:
        parts.append(f"unexpected {_few(extra)}")
    hint = ""
    if any(k.startswith("params/") for k in extra):
        hint = " (pass variables['params'], not the whole variables dict)"
    raise KeyMismatchError(
        f"{where}: parameter names do not match the model config ({_describe(config)}): "
        f"{'; '.join(parts)}{hint}. The weights were saved for a different model; re-export "
        "them with the config they were trained with."
    )


def _few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _check_dtype(key: str, dtype: str, where: str) -> None:
    if dtype not in ("F32", "float32"):
        raise DTypeError(
            f"{where}: parameter {key!r} is {dtype}, but only float32 weights are accepted; "
            "cast the parameters to float32 (e.g. jax.tree.map(lambda x: x.astype('float32'), "
            "params)) and save again."
        )


def _check_shape(key: str, shape: tuple[int, ...], config: ModelConfig, where: str) -> None:
    expected = tuple(_template(config)[key].shape)
    if tuple(shape) != expected:
        raise ShapeError(
            f"{where}: parameter {key!r} has shape {tuple(shape)} but the config "
            f"({_describe(config)}) needs {expected}. The weights and the config disagree; "
            "re-export the model with the config it was trained with."
        )


def _check_finite(flat: Mapping[str, np.ndarray], where: str) -> None:
    bad = sorted(k for k, v in flat.items() if not np.isfinite(v).all())
    if bad:
        raise NonFiniteWeightsError(
            f"{where}: parameters {_few(bad)} contain NaN or infinity; training diverged. "
            "Retrain (lower the learning rate or clip gradients) or use an earlier version."
        )


def _flatten_params(params: Mapping) -> dict[str, np.ndarray]:
    if not isinstance(params, Mapping):
        raise KeyMismatchError(f"params must be a nested dict of arrays, got {type(params)}")
    flat = flatten_dict(flax.core.unfreeze(params) if hasattr(params, "unfreeze") else params)
    return {"/".join(map(str, k)): np.asarray(v) for k, v in flat.items()}


def _check_params(flat: Mapping[str, np.ndarray], config: ModelConfig, where: str) -> None:
    _check_keys(set(flat), config, where)
    for key, value in flat.items():
        _check_dtype(key, str(value.dtype), where)
        _check_shape(key, value.shape, config, where)
    _check_finite(flat, where)


# --------------------------------------------------------------------------------------------
# Saving


def _library_versions() -> dict[str, str]:
    try:
        own = importlib.metadata.version("forecaster")
    except importlib.metadata.PackageNotFoundError:
        own = "unknown"
    return {
        "forecaster": own,
        "jax": jax.__version__,
        "flax": flax.__version__,
        "numpy": np.__version__,
        "safetensors": safetensors.__version__,
    }


def _jsonable(value: Any) -> Any:
    """Metrics often hold numpy/jax scalars; store them as plain JSON numbers."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, jax.Array):
        value = np.asarray(value)
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


def _prepare_dir(fs: fsspec.AbstractFileSystem, path: str) -> None:
    if fs.exists(path):
        if fs.ls(path, detail=False):
            raise ArtifactError(
                f"{path} is not empty; save each model into a new directory "
                "(artifacts are immutable once written)"
            )
    else:
        fs.makedirs(path, exist_ok=True)


def save_model(
    directory: str | os.PathLike,
    config: ModelConfig,
    params: Mapping,
    *,
    metrics: dict | None = None,
    data_fingerprint: str | None = None,
    freq: str | None = None,
    seasonality: int | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Path | str:
    """Write a model artifact into ``directory`` (created; must be empty if it exists).

    The parameters are checked against the config before anything is written, so a broken
    model is refused at save time rather than at serving time. The manifest is written last:
    a directory holding a manifest is complete. Returns the directory (a ``Path`` for local
    directories, the URL string for fsspec URLs).
    """
    fs, path = _resolve(directory)
    save_to(
        fs,
        path,
        config,
        params,
        metrics=metrics,
        data_fingerprint=data_fingerprint,
        freq=freq,
        seasonality=seasonality,
        extra_files=extra_files,
    )
    return Path(path) if is_local(fs) else os.fspath(directory)


def save_to(
    fs: fsspec.AbstractFileSystem,
    path: str,
    config: ModelConfig,
    params: Mapping,
    *,
    metrics: dict | None = None,
    data_fingerprint: str | None = None,
    freq: str | None = None,
    seasonality: int | None = None,
    extra_files: dict[str, bytes] | None = None,
) -> Manifest:
    """:func:`save_model` on an already resolved filesystem; returns the manifest written."""
    flat = _flatten_params(params)
    _check_params(flat, config, f"saving to {path}")
    extra_files = dict(extra_files or {})
    _check_extra_files(extra_files)
    weights = safetensors.numpy.save(
        {k: np.ascontiguousarray(v) for k, v in flat.items()},
        metadata={"format": "forecaster", "format_version": str(FORMAT_VERSION)},
    )
    blobs = {WEIGHTS: weights, **{k: bytes(v) for k, v in extra_files.items()}}
    try:
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            config=config,
            freq=freq,
            seasonality=seasonality,
            data_fingerprint=data_fingerprint,
            metrics=_jsonable(metrics or {}),
            created_at=datetime.now(UTC),
            library_versions=_library_versions(),
            files={name: _sha256(data) for name, data in blobs.items()},
        )
    except pydantic.ValidationError as err:
        raise ManifestError(f"cannot save to {path}: {err}") from err
    _prepare_dir(fs, path)
    for name, data in blobs.items():
        write_bytes(fs, _join(path, name), data)
        failpoint("save:after-" + name.split(".")[0])
    write_bytes(fs, _join(path, MANIFEST), manifest.model_dump_json(indent=2).encode())
    if is_local(fs):
        fsync_dir(path)
    return manifest


# --------------------------------------------------------------------------------------------
# Reading and verifying


def parse_manifest(data: bytes, where: str = "manifest.json") -> Manifest:
    """Parse manifest bytes: JSON, then the format version, then the schema."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where} is {len(data)} bytes, too large to be a manifest")
    try:
        raw = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ManifestError(
            f"{where} is not valid JSON ({err}); the artifact is damaged, re-export it"
        ) from err
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} must hold a JSON object, found {type(raw).__name__}")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{where} has no integer 'format_version'; not a forecaster model")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        newer = version > FORMAT_VERSION
        raise FormatVersionError(
            f"{where} has artifact format version {version}, but this forecaster "
            f"({_library_versions()['forecaster']}) reads format version(s) "
            f"{sorted(SUPPORTED_FORMAT_VERSIONS)}; "
            + (
                "upgrade forecaster to load it."
                if newer
                else "re-export the model with a current forecaster."
            )
        )
    try:
        return Manifest.model_validate(raw)
    except pydantic.ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ManifestError(f"{where} does not match the manifest schema: {problems}") from err


def _read_manifest(fs: fsspec.AbstractFileSystem, path: str) -> Manifest:
    where = _join(path, MANIFEST)
    entries = list_entries(fs, path)
    if MANIFEST not in entries:
        raise ManifestError(
            f"no {MANIFEST} in {path}: not a saved model, or its save did not finish"
        )
    return parse_manifest(fs.cat_file(where), where)


def read_manifest(directory: str | os.PathLike) -> Manifest:
    """The artifact's manifest, schema-checked, without reading or hashing other files."""
    return _read_manifest(*_resolve(directory))


def _read_verified_files(
    fs: fsspec.AbstractFileSystem, path: str, manifest: Manifest
) -> dict[str, bytes]:
    """Every listed file's bytes, each checked against the manifest's sha256."""
    entries = list_entries(fs, path)
    unexpected = sorted(n for n in entries if n != MANIFEST and n not in manifest.files)
    if unexpected:
        raise IntegrityError(
            f"{path} holds files the manifest does not list: {_few(unexpected)}; someone "
            "modified the artifact. Remove them or re-export the model."
        )
    blobs = {}
    for name, digest in manifest.files.items():
        if entries.get(name) != "file":
            raise IntegrityError(f"{_join(path, name)} is missing; the artifact is incomplete")
        data = fs.cat_file(_join(path, name))
        if _sha256(data) != digest:
            raise IntegrityError(
                f"{_join(path, name)} is corrupt: its sha256 differs from the manifest "
                "(damaged or tampered with); restore it from a backup or re-export the model."
            )
        blobs[name] = data
    return blobs


def _safetensors_header(data: bytes, where: str) -> dict[str, dict]:
    """The tensors' {name: {dtype, shape, data_offsets}} from the safetensors JSON header."""
    hint = " (it looks like a pickle, which is never loaded)" if data[:1] == b"\x80" else ""
    if len(data) < 8:
        raise WeightsFormatError(f"{where} is too short to be a safetensors file{hint}")
    size = int.from_bytes(data[:8], "little")
    if size > min(len(data) - 8, MAX_HEADER_BYTES):
        raise WeightsFormatError(f"{where} is not a safetensors file{hint}; re-export the model")
    try:
        header = json.loads(data[8 : 8 + size])
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsFormatError(f"{where} has a damaged safetensors header{hint}") from err
    if not isinstance(header, dict):
        raise WeightsFormatError(f"{where} has a damaged safetensors header")
    header.pop("__metadata__", None)
    for key, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)):
            raise WeightsFormatError(f"{where}: tensor {key!r} has a damaged header entry")
    return header


def _parse_weights(data: bytes, config: ModelConfig, where: str) -> dict[str, np.ndarray]:
    header = _safetensors_header(data, where)
    _check_keys(set(header), config, where)
    for key, info in header.items():
        _check_dtype(key, str(info.get("dtype")), where)
        _check_shape(key, tuple(info["shape"]), config, where)
    try:
        flat = safetensors.numpy.load(data)
    except Exception as err:  # the Rust parser raises its own SafetensorError type
        raise WeightsFormatError(f"{where} is a damaged safetensors file: {err}") from err
    _check_finite(flat, where)
    return flat


def _verify(fs: fsspec.AbstractFileSystem, path: str) -> tuple[Manifest, dict[str, np.ndarray]]:
    manifest = _read_manifest(fs, path)
    blobs = _read_verified_files(fs, path, manifest)
    flat = _parse_weights(blobs[WEIGHTS], manifest.config, _join(path, WEIGHTS))
    return manifest, flat


def verify(directory: str | os.PathLike) -> Manifest:
    """Run every check :func:`load_model` runs, without building the parameter tree."""
    manifest, _ = _verify(*_resolve(directory))
    return manifest


def load_from(fs: fsspec.AbstractFileSystem, path: str) -> LoadedModel:
    """:func:`load_model` on an already resolved filesystem (used by the registry)."""
    manifest, flat = _verify(fs, path)
    params = unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
    return LoadedModel(config=manifest.config, params=params, manifest=manifest)


def verify_at(fs: fsspec.AbstractFileSystem, path: str) -> Manifest:
    """:func:`verify` on an already resolved filesystem (used by the registry)."""
    return _verify(fs, path)[0]


def read_manifest_at(fs: fsspec.AbstractFileSystem, path: str) -> Manifest:
    """:func:`read_manifest` on an already resolved filesystem (used by the registry)."""
    return _read_manifest(fs, path)


def load_model(directory: str | os.PathLike) -> LoadedModel:
    """Load and fully verify a model artifact from a local path or an fsspec URL."""
    return load_from(*_resolve(directory))
