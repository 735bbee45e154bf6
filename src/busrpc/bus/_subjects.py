"""NATS-form subject matching, for transports that route themselves (memory)."""

from __future__ import annotations

__all__ = ["is_wildcard", "subject_matches", "validate_subject"]


def is_wildcard(pattern: str) -> bool:
    """Whether *pattern* has a ``*`` or ``>`` token."""
    return "*" in pattern or ">" in pattern


def validate_subject(subject: str, *, pattern: bool = False) -> None:
    """Raise `ValueError` unless *subject* is a well-formed NATS subject.

    Tokens are separated by ``.``, must be non-empty and free of whitespace; a pattern may
    use ``*`` for one token and ``>`` as its last token.
    """
    if not subject:
        raise ValueError("empty subject")
    tokens = subject.split(".")
    for i, token in enumerate(tokens):
        if not token or any(c.isspace() for c in token):
            raise ValueError(f"invalid subject {subject!r}")
        if token in ("*", ">"):
            if not pattern:
                raise ValueError(f"wildcard in subject {subject!r}")
            if token == ">" and i != len(tokens) - 1:
                raise ValueError(f"'>' must be the last token in {subject!r}")


def subject_matches(pattern: str, subject: str) -> bool:
    """Whether *subject* matches the NATS *pattern* (``*`` one token, ``>`` the rest)."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens):
            return False
        if p != "*" and p != s_tokens[i]:
            return False
    return len(p_tokens) == len(s_tokens)
