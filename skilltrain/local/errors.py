"""The errors of the embedded models, in one place so that both the registry (`assets`) and the
file assembly (`model_file`) raise the same classes and a caller catches `LocalModelError` alone."""

from __future__ import annotations


class LocalModelError(RuntimeError):
    """Base class for problems with an embedded model; the message says what to do."""


class ModelNotInstalledError(LocalModelError):
    """Some part packages of a model are not installed."""


class ModelIntegrityError(LocalModelError):
    """The joined parts do not add up to the pinned model file (size, hash or magic)."""
