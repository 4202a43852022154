"""The artifact format's manifest (``manifest.json``) and the errors every artifact check raises.

The manifest vouches for an artifact directory: format version, model config, frequency,
normalisation, metrics, provenance, and the sha256 of every other file. Format 2 also binds the
manifest to the weights: :func:`content_digest` of everything but ``files`` is recorded in the
weights' safetensors metadata, which ``files`` hashes, so editing any field (say
``config.input_size``) without re-exporting the model fails verification. Format 3 adds the
model's interval calibration (:mod:`forecaster.calibration`); formats 1 and 2 (no calibration:
their intervals are served uncalibrated) are still read, format 1 without the binding. Format 4
is format 3 with ``covariates``: the columns the model reads with their roles, kinds and
training normalisation, and its calendar features (:class:`forecaster.covariates.CovariateSpec`).

Parsing is bounded: at most :data:`MAX_MANIFEST_BYTES` and :data:`MAX_JSON_DEPTH` levels of
nesting, checked before the JSON parser runs.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal

import pydantic
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

from forecaster.calibration import Calibration
from forecaster.configs import ConfigError, ModelConfig, typed_fields
from forecaster.covariates import CALENDAR_PERIODS, Column, CovariateSpec
from forecaster.scaling import MAX_LOG_RATIO

FORMAT_VERSION = 3
# Format 4 adds ``covariates`` (what the model reads besides the target). Models without them
# are still written as format 3, so versions of forecaster that predate covariates read them.
COVARIATES_FORMAT_VERSION = 4
SUPPORTED_FORMAT_VERSIONS = frozenset({1, 2, 3, 4})
MANIFEST = "manifest.json"
WEIGHTS = "weights.safetensors"
NORMALIZATION: Final = "log-mean-ratio"
# Key of the safetensors metadata entry holding the manifest's content digest (format 2).
DIGEST_KEY = "manifest_sha256"

# A manifest is a few KB; refusing anything huge keeps a hostile file from exhausting memory.
MAX_MANIFEST_BYTES = 1 << 20
# Real manifests nest 3 levels deep; a bound keeps deep nesting from exhausting the stack.
MAX_JSON_DEPTH = 64
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_JSON_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)


# --------------------------------------------------------------------------------------------
# Errors


class ArtifactError(Exception):
    """A saved model could not be written, read or trusted."""


class ArtifactNotFoundError(ArtifactError, FileNotFoundError):
    """The artifact directory does not exist."""


class ManifestError(ArtifactError):
    """manifest.json is missing, unreadable, not JSON, or does not match the schema."""


class FormatVersionError(ManifestError):
    """The artifact uses a format version this code cannot read."""


class IntegrityError(ArtifactError):
    """A file is missing, unexpected, not a regular file, too large, or its sha256 differs."""


class ManifestMismatchError(IntegrityError):
    """The manifest's content differs from the one the weights were saved with (it was edited)."""


class WeightsFormatError(ArtifactError):
    """weights.safetensors is not a well-formed safetensors file."""


class KeyMismatchError(ArtifactError):
    """The weights' parameter names differ from the ones the config needs."""


class ShapeError(ArtifactError):
    """A parameter's shape differs from the one the config needs."""


class DTypeError(ArtifactError):
    """A parameter is not float32."""


class NonFiniteWeightsError(ArtifactError):
    """A parameter holds NaN or infinity (or the model's forecasts do)."""


# --------------------------------------------------------------------------------------------
# Schema


def _config_from_json(value: Any) -> ModelConfig:
    """Strict ModelConfig parse: known keys with JSON types matching the field defaults.

    Keys missing from the manifest take the field default, so a field added to ModelConfig later
    (with a default that keeps the old behaviour) does not orphan older artifacts.
    """
    if isinstance(value, ModelConfig):
        return value
    if not isinstance(value, dict):
        raise ValueError("config must be an object")
    try:
        return ModelConfig(**typed_fields(ModelConfig, value, "config"))
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:
        raise ValueError(f"invalid model config: {err}") from err


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


class CovariateColumn(BaseModel):
    """One covariate the model reads: its role, kind and training normalisation."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: Literal["past", "future", "static"]
    kind: Literal["numeric", "categorical"] = "numeric"
    mean: float | None = None
    std: float | None = Field(None, gt=0)
    categories: list[Annotated[str, Field(max_length=200)]] | None = Field(None, max_length=10_000)


class Covariates(BaseModel):
    """What the model reads besides the target (format 4; see :mod:`forecaster.covariates`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    columns: list[CovariateColumn] = Field(default_factory=list, max_length=1_000)
    calendar: list[Literal[tuple(CALENDAR_PERIODS)]] = Field(default_factory=list)  # type: ignore[valid-type]
    holidays: str | None = Field(None, max_length=10)
    freq: str | None = None

    @pydantic.model_validator(mode="after")
    def _kinds(self) -> Covariates:
        for c in self.columns:
            numeric = c.mean is not None and c.std is not None and c.categories is None
            categorical = c.kind == "categorical" and c.role == "static" and c.categories
            if not (numeric if c.kind == "numeric" else categorical):
                raise ValueError(f"covariate {c.name!r}: a numeric covariate has mean and std, "
                                 "a categorical one is static with categories")  # fmt: skip
        return self

    def spec(self) -> CovariateSpec:
        columns = tuple(
            Column(c.name, c.role, c.kind, c.mean or 0.0, c.std or 1.0, tuple(c.categories or ()))
            for c in self.columns
        )
        return CovariateSpec(columns, tuple(self.calendar), self.holidays, self.freq)

    @classmethod
    def of(cls, spec: CovariateSpec) -> Covariates:
        return cls.model_validate(spec.to_dict())


class Manifest(BaseModel):
    """The parsed manifest.json of an artifact (format version 1 to 4; same fields, and only
    format 3 and 4 hold a ``calibration``, only format 4 ``covariates``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    format_version: int
    config: ConfigField
    freq: str | None = None
    seasonality: PositiveInt | None = None
    # The TrainConfig it was trained with (retraining starts from it); None in older artifacts.
    training: dict[str, Any] | None = None
    normalization: Normalization = Field(default_factory=Normalization)
    data_fingerprint: str | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    # Per-step conformal calibration of the intervals; None: older or uncalibrated model.
    calibration: Calibration | None = None
    created_at: AwareDatetime
    library_versions: dict[str, str] = Field(default_factory=dict)
    files: Annotated[dict[str, str], AfterValidator(_check_files)]
    # Format 4 only; None: the model reads the target alone.
    covariates: Covariates | None = None

    @pydantic.model_validator(mode="after")
    def _covariates_fit_config(self) -> Manifest:
        if self.covariates is not None and self.format_version < COVARIATES_FORMAT_VERSION:
            raise ValueError(f"covariates need format version {COVARIATES_FORMAT_VERSION}")
        widths = self.covariate_spec.widths()
        found = {k: getattr(self.config, k) for k in widths}
        if found != widths:
            raise ValueError(
                f"the config's covariate widths {found} do not match its covariates {widths}"
            )
        return self

    @property
    def covariate_spec(self) -> CovariateSpec:
        """What the model reads besides the target (empty: nothing)."""
        return CovariateSpec() if self.covariates is None else self.covariates.spec()


@dataclass(frozen=True)
class ParsedManifest:
    """A manifest and the digest of its content as stored (for the weights binding)."""

    manifest: Manifest
    digest: str


# --------------------------------------------------------------------------------------------
# Parsing


def json_too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``data`` nests arrays/objects more than ``limit`` deep (strings are skipped)."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # the common case: too few brackets to be deep, no scan needed
    depth = 0
    for match in _JSON_TOKEN.finditer(data):
        token = match.group()
        if token in (b"[", b"{"):
            depth += 1
            if depth > limit:
                return True
        elif token in (b"]", b"}"):
            depth -= 1
    return False


def load_json(data: bytes, where: str, error: type[ArtifactError]) -> Any:
    """``json.loads`` with the depth bound; failures raise ``error`` naming ``where``."""
    if json_too_deep(data):
        raise error(f"{where} nests JSON more than {MAX_JSON_DEPTH} levels deep; it is damaged")
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise error(f"{where} is not valid JSON ({err}); the artifact is damaged") from err


def content_digest(raw: Mapping[str, Any]) -> str:
    """sha256 of a manifest's content: every key but ``files``, canonically serialised."""
    content = {k: v for k, v in raw.items() if k != "files"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def forecaster_version() -> str:
    try:
        return importlib.metadata.version("forecaster")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def parse(data: bytes, where: str = MANIFEST) -> ParsedManifest:
    """Parse manifest bytes: size, JSON, then the format version, then the schema."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{where} is {len(data)} bytes, too large to be a manifest")
    raw = load_json(data, where, ManifestError)
    if not isinstance(raw, dict):
        raise ManifestError(f"{where} must hold a JSON object, found {type(raw).__name__}")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ManifestError(f"{where} has no integer 'format_version'; not a forecaster model")
    if version not in SUPPORTED_FORMAT_VERSIONS:
        raise FormatVersionError(
            f"{where} has artifact format version {version}, but this forecaster "
            f"({forecaster_version()}) reads format version(s) "
            f"{sorted(SUPPORTED_FORMAT_VERSIONS)}; "
            + (
                "upgrade forecaster to load it."
                if version > FORMAT_VERSION
                else "re-export the model with a current forecaster."
            )
        )
    try:
        manifest = Manifest.model_validate(raw)
    except pydantic.ValidationError as err:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<root>'}: {e['msg']}" for e in err.errors()
        )
        raise ManifestError(f"{where} does not match the manifest schema: {problems}") from err
    return ParsedManifest(manifest, content_digest(raw))


def parse_manifest(data: bytes, where: str = MANIFEST) -> Manifest:
    """The schema-checked :class:`Manifest` in ``data`` (see :func:`parse`)."""
    return parse(data, where).manifest
