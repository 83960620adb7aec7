"""Credentials in a run's settings: which names hold one, how they are redacted for
config.yaml, which ones a config read back from a run folder has lost (`missing_secrets`), and
every value a run must scrub from what it writes (`secret_values`).

A key given inline, credentials inside `base_url` (userinfo, `?key=`-like parameters) and
`extra_body` values under key/token/secret/authorization-like names are all saved as the
marker, so a run folder can be handed around without its keys.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

if TYPE_CHECKING:
    from pydantic import SecretStr

ROLES = ("target", "optimizer")
REDACTED = "***redacted***"
_SECRET_WORDS = frozenset({"auth", "authorization", "authentication", "password", "passwd", "pwd",
                           "secret", "secrets", "credential", "credentials", "signature", "sig",
                           "cookie", "bearer"})


class RoleKeys(Protocol):
    """Where one role's settings (config.ModelConfig) may hold a credential. Typed by shape, not
    by importing config: config imports this module, and a type-only import back is a cycle."""

    @property
    def api_key(self) -> SecretStr | None: ...
    @property
    def api_key_env(self) -> str | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def extra_body(self) -> Mapping[str, Any]: ...


class RoleSettings(Protocol):
    """A run's settings (config.TrainConfig) as far as credentials go: its two roles."""

    @property
    def target(self) -> RoleKeys: ...
    @property
    def optimizer(self) -> RoleKeys: ...


def sensitive_name(name: str) -> bool:
    """Whether a parameter or field name looks like it holds a credential: `api_key`, `x-api-key`,
    `accessToken`, `Authorization`, `password`... but not `max_tokens` (plural words are
    counts, and redacting them would make a resume refuse for nothing)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(name)).lower()
    return any(w in _SECRET_WORDS or w.endswith(("key", "token", "secret"))
               for w in re.findall(r"[a-z0-9]+", spaced))


def redact_url(url: str) -> str:
    """`url` with its userinfo and credential-like query values replaced by the marker."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    query = "&".join(f"{n}={REDACTED}" if v and sensitive_name(unquote_plus(n)) else p
                     for p in parts.query.split("&") for n, _, v in [p.partition("=")])
    return urlunsplit((parts.scheme, f"{REDACTED}@{host}" if "@" in parts.netloc else host,
                       parts.path, query, parts.fragment))


def _url_secrets(url: str) -> Iterator[str]:
    parts = urlsplit(url)
    userinfo = parts.netloc.rsplit("@", 1)[0].split(":", 1) if "@" in parts.netloc else []
    query = [v for p in parts.query.split("&") for n, _, v in [p.partition("=")]
             if v and sensitive_name(unquote_plus(n))]
    for piece in userinfo + query:
        yield from (piece, unquote(piece), unquote_plus(piece))


def redact_tree(node: Any, sensitive: bool) -> Any:
    if isinstance(node, dict):
        return {k: redact_tree(v, sensitive or sensitive_name(k)) for k, v in node.items()}
    if isinstance(node, list):
        return [redact_tree(v, sensitive) for v in node]
    return REDACTED if sensitive and isinstance(node, str) and node else node


def _leaves(node: Any, path: str, sensitive: bool = False) -> Iterator[tuple[str, Any, bool]]:
    """(dotted path, value, under a sensitive name) for every leaf of a JSON-like tree."""
    items = node.items() if isinstance(node, dict) else \
        enumerate(node) if isinstance(node, list) else None
    if items is None:
        yield path, node, sensitive
        return
    for k, v in items:
        yield from _leaves(v, f"{path}.{k}", sensitive or sensitive_name(str(k)))


def missing_secrets(config: RoleSettings, roles: tuple[str, ...] = ROLES) -> list[str]:
    """Dotted keys holding the redaction marker instead of a credential (a config read back from
    config.yaml): a run refuses to start with any, rather than send the marker as a key."""
    out = []
    for role in roles:
        mcfg: RoleKeys = getattr(config, role)
        if mcfg.api_key is not None and mcfg.api_key.get_secret_value() == REDACTED \
                and not mcfg.api_key_env:
            out.append(f"{role}.api_key")
        if mcfg.base_url and REDACTED in mcfg.base_url:
            out.append(f"{role}.base_url")
        out += [p for p, v, _ in _leaves(mcfg.extra_body, f"{role}.extra_body")
                if isinstance(v, str) and REDACTED in v]
    return out


def secret_values(config: RoleSettings, environ: Mapping[str, str]) -> set[str]:
    """Every credential this config sends: inline keys, the variables api_key_env names (and the
    OPENAI_/ANTHROPIC_ API_KEY and BASE_URL fallbacks), base_url credentials, sensitive
    extra_body values. Endpoints echo keys back in error bodies, so everything a run writes is
    scrubbed."""
    found = {environ.get("OPENAI_API_KEY") or "", environ.get("ANTHROPIC_API_KEY") or ""}
    for url in (environ.get("OPENAI_BASE_URL"), environ.get("ANTHROPIC_BASE_URL"),
                *(getattr(config, r).base_url for r in ROLES)):
        found.update(_url_secrets(url or ""))
    for role in ROLES:
        mcfg: RoleKeys = getattr(config, role)
        found.add(mcfg.api_key.get_secret_value() if mcfg.api_key else "")
        found.add(environ.get(mcfg.api_key_env or "") or "")
        for _, value, sensitive in _leaves(mcfg.extra_body, ""):
            if sensitive and isinstance(value, str):
                found.update({value, *value.split()})  # "Bearer KEY": the KEY alone too
    return {s for s in found if s and s != REDACTED}
