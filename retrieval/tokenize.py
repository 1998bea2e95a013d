"""Identifier tokens, the unit of the Jaccard similarity (Repoformer / RepoEval convention)."""

from __future__ import annotations

import re
import sys

_IDENTIFIER = re.compile(r"\w+")


def identifier_tokens(text: str) -> frozenset[str]:
    """Return the set of `\\w+` tokens in `text` (case-sensitive, as in the paper).

    Tokens are interned: the same identifier in thousands of chunks is one string in memory.
    """
    return frozenset(map(sys.intern, _IDENTIFIER.findall(text)))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """Set-Jaccard similarity; 0.0 when both sets are empty."""
    if not a and not b:
        return 0.0
    inter = len(a & b)
    return inter / (len(a) + len(b) - inter)
