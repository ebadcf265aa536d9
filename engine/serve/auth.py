"""Who may use `flashcode serve`: with an API key, every request but the health check must
carry `Authorization: Bearer KEY` (or `x-api-key: KEY`, as Anthropic's clients send it);
without one, the server may only listen on loopback."""

from __future__ import annotations

import hmac
import ipaddress

ENV = "FLASHCODE_SERVE_API_KEY"  # the key, when --api-key is not given


def is_loopback(host: str) -> bool:
    """Whether listening on `host` keeps the server on this machine: 127.0.0.0/8, ::1 (also
    IPv4-mapped) or `localhost`. Any other name counts as public, as it may resolve anywhere;
    "" and 0.0.0.0 / :: mean every interface."""
    if host.lower() == "localhost":
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def bind_refusal(host: str, key: str | None) -> str | None:
    """Why serve must not start with this host and key (None: it may)."""
    if key is not None and not key:
        return "the API key is empty; pass --api-key KEY with a non-empty KEY"
    if key is None and not is_loopback(host):
        return (f"refusing to listen on {host or 'every interface'!r} without an API key: "
                "anyone who can reach it could use the model. Pass --api-key KEY (or set "
                f"{ENV}), or listen on 127.0.0.1")
    return None


def authorized(header: str | None, key: str, x_api_key: str | None = None) -> bool:
    """Whether an Authorization header carries `key` as a Bearer token, or an `x-api-key`
    header (Anthropic's clients) is `key` (constant time)."""
    scheme, _, token = (header or "").strip().partition(" ")
    # http.server decodes header bytes as latin-1, so this gives back the bytes as sent
    given = token.strip().encode("latin-1", "replace")
    match = hmac.compare_digest(given, key.encode("utf-8"))
    if match and scheme.lower() == "bearer":
        return True
    if x_api_key is None:
        return False
    return hmac.compare_digest(x_api_key.strip().encode("latin-1", "replace"),
                               key.encode("utf-8"))
