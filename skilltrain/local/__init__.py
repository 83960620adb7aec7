"""The embedded default model: packaged GGUF files joined on first use, served by llama.cpp.

Nothing here touches the network. `ensure_model` turns installed part packages into one verified
file in the user's cache; `LocalServer` serves it on 127.0.0.1 for the OpenAI-compatible client.
"""

from .assets import (
    MODELS,
    LocalModelError,
    ModelIntegrityError,
    ModelNotInstalledError,
    ModelSpec,
    available,
    ensure_model,
)
from .server import LocalServer, LocalServerError, serve_forever

__all__ = [
    "MODELS",
    "LocalModelError",
    "LocalServer",
    "LocalServerError",
    "ModelIntegrityError",
    "ModelNotInstalledError",
    "ModelSpec",
    "available",
    "ensure_model",
    "serve_forever",
]
