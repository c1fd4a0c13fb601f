"""Password authentication: cleartext, md5 and SCRAM-SHA-256 against stored verifiers.

The config holds only verifiers, never passwords: a SCRAM verifier in PostgreSQL's own
``pg_authid`` format (``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``) or an md5
hash (``md5`` + md5(password + user)). Make one with ``python -m fsql_server.pg.auth USER``
(reads the password from the terminal or stdin) or :func:`make_scram_verifier`.

A SCRAM verifier can check a cleartext password but not an md5 challenge (md5 needs the md5
hash itself), so with ``auth = "md5"`` a user holding a SCRAM verifier is asked for SCRAM, as
PostgreSQL does.
"""

from __future__ import annotations

import base64
import functools
import getpass
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass

from fsql_server.pg.errors import INVALID_AUTHORIZATION, INVALID_PASSWORD, PgError

SCRAM_ITERATIONS = 4096

#: the key the fake SCRAM salts of unknown users are derived from: random per server start,
#: made at import (in the parent, before the workers fork) so every worker derives the same
#: salt for a user, and no client can compute it
_FAKE_SALT_KEY = secrets.token_bytes(32)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scram_keys(password: str, salt: bytes, iterations: int) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    return stored_key, server_key


def make_scram_verifier(
    password: str, iterations: int = SCRAM_ITERATIONS, salt: bytes | None = None
) -> str:
    """A SCRAM-SHA-256 verifier for ``password``, in PostgreSQL's format."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    stored_key, server_key = _scram_keys(password, salt, iterations)
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def make_md5_hash(user: str, password: str) -> str:
    """PostgreSQL's md5 password hash: ``md5`` + md5(password + user)."""
    return "md5" + hashlib.md5((password + user).encode()).hexdigest()


@dataclass(frozen=True)
class ScramVerifier:
    iterations: int
    salt: bytes
    stored_key: bytes
    server_key: bytes


def parse_scram_verifier(verifier: str) -> ScramVerifier | None:
    """The parts of a SCRAM verifier, or None when ``verifier`` is not one."""
    try:
        method, rest = verifier.split("$", 1)
        params, keys = rest.split("$", 1)
        iterations, salt = params.split(":", 1)
        stored, server = keys.split(":", 1)
        if method != "SCRAM-SHA-256":
            return None
        return ScramVerifier(
            int(iterations), base64.b64decode(salt), base64.b64decode(stored),
            base64.b64decode(server),
        )
    except (ValueError, TypeError):
        return None


def is_md5_hash(verifier: str) -> bool:
    return len(verifier) == 35 and verifier.startswith("md5")


def check_cleartext(verifier: str, user: str, password: str) -> bool:
    """Does ``password`` match the stored verifier (SCRAM or md5)?"""
    scram = parse_scram_verifier(verifier)
    if scram is not None:
        stored, server = _scram_keys(password, scram.salt, scram.iterations)
        return hmac.compare_digest(stored, scram.stored_key) and hmac.compare_digest(
            server, scram.server_key
        )
    if is_md5_hash(verifier):
        return hmac.compare_digest(make_md5_hash(user, password), verifier)
    return False


@functools.lru_cache(maxsize=1024)
def is_empty_password_verifier(verifier: str, user: str) -> bool:
    """Is ``verifier`` one for the empty password? Such a user never logs in (computed once
    per verifier: a PBKDF2 run for a SCRAM one)."""
    return check_cleartext(verifier, user, "")


def check_md5_response(verifier: str, salt: bytes, response: str) -> bool:
    """The md5 challenge: the client sends ``md5`` + md5(md5hex(password + user) + salt)."""
    if not is_md5_hash(verifier):
        return False
    expected = "md5" + hashlib.md5(verifier[3:].encode() + salt).hexdigest()
    return hmac.compare_digest(expected, response)


def fake_salt(user: str) -> bytes:
    """The salt shown for an unknown user: stable per user and server, not computable by a
    client (an HMAC with a per-server secret), so known and unknown users look alike."""
    return hmac.digest(_FAKE_SALT_KEY, b"fsql-fake-salt:" + user.encode(), "sha256")[:16]


def fake_verifier(user: str) -> str:
    """A SCRAM verifier no password matches, checked for an unknown user so that the failing
    check costs what a known user's does (the same PBKDF2 iterations)."""
    return (f"SCRAM-SHA-256${SCRAM_ITERATIONS}:{_b64(fake_salt(user))}$"
            f"{_b64(bytes(32))}:{_b64(bytes(32))}")


def auth_failed(user: str, method: str) -> PgError:
    """PostgreSQL's answer to any failed password check (no hint which part was wrong)."""
    # Like PostgreSQL, the client learns nothing more (the method is in the server's log).
    return PgError(INVALID_PASSWORD, f'password authentication failed for user "{user}"',
                   severity="FATAL")


class ScramExchange:
    """Server side of one SCRAM-SHA-256 exchange (RFC 5802/7677, no channel binding).

    ``first`` takes the client-first-message and returns the server-first-message; ``final``
    takes the client-final-message, checks the proof and returns the server-final-message.
    A user without a verifier is run through a fake exchange that always fails, so the
    timing and messages do not reveal which users exist.
    """

    def __init__(self, user: str, verifier: str | None):
        self.user = user
        parsed = parse_scram_verifier(verifier) if verifier else None
        self.valid = parsed is not None
        self.verifier = parsed or ScramVerifier(
            SCRAM_ITERATIONS, fake_salt(user), b"\0" * 32, b"\0" * 32
        )
        self.server_nonce = _b64(secrets.token_bytes(18))
        self.client_first_bare = ""
        self.server_first = ""
        self.nonce = ""

    def first(self, client_first: bytes) -> bytes:
        text = self._decode(client_first)
        parts = text.split(",", 2)
        if len(parts) < 3 or parts[0] not in ("n", "y"):
            raise PgError("08P01", "malformed SCRAM message (channel binding not supported)")
        self.client_first_bare = parts[2]
        attrs = dict(a.split("=", 1) for a in self.client_first_bare.split(",") if "=" in a)
        client_nonce = attrs.get("r")
        if not client_nonce:
            raise PgError("08P01", "malformed SCRAM message: no client nonce")
        self.nonce = client_nonce + self.server_nonce
        v = self.verifier
        self.server_first = f"r={self.nonce},s={_b64(v.salt)},i={v.iterations}"
        return self.server_first.encode()

    def final(self, client_final: bytes) -> bytes:
        text = self._decode(client_final)
        without_proof, _, proof_part = text.rpartition(",p=")
        attrs = dict(a.split("=", 1) for a in without_proof.split(",") if "=" in a)
        if attrs.get("r") != self.nonce or not proof_part:
            raise auth_failed(self.user, "scram-sha-256")
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        v = self.verifier
        client_signature = hmac.digest(v.stored_key, auth_message, "sha256")
        try:
            proof = base64.b64decode(proof_part)
        except ValueError:
            raise auth_failed(self.user, "scram-sha-256") from None
        if len(proof) != len(client_signature):
            raise auth_failed(self.user, "scram-sha-256")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not self.valid or not hmac.compare_digest(
            hashlib.sha256(client_key).digest(), v.stored_key
        ):
            raise auth_failed(self.user, "scram-sha-256")
        server_signature = hmac.digest(v.server_key, auth_message, "sha256")
        return f"v={_b64(server_signature)}".encode()

    @staticmethod
    def _decode(data: bytes) -> str:
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise PgError(INVALID_AUTHORIZATION, "malformed SCRAM message") from None


def main(argv: list[str] | None = None) -> int:
    """``python -m fsql_server.pg.auth USER [--md5]``: print a verifier for fsql.toml."""
    args = list(sys.argv[1:] if argv is None else argv)
    md5 = "--md5" in args
    args = [a for a in args if a != "--md5"]
    if len(args) != 1:
        print("usage: python -m fsql_server.pg.auth USER [--md5]  (password read from stdin)",
              file=sys.stderr)
        return 2
    user = args[0]
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline()
    password = password.rstrip("\n")
    if not password:
        print("the password is empty; an empty password cannot log in", file=sys.stderr)
        return 2
    verifier = make_md5_hash(user, password) if md5 else make_scram_verifier(password)
    print(f'[[server.users]]\nname = "{user}"\npassword_hash = "{verifier}"')
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
