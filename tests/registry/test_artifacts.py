"""Tests of forecaster.registry.artifacts: round trips, and refusal of every kind of damage.

The committed fixtures are only loaded, so a change to the format either keeps old models
loadable or must refuse them with a clear message: tests/registry/fixtures/gru_h8_v1/ was
written in format 1 (no manifest binding) by an earlier forecaster and must keep loading;
tests/registry/fixtures/gru_h8_v2/ is written by :func:`write_fixture`
(``python -m tests.registry.test_artifacts``) in the current format.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickletools
import resource
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
import safetensors.numpy
from flax.traverse_util import flatten_dict, unflatten_dict
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from forecaster.model import ModelConfig, init_params
from forecaster.registry import artifacts as A
from forecaster.registry import storage

FIXTURE = Path(__file__).parent / "fixtures" / "gru_h8_v1"
FIXTURE_V2 = Path(__file__).parent / "fixtures" / "gru_h8_v2"
FIXTURE_CONFIG = ModelConfig(ensemble=1, cell="gru", hidden=8, input_size=48, step=24, horizon=4)
CFG = ModelConfig(
    ensemble=1, cell="gru", hidden=8, input_size=48, step=24, horizon=4, quantiles=(0.1, 0.9)
)


def make_params(config: ModelConfig, seed: int = 0) -> dict:
    """Deterministic float32 params of the right shapes, without running JAX's initialisers
    (numpy's PCG64 stream is stable across versions, so the fixture's values are reproducible)."""
    rng = np.random.default_rng(seed)
    shapes = flatten_dict(jax.eval_shape(lambda: init_params(config)), sep="/")
    flat = {k: (0.1 * rng.standard_normal(s.shape)).astype(np.float32) for k, s in shapes.items()}
    return unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})


def write_fixture(directory: Path = FIXTURE_V2) -> None:
    """Regenerate the committed fixture (only when the format deliberately changes)."""
    shutil.rmtree(directory, ignore_errors=True)
    A.save_model(
        directory,
        FIXTURE_CONFIG,
        make_params(FIXTURE_CONFIG, seed=0),
        metrics={"val_mase": 0.9, "test_mase": 1.1},
        data_fingerprint="fixture-data-v1",
        freq="h",
        seasonality=24,
        extra_files={"report.json": b'{"note": "fixture"}\n'},
    )


def _flat(params: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in flatten_dict(params, sep="/").items()}


def _assert_params_equal(a: dict, b: dict) -> None:
    fa, fb = _flat(a), _flat(b)
    assert fa.keys() == fb.keys()
    for key in fa:
        np.testing.assert_array_equal(fa[key], fb[key], err_msg=key)
        assert fa[key].dtype == np.float32


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    directory = tmp_path / "model"
    A.save_model(
        directory,
        CFG,
        make_params(CFG),
        metrics={"val_mase": np.float32(0.9), "nested": {"h1": 1.5}},
        data_fingerprint="sha256:abc",
        freq="h",
        seasonality=24,
        extra_files={"report.json": b"{}"},
    )
    return directory


# ------------------------------------------------------------------------------ round trips


def test_round_trip_local(artifact: Path) -> None:
    loaded = A.load_model(artifact)
    assert loaded.config == CFG
    _assert_params_equal(loaded.params, make_params(CFG))
    m = loaded.manifest
    assert m.format_version == A.FORMAT_VERSION
    assert m.metrics == {"val_mase": 0.9, "nested": {"h1": 1.5}}
    assert (m.freq, m.seasonality, m.data_fingerprint) == ("h", 24, "sha256:abc")
    assert m.normalization.name == "log-mean-ratio"
    assert m.created_at.utcoffset().total_seconds() == 0
    assert {"forecaster", "jax", "flax", "numpy"} <= set(m.library_versions)
    assert set(m.files) == {"weights.safetensors", "report.json"}
    assert A.verify(artifact) == m
    raw = json.loads((artifact / "manifest.json").read_text())
    assert raw["config"] == CFG.to_dict() and raw["format_version"] == A.FORMAT_VERSION == 3


def test_round_trip_fsspec_memory() -> None:
    url = f"memory://artifacts-{uuid.uuid4().hex}/model"
    assert A.save_model(url, CFG, make_params(CFG), metrics={"x": 1.0}) == url
    loaded = A.load_model(url)
    assert loaded.config == CFG and loaded.manifest.metrics == {"x": 1.0}
    _assert_params_equal(loaded.params, make_params(CFG))
    assert A.read_manifest(url) == loaded.manifest


def test_loaded_params_run_the_model(artifact: Path) -> None:
    from forecaster.model import forward

    loaded = A.load_model(artifact)
    out = forward(loaded.config, loaded.params, np.zeros((2, CFG.input_size), np.float32))
    assert out.shape == (2, CFG.horizon, CFG.outputs)


# ------------------------------------------------------------------------------ saving refuses


def test_save_refuses_non_empty_directory(artifact: Path) -> None:
    with pytest.raises(A.ArtifactError, match="not empty"):
        A.save_model(artifact, CFG, make_params(CFG))


BIAS = "members/head/bias"
BAD_PARAMS: dict[str, tuple[Callable[[dict], object], type[Exception], str]] = {
    "extra key": (lambda f: f.update(x=f[BIAS]), A.KeyMismatchError, "unexpected 'x'"),
    "missing key": (lambda f: f.pop(BIAS), A.KeyMismatchError, "missing"),
    "wrong shape": (lambda f: f.update({BIAS: f[BIAS][:, :1]}), A.ShapeError, r"\(1, 1\)"),
    "float64": (lambda f: f.update({BIAS: f[BIAS].astype(np.float64)}), A.DTypeError, "float32"),
    "inf": (
        lambda f: f["members/head/kernel"].__setitem__((0, 0, 0), np.inf),
        A.NonFiniteWeightsError,
        "members/head/kernel",
    ),
}


@pytest.mark.parametrize("case", list(BAD_PARAMS))
def test_save_refuses_bad_params(tmp_path: Path, case: str) -> None:
    mutate, error, match = BAD_PARAMS[case]
    flat = _flat(make_params(CFG))
    mutate(flat)
    params = unflatten_dict({tuple(k.split("/")): v for k, v in flat.items()})
    with pytest.raises(error, match=match):
        A.save_model(tmp_path / "m", CFG, params)
    assert not (tmp_path / "m").exists()


def test_save_hints_at_variables_dict(tmp_path: Path) -> None:
    with pytest.raises(A.KeyMismatchError, match=r"variables\['params'\]"):
        A.save_model(tmp_path / "m", CFG, {"params": make_params(CFG)})


@pytest.mark.parametrize("name", ["../evil", "manifest.json", "weights.safetensors", "a/b", ""])
def test_save_refuses_bad_extra_file_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(A.ArtifactError, match="not allowed"):
        A.save_model(tmp_path / "m", CFG, make_params(CFG), extra_files={name: b"x"})


# ------------------------------------------------------------------------------ loading refuses


def _resign(directory: Path) -> None:
    """Rewrite the manifest's hashes to match the files, so the checks after the hash run."""
    manifest = json.loads((directory / "manifest.json").read_text())
    manifest["files"] = {
        name: hashlib.sha256((directory / name).read_bytes()).hexdigest()
        for name in manifest["files"]
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _rewrite_weights(directory: Path, mutate: Callable[[dict], object]) -> None:
    path = directory / "weights.safetensors"
    flat = safetensors.numpy.load_file(path)
    with safetensors.safe_open(path, "np") as f:
        metadata = f.metadata()  # kept, so only the mutation differs from a real save
    mutate(flat)
    path.write_bytes(safetensors.numpy.save(flat, metadata=metadata))
    _resign(directory)


def _edit_manifest(directory: Path, mutate: Callable[[dict], object]) -> None:
    manifest = json.loads((directory / "manifest.json").read_text())
    mutate(manifest)
    (directory / "manifest.json").write_text(json.dumps(manifest))


def _flip_byte(path: Path, offset: int = -5) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-7])


HEAD = "members/head/kernel"
CORRUPTIONS: dict[str, tuple[Callable[[Path], object], type[Exception], str]] = {
    "flipped byte": (lambda d: _flip_byte(d / "weights.safetensors"), A.IntegrityError, "sha256"),
    "flipped header byte": (
        lambda d: _flip_byte(d / "weights.safetensors", 12),
        A.IntegrityError,
        "corrupt",
    ),
    "truncated": (lambda d: _truncate(d / "weights.safetensors"), A.IntegrityError, "corrupt"),
    "weights missing": (
        lambda d: (d / "weights.safetensors").unlink(),
        A.IntegrityError,
        "missing",
    ),
    "extra file corrupted": (
        lambda d: _flip_byte(d / "report.json", 0),
        A.IntegrityError,
        "report.json is corrupt",
    ),
    "unlisted file": (
        lambda d: (d / "evil.py").write_text("print(1)"),
        A.IntegrityError,
        "evil.py",
    ),
    "truncated, re-hashed": (
        lambda d: (_truncate(d / "weights.safetensors"), _resign(d)),
        A.WeightsFormatError,
        "safetensors",
    ),
    "wrong shape": (
        lambda d: _rewrite_weights(d, lambda f: f.update({HEAD: np.zeros((1, 8, 5), np.float32)})),
        A.ShapeError,
        r"members/head/kernel.*\(1, 8, 5\).*\(1, 8, 12\)",
    ),
    "extra key": (
        lambda d: _rewrite_weights(d, lambda f: f.update(bonus=np.zeros(3, np.float32))),
        A.KeyMismatchError,
        "unexpected 'bonus'",
    ),
    "missing key": (
        lambda d: _rewrite_weights(d, lambda f: f.pop(HEAD)),
        A.KeyMismatchError,
        "missing 'members/head/kernel'",
    ),
    "NaN weight": (
        lambda d: _rewrite_weights(d, lambda f: f[HEAD].__setitem__((0, 1, 2), np.nan)),
        A.NonFiniteWeightsError,
        "NaN",
    ),
    "float16 leaf": (
        lambda d: _rewrite_weights(d, lambda f: f.update({HEAD: f[HEAD].astype(np.float16)})),
        A.DTypeError,
        "F16.*float32",
    ),
    "float64 leaf": (
        lambda d: _rewrite_weights(d, lambda f: f.update({HEAD: f[HEAD].astype(np.float64)})),
        A.DTypeError,
        "F64",
    ),
    "config disagrees with weights": (
        lambda d: _edit_manifest(d, lambda m: m["config"].update(hidden=16)),
        A.ShapeError,
        "hidden=16",
    ),
    "absurd size in config": (
        lambda d: _edit_manifest(d, lambda m: m["config"].update(hidden=10**30)),
        A.ManifestError,
        r"hidden must be an integer in \[1, 8192\]",
    ),
    "manifest bad JSON": (
        lambda d: (d / "manifest.json").write_text('{"format_version": 1,'),
        A.ManifestError,
        "not valid JSON",
    ),
    "manifest not an object": (
        lambda d: (d / "manifest.json").write_text("[1]"),
        A.ManifestError,
        "JSON object",
    ),
    "manifest wrong type": (
        lambda d: _edit_manifest(d, lambda m: m["config"].update(hidden="8")),
        A.ManifestError,
        "hidden",
    ),
    "manifest unknown key": (
        lambda d: _edit_manifest(d, lambda m: m.update(surprise=1)),
        A.ManifestError,
        "surprise",
    ),
    "manifest missing field": (
        lambda d: _edit_manifest(d, lambda m: m.pop("created_at")),
        A.ManifestError,
        "created_at",
    ),
    "manifest bad hash": (
        lambda d: _edit_manifest(d, lambda m: m["files"].update({"weights.safetensors": "zz"})),
        A.ManifestError,
        "sha256",
    ),
    "manifest hashes a traversal path": (
        lambda d: _edit_manifest(d, lambda m: m["files"].update({"../x": "0" * 64})),
        A.ManifestError,
        "invalid file name",
    ),
    "unknown normalisation": (
        lambda d: _edit_manifest(d, lambda m: m["normalization"].update(name="z-score")),
        A.ManifestError,
        "normalization",
    ),
    "manifest missing": (
        lambda d: (d / "manifest.json").unlink(),
        A.ManifestError,
        "no manifest.json",
    ),
    "no format version": (
        lambda d: _edit_manifest(d, lambda m: m.pop("format_version")),
        A.ManifestError,
        "format_version",
    ),
    "format version 999": (
        lambda d: _edit_manifest(d, lambda m: m.update(format_version=999)),
        A.FormatVersionError,
        "format version 999.*upgrade forecaster",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_corrupted_artifact_is_refused(artifact: Path, case: str) -> None:
    corrupt, error, match = CORRUPTIONS[case]
    corrupt(artifact)
    with pytest.raises(error, match=match) as info:
        A.load_model(artifact)
    assert type(info.value) is error  # the specific class, not just a base
    with pytest.raises(error):
        A.verify(artifact)


def test_unknown_url_protocol_is_an_artifact_error() -> None:
    with pytest.raises(A.ArtifactError, match="Protocol not known"):
        A.load_model("nosuchproto://bucket/model")


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(A.ArtifactNotFoundError, match="not found"):
        A.load_model(tmp_path / "nothing")
    with pytest.raises(A.ArtifactNotFoundError):
        A.load_model(f"memory://missing-{uuid.uuid4().hex}")


def _marker_pickle(marker: Path) -> bytes:
    """Protocol-0 pickle whose unpickling calls builtins.open(marker, 'w'), creating the file.

    Written by hand so that no pickle module is imported anywhere in this tree.
    """
    return f"cbuiltins\nopen\n(V{marker}\nVw\ntR.".encode()


@pytest.mark.parametrize("rehash", [False, True])
def test_pickle_renamed_as_weights_is_never_executed(
    artifact: Path, tmp_path: Path, rehash: bool
) -> None:
    marker = tmp_path / "pwned"
    payload = _marker_pickle(marker)
    ops = [op.name for op, _, _ in pickletools.genops(payload)]  # parses, never executes
    assert ops == ["GLOBAL", "MARK", "UNICODE", "UNICODE", "TUPLE", "REDUCE", "STOP"]
    (artifact / "weights.safetensors").write_bytes(payload)
    if rehash:
        _resign(artifact)
    error = A.WeightsFormatError if rehash else A.IntegrityError
    with pytest.raises(error):
        A.load_model(artifact)
    assert not marker.exists()


def test_binary_pickle_is_named_in_the_message(artifact: Path, tmp_path: Path) -> None:
    # Protocol >= 2 pickles start with the PROTO opcode 0x80; the message should say so.
    (artifact / "weights.safetensors").write_bytes(b"\x80\x04" + _marker_pickle(tmp_path / "p"))
    _resign(artifact)
    with pytest.raises(A.WeightsFormatError, match="pickle"):
        A.load_model(artifact)
    assert not (tmp_path / "p").exists()


def test_hashes_are_checked_before_parsing(artifact: Path, monkeypatch) -> None:
    _flip_byte(artifact / "weights.safetensors")
    monkeypatch.setattr(A, "parse_weights", lambda *a: pytest.fail("parsed unverified bytes"))
    with pytest.raises(A.IntegrityError):
        A.load_model(artifact)


# ------------------------------------------------------------------------------ fuzzing

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    field=st.sampled_from([*CFG.to_dict(), "format_version", "created_at", "files", "metrics"]),
    data=st.data(),
)
def test_fuzzed_manifest_is_refused_unless_unchanged(
    artifact: Path, field: str, data: st.DataObject
) -> None:
    """Any edit is refused, each with its documented error: a manifest the schema refuses is a
    ManifestError naming manifest.json; a well-formed edit breaks the binding to the weights
    (ManifestMismatchError), unless an edited config no longer fits the weights, which their
    own checks say first. Only a draw equal to the saved value (as JSON) loads."""
    original = (artifact / "manifest.json").read_text()
    edited = json.loads(original)
    target = edited if field in edited else edited["config"]
    target[field] = data.draw(JSON | _like(target[field]), label="value")
    unchanged = _canonical(edited) == _canonical(json.loads(original))
    try:
        (artifact / "manifest.json").write_text(json.dumps(edited))
        if unchanged:
            assert A.load_model(artifact).config == CFG
            event("unchanged: loads")
            return
        try:
            A.read_manifest(artifact)
        except A.ManifestError as err:
            with pytest.raises(A.ManifestError) as refused:
                A.load_model(artifact)
            assert str(refused.value) == str(err) and "manifest.json" in str(err)
            event("refused by the schema")
            return
        with pytest.raises(A.ArtifactError) as refused:
            A.load_model(artifact)
        if isinstance(refused.value, A.ManifestMismatchError):
            assert "edited after the model was saved" in str(refused.value)
            event("well-formed: refused by the binding")
        else:  # checks that run before the binding's: the listed files, and the weights an
            # edited config asks for
            assert field in {*CFG.to_dict(), "files"}, refused.value
            assert isinstance(refused.value, A.IntegrityError | A.KeyMismatchError | A.ShapeError)
            event(f"well-formed: refused with {type(refused.value).__name__}")
    finally:
        (artifact / "manifest.json").write_text(original)


def _like(saved: object) -> st.SearchStrategy:
    """Values of the saved one's JSON type (itself included), so that many draws pass the schema
    and reach the checks behind it."""
    if isinstance(saved, bool):
        return st.booleans()
    if isinstance(saved, int):
        return st.integers(min_value=-1, max_value=2 * saved + 2)
    if isinstance(saved, float):
        return st.just(saved) | st.floats(min_value=-1.0, max_value=2 * saved + 2)
    if isinstance(saved, str):
        return st.just(saved) | st.text(max_size=8)
    if isinstance(saved, list):
        items = _like(saved[0]) if saved else JSON
        return st.just(saved) | st.lists(items, max_size=len(saved) + 1)
    if isinstance(saved, dict):
        keys = st.sampled_from(sorted(saved)) if saved else st.text(max_size=8)
        return st.just(saved) | st.dictionaries(keys | st.text(max_size=8), JSON, max_size=3)
    return JSON


def _canonical(manifest: dict) -> str:
    return json.dumps(manifest, sort_keys=True, separators=(",", ":"))


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(["members/head/kernel", "members/head/bias"]), entry=JSON)
def test_fuzzed_weights_header_raises_only_artifact_errors(artifact: Path, key: str, entry) -> None:
    weights = (artifact / "weights.safetensors").read_bytes()
    size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + size])
    header[key] = entry
    blob = json.dumps(header).encode()
    try:
        (artifact / "weights.safetensors").write_bytes(
            len(blob).to_bytes(8, "little") + blob + weights[8 + size :]
        )
        _resign(artifact)
        with pytest.raises(A.ArtifactError):
            A.load_model(artifact)
    finally:
        (artifact / "weights.safetensors").write_bytes(weights)
        _resign(artifact)


# ------------------------------------------------------------------------------ committed fixture


def test_committed_fixture_loads() -> None:
    loaded = A.load_model(FIXTURE)
    assert loaded.config == FIXTURE_CONFIG
    assert loaded.manifest.format_version == 1
    assert loaded.manifest.metrics == {"val_mase": 0.9, "test_mase": 1.1}
    assert loaded.manifest.data_fingerprint == "fixture-data-v1"
    assert (loaded.manifest.freq, loaded.manifest.seasonality) == ("h", 24)
    _assert_params_equal(loaded.params, make_params(FIXTURE_CONFIG, seed=0))
    assert sum(p.stat().st_size for p in FIXTURE.iterdir()) < 16_000


def test_fixture_with_future_format_version_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "future"
    shutil.copytree(FIXTURE, copy)
    _edit_manifest(copy, lambda m: m.update(format_version=999))
    with pytest.raises(A.FormatVersionError, match="format version") as info:
        A.load_model(copy)
    assert "999" in str(info.value) and "[1, 2, 3, 4]" in str(info.value)


def test_committed_v2_fixture_loads() -> None:
    loaded = A.load_model(FIXTURE_V2)
    assert loaded.config == FIXTURE_CONFIG and loaded.manifest.format_version == 2
    assert loaded.manifest.calibration is None  # older models load, uncalibrated
    assert (loaded.manifest.freq, loaded.manifest.seasonality) == ("h", 24)
    _assert_params_equal(loaded.params, make_params(FIXTURE_CONFIG, seed=0))


# The data section (every float, in order) of the shipped model's weights.safetensors when it was
# format 1; re-exported as format 2 only its safetensors metadata changed.
SHIPPED = Path(__file__).resolve().parents[2] / "models" / "m4-hourly" / "1"
SHIPPED_DATA_SHA256 = "da0ba3ea117cfac3c5514eea1f516cf792999451a6a12cefbd10384d39401391"


def test_shipped_model_is_bound_and_keeps_its_weights() -> None:
    # Format 3: re-saved with its calibration (benchmarks/calibrate_model.py), same weights.
    manifest = A.verify(SHIPPED)
    assert manifest.format_version == 3 and manifest.calibration is not None
    data = (SHIPPED / "weights.safetensors").read_bytes()
    size = int.from_bytes(data[:8], "little")
    assert hashlib.sha256(data[8 + size :]).hexdigest() == SHIPPED_DATA_SHA256


# ------------------------------------------------------------------------------ manifest binding

EDITS: dict[str, Callable[[dict], object]] = {
    "config.input_size": lambda m: m["config"].update(input_size=24),
    "freq": lambda m: m.update(freq="D"),
    "seasonality": lambda m: m.update(seasonality=7),
    "normalization": lambda m: m["normalization"].update(max_log_ratio=5.0),
    "metrics": lambda m: m["metrics"].update(val_mase=0.1),
    "data_fingerprint": lambda m: m.update(data_fingerprint="other"),
    "claims format 1": lambda m: m.update(format_version=1),
    "claims format 1, smaller window": lambda m: (
        m.update(format_version=1),
        m["config"].update(input_size=24),
    ),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_any_manifest_edit_fails_verification(artifact: Path, edit: str) -> None:
    _edit_manifest(artifact, EDITS[edit])
    A.read_manifest(artifact)  # still a well-formed manifest: the binding is what catches it
    with pytest.raises(A.ManifestMismatchError, match="edited after the model was saved"):
        A.load_model(artifact)
    with pytest.raises(A.ManifestMismatchError):
        A.verify(artifact)


def test_v2_manifest_needs_a_digest_in_the_weights(artifact: Path) -> None:
    _rewrite_weights(artifact, lambda f: None)  # same tensors, re-saved with our metadata
    A.verify(artifact)
    path = artifact / "weights.safetensors"
    path.write_bytes(safetensors.numpy.save(safetensors.numpy.load_file(path)))  # no metadata
    _resign(artifact)
    with pytest.raises(A.ManifestMismatchError, match="no manifest digest"):
        A.load_model(artifact)


def test_v1_fixture_claiming_v2_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(FIXTURE, copy)
    A.verify(copy)
    _edit_manifest(copy, lambda m: m.update(format_version=2))
    with pytest.raises(A.ManifestMismatchError, match="no manifest digest"):
        A.load_model(copy)


def test_v1_manifest_with_weights_claiming_v2_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "v1"
    shutil.copytree(FIXTURE, copy)
    path = copy / "weights.safetensors"
    flat = safetensors.numpy.load_file(path)
    path.write_bytes(safetensors.numpy.save(flat, metadata={"format_version": "2"}))
    _resign(copy)
    with pytest.raises(A.ManifestMismatchError):
        A.load_model(copy)


# ------------------------------------------------------------------------------ bounded reads

SPARSE_SIZE = 3 * 1024**3


def _sparse(path: Path, size: int = SPARSE_SIZE) -> None:
    """A file of ``size`` bytes that takes no disk space (and would take ``size`` to read)."""
    path.unlink(missing_ok=True)
    with open(path, "wb") as f:
        f.truncate(size)


@contextlib.contextmanager
def refused_quickly(seconds: float = 10.0, mib: int = 256) -> Iterator[None]:
    """Asserts the block took under ``seconds`` and raised peak memory by under ``mib``."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    start = time.monotonic()
    yield
    assert time.monotonic() - start < seconds
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak < mib * 1024


def _in_thread(call: Callable[[], object], seconds: float = 20.0) -> BaseException | None:
    """Run ``call`` in a daemon thread; fail if it is still running after ``seconds`` (a hang)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as err:
            outcome.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} hung"
    return outcome[0]


def test_huge_sparse_manifest_is_refused_before_reading(artifact: Path) -> None:
    _sparse(artifact / "manifest.json")
    with refused_quickly():
        with pytest.raises(A.ManifestError, match="too large to be a manifest"):
            A.read_manifest(artifact)
        with pytest.raises(A.ManifestError, match="too large"):
            A.load_model(artifact)


@pytest.mark.parametrize("name", ["weights.safetensors", "report.json"])
def test_huge_sparse_file_is_refused_before_reading(artifact: Path, name: str) -> None:
    _sparse(artifact / name)
    with refused_quickly(), pytest.raises(A.IntegrityError, match=f"{name} is {SPARSE_SIZE} bytes"):
        A.load_model(artifact)


def test_weights_cap_follows_the_config(artifact: Path) -> None:
    from forecaster.registry.weights import max_weights_bytes

    size = (artifact / "weights.safetensors").stat().st_size
    cap = max_weights_bytes(CFG)
    assert size < cap < size + 128 * 1024  # the data plus a bounded header allowance
    with open(artifact / "weights.safetensors", "ab") as f:
        f.truncate(cap + 1)
    with pytest.raises(A.IntegrityError, match=f"more than the {cap}"):
        A.load_model(artifact)


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("manifest.json", A.ManifestError),
        ("weights.safetensors", A.IntegrityError),
        ("report.json", A.IntegrityError),
    ],
)
def test_fifo_is_refused_without_hanging(artifact: Path, name: str, error: type) -> None:
    (artifact / name).unlink()
    os.mkfifo(artifact / name)
    outcome = _in_thread(lambda: A.load_model(artifact))
    assert type(outcome) is error and "FIFO" in str(outcome), outcome


@pytest.mark.parametrize("inside", [False, True])
def test_symlinked_weights_are_reported_as_a_symlink(
    artifact: Path, tmp_path: Path, inside: bool
) -> None:
    weights = artifact / "weights.safetensors"
    target = (artifact if inside else tmp_path) / "weights.real"
    weights.rename(target)
    weights.symlink_to(target)  # the very same bytes: following the link would pass the hash
    if inside:
        _edit_manifest(artifact, lambda m: m["files"].update({"weights.real": "0" * 64}))
    with pytest.raises(A.IntegrityError, match="is a symlink") as info:
        A.load_model(artifact)
    assert "missing" not in str(info.value)


def test_symlinked_manifest_is_refused(artifact: Path, tmp_path: Path) -> None:
    (artifact / "manifest.json").rename(tmp_path / "manifest.json")
    (artifact / "manifest.json").symlink_to(tmp_path / "manifest.json")
    with pytest.raises(A.ManifestError, match="symlink"):
        A.read_manifest(artifact)


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


def test_deeply_nested_manifest_is_a_manifest_error(artifact: Path) -> None:
    manifest = (artifact / "manifest.json").read_text()
    (artifact / "manifest.json").write_text(
        manifest.replace('"metrics": {', f'"deep": {_deep(100_000)}, "metrics": {{', 1)
    )
    with refused_quickly(), pytest.raises(A.ManifestError, match="more than 64 levels"):
        A.read_manifest(artifact)


def test_deeply_nested_weights_header_is_a_format_error(artifact: Path) -> None:
    weights = (artifact / "weights.safetensors").read_bytes()
    size = int.from_bytes(weights[:8], "little")
    header = json.loads(weights[8 : 8 + size])
    # 10,000 levels: within the header allowance, so the depth bound is what refuses it
    blob = json.dumps(header).replace("{", '{"deep": ' + _deep(10_000) + ", ", 1).encode()
    (artifact / "weights.safetensors").write_bytes(
        len(blob).to_bytes(8, "little") + blob + weights[8 + size :]
    )
    _resign(artifact)
    with pytest.raises(A.WeightsFormatError, match="more than 64 levels"):
        A.load_model(artifact)


def test_json_depth_ignores_brackets_in_strings() -> None:
    from forecaster.registry.manifest import json_too_deep

    assert not json_too_deep(json.dumps({"note": _deep(1000), "x": [[1]]}).encode())
    assert not json_too_deep(json.dumps({"q": '\\"[[' * 500}).encode())
    assert json_too_deep(_deep(65).encode()) and not json_too_deep(_deep(64).encode())


# ------------------------------------------------------------------------------ storage


def test_read_bounded_refuses_special_files_and_big_files(tmp_path: Path) -> None:
    with pytest.raises(storage.UnsafeFileError, match="character device"):
        storage.read_bounded(storage.resolve("/dev/zero"), 10)
    os.mkfifo(tmp_path / "fifo")
    outcome = _in_thread(lambda: storage.read_bounded(storage.resolve(tmp_path / "fifo"), 10))
    assert isinstance(outcome, storage.UnsafeFileError) and "FIFO" in str(outcome)
    (tmp_path / "f").write_bytes(b"x" * 11)
    with pytest.raises(storage.FileTooLargeError):
        storage.read_bounded(storage.resolve(tmp_path / "f"), 10)
    assert storage.read_bounded(storage.resolve(tmp_path / "f"), 11) == b"x" * 11
    url = f"memory://bounded-{uuid.uuid4().hex}/f"
    storage.resolve(url).fs.pipe_file(url, b"y" * 11)
    with pytest.raises(storage.FileTooLargeError):
        storage.read_bounded(storage.resolve(url), 10)
    assert storage.read_bounded(storage.resolve(url), 11) == b"y" * 11


if __name__ == "__main__":
    write_fixture()
    print(f"wrote {FIXTURE_V2}")


def test_an_extra_file_is_read_only_when_its_hash_matches(artifact: Path) -> None:
    """What the service's versions route reads of a retraining job's report.json."""
    assert A.read_extra_file(artifact, "report.json") == b"{}"
    assert A.read_extra_file(artifact, "plot.png") is None  # not listed: none
    assert A.read_extra_file(artifact, A.WEIGHTS) is None  # the weights are not an extra file
    (artifact / "report.json").write_bytes(b'{"decision": "forged"}')
    with pytest.raises(A.IntegrityError, match="sha256 differs"):
        A.read_extra_file(artifact, "report.json")
