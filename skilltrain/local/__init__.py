"""The embedded default model: packaged GGUF files joined on first use, served by llama.cpp.

Nothing here touches the network. `ensure_model` turns installed part packages into one verified
file in the user's cache; `LocalServer` serves it on 127.0.0.1 for the OpenAI-compatible client.

Modules: `assets` (the model registry and where parts and files live), `model_file` (joining
the parts into one verified file), `errors` (the model errors), `server` (`LocalServer`, the
caller's handle), `process` (spawning, reading and stopping the child), `child` (what runs in
the child process, loaded there by path with the standard library only).
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
