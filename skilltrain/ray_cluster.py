"""A Ray session for a run: connect to a running cluster, or start one on this machine that
listens on 127.0.0.1 only.

On Linux Ray treats 127.0.0.1 as "this machine" and swaps in the LAN address: a head started
with `--node-ip-address 127.0.0.1` listens on every interface, and a driver given
`127.0.0.1:PORT` dials the LAN address (which such a head does not answer). Its switch for
staying on loopback is the one macOS and Windows get by default,
RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when `ray` is imported: it is set here before the
import (and on Ray's constants when `ray` was imported earlier). With it, a local cluster's GCS,
raylet, workers and agents listened on 127.0.0.1 only (checked with `ss -ltn`); the dashboard
is off.

Token authentication: a cluster Ray starts for us gets a token (Ray's default, kept in
~/.ray/auth_token); a driver given an address sends the token only in token mode, so token
mode is turned on when a token is at hand and RAY_AUTH_MODE is unset, as Ray itself does for
`address="auto"`.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from skilltrain.config import ConfigError
from skilltrain.models.base import InfrastructureFailure

LOOPBACK_VAR = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
AUTH_VAR = "RAY_AUTH_MODE"
CONNECT_S = 5.0  # to tell a cluster that answers from none


class ClusterUnavailable(InfrastructureFailure):
    """The Ray cluster named for the run cannot be reached."""


def is_loopback(address: str) -> bool:
    """Whether a Ray address (HOST:PORT, ray://HOST:PORT) names this machine's loopback."""
    host = address.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


def _token_at_hand() -> bool:
    path = os.environ.get("RAY_AUTH_TOKEN_PATH") or str(Path.home() / ".ray" / "auth_token")
    return bool(os.environ.get("RAY_AUTH_TOKEN")) or Path(path).is_file()


def import_ray(*, loopback: bool, token: bool) -> Any:
    """`ray`, imported with the settings it reads at import time (see the module docstring).
    Raises ConfigError naming the extra when Ray is not installed."""
    if "ray" not in sys.modules:
        if loopback:
            os.environ[LOOPBACK_VAR] = "0"
        if token and AUTH_VAR not in os.environ:
            os.environ[AUTH_VAR] = "token"
    try:
        import ray
    except ImportError:
        raise ConfigError("executor: ray needs the ray package, which is not installed; "
                          "pip install 'skilltrain[ray]'", "executor.kind") from None
    if loopback:  # a `ray` imported before us read the variable already
        from ray._private import ray_constants

        ray_constants.ENABLE_RAY_CLUSTER = False
    return ray


def _unreachable(address: str) -> str | None:
    """Why nothing answers at a HOST:PORT address, or None. Ray itself retries a dead address
    for minutes (measured: over five), printing a warning every few seconds."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        return None  # not HOST:PORT (e.g. "auto"): Ray finds the cluster itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_S):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


@contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """`ray`, connected for the block: to `address` (else RAY_ADDRESS), else to a new local
    cluster on 127.0.0.1 that ends with the block. A session the caller already opened is used
    as it is and left open."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    local = address is None or address == "local"
    ray = import_ray(loopback=local or is_loopback(address or ""),
                     token=local or _token_at_hand())
    if ray.is_initialized():
        yield ray
        return
    why = None if local else _unreachable(address or "")
    if why is not None:
        raise ClusterUnavailable(f"executor.address {address}: no Ray cluster answers there "
                                 f"({why}); start one with `ray start --head`")
    quiet: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
    try:
        if local:
            ray.init(address="local", include_dashboard=False, num_cpus=num_cpus, **quiet)
        else:
            ray.init(address=address, **quiet)
    except (ConnectionError, RuntimeError) as exc:
        first = next((ln for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
        where = "a local Ray cluster could not start" if local else \
            f"executor.address {address}: no Ray cluster could be reached there"
        raise ClusterUnavailable(f"{where} ({first[:200]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()
