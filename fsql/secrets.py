"""Keeping credentials out of what fsql prints, sends and writes.

Store URLs carry passwords (``redis://:secret@host/0``, ``postgresql://user:secret@host/db``,
usually from ``FSQL_*`` environment variables), and they end up in messages: errors, EXPLAIN
output, run records. Every such text goes through :func:`redact` before it leaves fsql, and
every URL fsql writes to a file (a pipeline's plan) goes through :func:`without_password`.

>>> redact("Redis at redis://:s3cret@cache:6379/0 did not answer")
'Redis at redis://:***@cache:6379/0 did not answer'
>>> redact("postgresql://fsql:s3cret@db/fsql?sslmode=require")
'postgresql://fsql:***@db/fsql?sslmode=require'
>>> without_password("redis://:s3cret@cache:6379/0")
'redis://cache:6379/0'
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

MASK = "***"

#: what ends a URL's authority (host part) in a message
_AUTHORITY_END = frozenset("/ \t\r\n'\"`<>()[]{},;")
# password=... in a query string or a libpq key/value DSN
_PASSWORD_PARAM = re.compile(r"(?P<head>(?:[?&;]|\b)password=)[^\s&;]*", re.I)


def redact(text: str) -> str:
    """``text`` with the password of every URL (and every ``password=`` parameter) in it
    replaced by ``***``; the user and host stay, so the message still says where."""
    out: list[str] = []
    done = 0
    start = text.find("://")
    while start >= 0:
        # the authority runs to the first "/", whitespace or quote; credentials end at its
        # last "@" (one pass over the text: linear even for long hostile input)
        begin = start + 3
        end = begin
        while end < len(text) and text[end] not in _AUTHORITY_END:
            end += 1
        at = text.rfind("@", begin, end)
        colon = text.find(":", begin, at) if at >= 0 else -1
        if colon >= 0:
            out += (text[done : colon + 1], MASK)
            done = at
        start = text.find("://", end)
    out.append(text[done:])
    text = "".join(out)
    return _PASSWORD_PARAM.sub(lambda m: f"{m['head']}{MASK}", text)


def without_password(url: str) -> str:
    """``url`` without its credentials: what may be written to a file others read (the user is
    dropped too when there is a password, Redis URLs have no user). Workers supply the
    password from their own ``FSQL_*`` environment."""
    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None and "password=" not in parts.query.lower():
        return url
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(p for p in parts.query.split("&") if not p.lower().startswith("password="))
    return urlunsplit((parts.scheme, host, parts.path, query, parts.fragment))
