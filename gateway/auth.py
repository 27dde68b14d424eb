"""JWT verification and minting (PyJWT), with the algorithm pinned in settings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import jwt

from .settings import GatewaySettings


class AuthError(Exception):
    """The token was refused; ``reason`` is safe to show to the client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthNotConfigured(AuthError):
    pass


@dataclass(frozen=True)
class Principal:
    user: str
    claims: dict[str, Any]


def _verification_key(settings: GatewaySettings) -> str:
    if settings.jwt_algorithm.startswith("HS"):
        if settings.jwt_secret is None or not settings.jwt_secret.get_secret_value():
            raise AuthNotConfigured("server has no JWT secret configured (set VF_GATEWAY_JWT_SECRET)")
        return settings.jwt_secret.get_secret_value()
    if settings.jwt_public_key is None:
        raise AuthNotConfigured("server has no JWT public key configured (set VF_GATEWAY_JWT_PUBLIC_KEY)")
    return settings.jwt_public_key.read_text()


def _signing_key(settings: GatewaySettings) -> str:
    if settings.jwt_algorithm.startswith("HS"):
        return _verification_key(settings)
    if settings.jwt_private_key is None:
        raise AuthNotConfigured("minting RS256 tokens needs VF_GATEWAY_JWT_PRIVATE_KEY")
    return settings.jwt_private_key.read_text()


def verify(token: str | None, settings: GatewaySettings) -> Principal:
    """Check signature, algorithm, expiry, audience and issuer; return the user."""
    if not token:
        raise AuthError("missing token: send 'Authorization: Bearer <jwt>' or ?token=<jwt>")
    key = _verification_key(settings)
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[settings.jwt_algorithm],  # pinned: 'none' and others are refused
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            leeway=settings.jwt_leeway_s,
            options={"require": ["exp", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthError("token expired") from None
    except jwt.InvalidAudienceError:
        raise AuthError("token audience is wrong") from None
    except jwt.InvalidIssuerError:
        raise AuthError("token issuer is wrong") from None
    except jwt.MissingRequiredClaimError as exc:
        raise AuthError(f"token lacks the '{exc.claim}' claim") from None
    except jwt.InvalidAlgorithmError:
        raise AuthError(f"token algorithm not allowed (expected {settings.jwt_algorithm})") from None
    except jwt.InvalidSignatureError:
        raise AuthError("token signature is invalid") from None
    except jwt.InvalidTokenError as exc:
        raise AuthError(f"token is invalid ({exc})") from None
    return Principal(user=_subject(claims, settings.jwt_max_lifetime_s), claims=claims)


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _subject(claims: dict[str, Any], max_lifetime_s: int) -> str:
    """The user, once the claims PyJWT leaves to us are checked (types, lifetime, the subject's form)."""
    # RFC 7519: NumericDate claims are numbers; PyJWT also takes a numeric string.
    for name in ("exp", "iat", "nbf"):
        if name in claims and not _number(claims[name]):
            raise AuthError(f"token claim '{name}' must be a number")
    issued = claims.get("iat", time.time())
    if claims["exp"] - issued > max_lifetime_s:
        raise AuthError("token lifetime is longer than this server accepts")
    user = claims["sub"]
    # Not stripped: " alice" and "alice" would otherwise be the same user.
    if not isinstance(user, str) or not user or user != user.strip() or len(user) > 128:
        raise AuthError("token subject is empty, too long or padded with spaces")
    return user


def mint(sub: str, ttl_s: int, settings: GatewaySettings, extra: dict[str, Any] | None = None) -> str:
    if ttl_s > settings.jwt_max_lifetime_s:
        raise AuthError(f"a token may live at most {settings.jwt_max_lifetime_s} s (VF_GATEWAY_JWT_MAX_LIFETIME_S)")
    now = int(time.time())
    claims = {
        "sub": sub,
        "iat": now,
        "exp": now + ttl_s,
        "aud": settings.jwt_audience,
        "iss": settings.jwt_issuer,
        **(extra or {}),
    }
    return jwt.encode(claims, _signing_key(settings), algorithm=settings.jwt_algorithm)


def token_from(headers: dict[str, str], query: dict[str, str]) -> str | None:
    """The token from ``Authorization: Bearer`` or the ``token`` query parameter."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return query.get("token") or None
