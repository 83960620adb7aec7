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

ROLES = ("target", "optimizer", "judge")  # judge: None when it is the optimizer's
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
    """A run's settings (config.TrainConfig) as far as credentials go: its roles (an unset
    judge section is None: the judge then uses the optimizer's)."""

    @property
    def target(self) -> RoleKeys: ...
    @property
    def optimizer(self) -> RoleKeys: ...
    @property
    def judge(self) -> RoleKeys | None: ...


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
        mcfg: RoleKeys | None = getattr(config, role, None)
        if mcfg is None:
            continue
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
                *(getattr(getattr(config, r, None), "base_url", None) for r in ROLES)):
        found.update(_url_secrets(url or ""))
    for role in ROLES:
        mcfg: RoleKeys | None = getattr(config, role, None)
        if mcfg is None:
            continue
        found.add(mcfg.api_key.get_secret_value() if mcfg.api_key else "")
        found.add(environ.get(mcfg.api_key_env or "") or "")
        for _, value, sensitive in _leaves(mcfg.extra_body, ""):
            if sensitive and isinstance(value, str):
                found.update({value, *value.split()})  # "Bearer KEY": the KEY alone too
    return {s for s in found if s and s != REDACTED}


# Secrets in free text (an agent session: pasted keys, `export X=...`, a `.env` it read), by
# shape, for text with no config to say which values are keys. Order matters: a private-key
# block before anything inside it, specific key shapes before the generic `name=value` rule.
_TEXT_SECRETS = (
    re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----"
               r"|\Z)", re.S),
    re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{8,}"),
    re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_\-]{16,}"),
    re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{16,}|github_pat_[A-Za-z0-9_]{20,})"),
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    re.compile(r"\bxox[abeprs]-[A-Za-z0-9\-]{10,}"),
    re.compile(r"\bAIza[0-9A-Za-z_\-]{30,}"),
    re.compile(r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),  # a JWT
)
_KEPT_NAME_SECRETS = (  # (kept prefix)(secret)(kept suffix): the name tells a reader what was there
    re.compile(r"(?i)(\bbearer\s+)([A-Za-z0-9._~+/=\-]{8,})()"),
    re.compile(r"(?i)(\b([a-z0-9_.\-]*(?:pass|pwd|secret|token|key|auth|credential)[a-z0-9_]*)"
               r"[\"']?\s*[:=]\s*)(\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&\"']+)()"),
    re.compile(r"(://[^/\s:@]+:)([^/\s@]+)(@)"),  # user:password@host
)


def scrub_text(text: str) -> tuple[str, int]:
    """`text` with every secret-shaped piece replaced by the marker, and how many were; run
    before anything derived from user text is stored or clipped (a clip could cut a key to a
    piece no pattern knows). A `name=value` counts only under a credential-like name
    (`sensitive_name`: `api_key=`, `password:`, not `max_tokens=`)."""
    count = 0
    for pattern in _TEXT_SECRETS:
        text, n = pattern.subn(REDACTED, text)
        count += n
    for pattern in _KEPT_NAME_SECRETS:
        count += sum(_is_secret(m) for m in pattern.finditer(text))
        text = pattern.sub(_scrubbed, text)
    return text, count


def _is_secret(m: re.Match[str]) -> bool:
    groups = m.groups()
    value, name = groups[-2], groups[1] if len(groups) == 4 else ""
    return REDACTED not in value and len(value.strip("\"'")) >= 4 and \
        (not name or sensitive_name(name.split(".")[-1]))


def _scrubbed(m: re.Match[str]) -> str:
    groups = m.groups()
    return groups[0] + REDACTED + groups[-1] if _is_secret(m) else m.group(0)
