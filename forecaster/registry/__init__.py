"""The saved-model layer: artifacts on disk (or behind an fsspec URL) and the registry of their
versions and aliases.

    storage    where bytes live: local or fsspec, bounded reads, atomic renames, the lock
    manifest   what a version is: the typed ``manifest.json``
    weights    the numbers: safetensors, checked against the manifest's shapes
    artifacts  one saved model: :func:`save_model` / :func:`load_model`, verified on the way in
    registry   versions, the production alias, atomic publish (:class:`Registry`)

Callers outside this package use the names below; the modules' other names are theirs.
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

__all__ = [
    "AliasFileError",
    "ArtifactError",
    "LoadedModel",
    "Manifest",
    "ModelNotFoundError",
    "PublishLockedError",
    "Registry",
    "RegistryError",
    "hide_root",
    "load_model",
    "save_model",
]
