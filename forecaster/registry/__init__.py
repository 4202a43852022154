"""The saved-model layer: ``storage`` (bytes, local or fsspec: bounded reads, atomic renames,
locks), ``manifest`` (what a version is), ``weights`` (safetensors checked against the
manifest), ``artifacts`` (one saved model, verified on load) and ``registry`` (versions, the
production alias, atomic publish). Callers outside the package use the names below.
"""

from forecaster.registry.artifacts import ArtifactError, LoadedModel, load_model, save_model
from forecaster.registry.manifest import Manifest
from forecaster.registry.registry import (
    AliasFileError,
    ModelNotFoundError,
    PublishLockedError,
    Registry,
    RegistryError,
    hide_root,
)

__all__ = ["AliasFileError", "ArtifactError", "LoadedModel", "Manifest", "ModelNotFoundError",
           "PublishLockedError", "Registry", "RegistryError", "hide_root", "load_model",
           "save_model"]  # fmt: skip
