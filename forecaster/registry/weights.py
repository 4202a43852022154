"""The weights of an artifact: parameter trees checked against what the model config needs.

The expected names, shapes and dtype come from :func:`forecaster.model.init_params` traced with
``jax.eval_shape`` (abstract, no compute); JAX is imported only when a template is needed, so
listing a registry never pays for it. The safetensors header is parsed and checked here before
any tensor is materialised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import numpy as np

from forecaster.configs import ModelConfig
from forecaster.registry.manifest import (
    DTypeError,
    KeyMismatchError,
    ManifestError,
    NonFiniteWeightsError,
    ShapeError,
    WeightsFormatError,
    load_json,
)

# Room for the safetensors JSON header beyond the tensor data: a fixed part (metadata, padding)
# plus a generous allowance per tensor entry (name, dtype, shape, offsets).
HEADER_BASE_BYTES = 64 * 1024
HEADER_BYTES_PER_TENSOR = 1024


@lru_cache(maxsize=64)
def template(config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Flat {key: shape} of the float32 parameters ``config``'s model needs; no compute."""
    import jax  # here, so that reading manifests and listing a registry do not import JAX

    from forecaster.model import init_params

    try:
        tree = jax.eval_shape(lambda: init_params(config, 0))
    except Exception as err:  # e.g. absurd sizes from a hostile manifest overflow JAX's shapes
        raise ManifestError(
            f"the model config ({describe(config)}) cannot be built: {err}"
        ) from err
    return {k: tuple(v.shape) for k, v in flatten(tree).items()}


def max_weights_bytes(config: ModelConfig) -> int:
    """Largest plausible weights.safetensors for ``config``: its float32 data plus the header."""
    shapes = template(config)
    data = sum(4 * math.prod(shape) for shape in shapes.values())
    return 8 + HEADER_BASE_BYTES + HEADER_BYTES_PER_TENSOR * len(shapes) + data


def describe(config: ModelConfig) -> str:
    return ", ".join(f"{k}={v}" for k, v in config.to_dict().items())


def few(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(repr(k) for k in keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


# --------------------------------------------------------------------------------------------
# Trees


def flatten(tree: Mapping, prefix: str = "") -> dict[str, Any]:
    """{"a/b/c": leaf} of a nested mapping (dicts, FrozenDicts); empty mappings vanish."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}/"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def unflatten(flat: Mapping[str, Any]) -> dict:
    """The nested dict of a flat {"a/b/c": leaf} mapping."""
    tree: dict = {}
    for key, value in flat.items():
        *parents, last = key.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return tree


def flatten_params(params: Mapping) -> dict[str, np.ndarray]:
    """{key: numpy array} of a parameter tree (numpy, JAX or flax FrozenDict leaves)."""
    if not isinstance(params, Mapping):
        raise KeyMismatchError(f"params must be a nested dict of arrays, got {type(params)}")
    return {k: np.asarray(v) for k, v in flatten(params).items()}


# --------------------------------------------------------------------------------------------
# Checks


def check_keys(keys: set[str], config: ModelConfig, where: str) -> None:
    expected = set(template(config))
    missing, extra = sorted(expected - keys), sorted(keys - expected)
    if not (missing or extra):
        return
    parts = []
    if missing:
        parts.append(f"missing {few(missing)}")
    if extra:
        parts.append(f"unexpected {few(extra)}")
    hint = ""
    if any(k.startswith("params/") for k in extra):
        hint = " (pass variables['params'], not the whole variables dict)"
    raise KeyMismatchError(
        f"{where}: parameter names do not match the model config ({describe(config)}): "
        f"{'; '.join(parts)}{hint}. The weights were saved for a different model; re-export "
        "them with the config they were trained with."
    )


def check_dtype(key: str, dtype: str, where: str) -> None:
    if dtype not in ("F32", "float32"):
        raise DTypeError(
            f"{where}: parameter {key!r} is {dtype}, but only float32 weights are accepted; "
            "cast the parameters to float32 (e.g. jax.tree.map(lambda x: x.astype('float32'), "
            "params)) and save again."
        )


def check_shape(key: str, shape: tuple[int, ...], config: ModelConfig, where: str) -> None:
    expected = template(config)[key]
    if tuple(shape) != expected:
        raise ShapeError(
            f"{where}: parameter {key!r} has shape {tuple(shape)} but the config "
            f"({describe(config)}) needs {expected}. The weights and the config disagree; "
            "re-export the model with the config it was trained with."
        )


def check_finite(flat: Mapping[str, np.ndarray], where: str) -> None:
    bad = sorted(k for k, v in flat.items() if not np.isfinite(v).all())
    if bad:
        raise NonFiniteWeightsError(
            f"{where}: parameters {few(bad)} contain NaN or infinity; training diverged. "
            "Retrain (lower the learning rate or clip gradients) or use an earlier version."
        )


def check_params(flat: Mapping[str, np.ndarray], config: ModelConfig, where: str) -> None:
    """Names, float32 dtype, shapes and finiteness of a flat parameter dict."""
    check_keys(set(flat), config, where)
    for key, value in flat.items():
        check_dtype(key, str(value.dtype), where)
        check_shape(key, value.shape, config, where)
    check_finite(flat, where)


# --------------------------------------------------------------------------------------------
# safetensors


def read_header(data: bytes, where: str) -> tuple[dict[str, dict], dict[str, str]]:
    """(tensors {name: {dtype, shape, data_offsets}}, metadata) from a safetensors header."""
    hint = " (it looks like a pickle, which is never loaded)" if data[:1] == b"\x80" else ""
    if len(data) < 8:
        raise WeightsFormatError(f"{where} is too short to be a safetensors file{hint}")
    size = int.from_bytes(data[:8], "little")
    if size > len(data) - 8:
        raise WeightsFormatError(f"{where} is not a safetensors file{hint}; re-export the model")
    header = load_json(data[8 : 8 + size], f"{where} (safetensors header)", WeightsFormatError)
    if not isinstance(header, dict):
        raise WeightsFormatError(f"{where} has a damaged safetensors header")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise WeightsFormatError(f"{where} has damaged safetensors metadata")
    for key, info in header.items():
        if not (isinstance(info, dict) and isinstance(info.get("shape"), list)):
            raise WeightsFormatError(f"{where}: tensor {key!r} has a damaged header entry")
    return header, metadata


def parse_weights(
    data: bytes, config: ModelConfig, where: str
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Checked float32 tensors {key: array} of safetensors bytes for ``config``'s model, and the
    file's metadata."""
    import safetensors.numpy

    header, metadata = read_header(data, where)
    check_keys(set(header), config, where)
    for key, info in header.items():
        check_dtype(key, str(info.get("dtype")), where)
        check_shape(key, tuple(info["shape"]), config, where)
    try:
        flat = safetensors.numpy.load(data)
    except Exception as err:  # the Rust parser raises its own SafetensorError type
        raise WeightsFormatError(f"{where} is a damaged safetensors file: {err}") from err
    check_finite(flat, where)
    return flat, metadata


def encode_weights(flat: Mapping[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    """safetensors bytes of a flat float32 parameter dict."""
    import safetensors.numpy

    return safetensors.numpy.save(
        {k: np.ascontiguousarray(v) for k, v in flat.items()}, metadata=metadata
    )
