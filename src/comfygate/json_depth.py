"""JSON from a client, parsed only once its nesting is known to be shallow.

``json.loads`` recurses once a level: a document a few thousand levels deep raises
RecursionError, and one just shallow enough to parse can still break whatever walks it
next (validation, the canonical form, the store's encoder). So the text is scanned
first, by a loop rather than recursion, and refused past a depth, naming the top-level
member the deep part is under.
"""

from __future__ import annotations

import json
import re
from typing import Any

#: deeper than any parameters or metadata a person writes; shallow enough for every
#: recursive walk after the parse
MAX_DEPTH = 64

#: a string (whose brackets are not structure) or a bracket; all else is skipped
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


class TooDeep(ValueError):
    """The document nests deeper than allowed."""

    def __init__(self, member: str | None, max_depth: int) -> None:
        #: the top-level member the deep part is under; None when not in an object's
        self.member = member
        super().__init__(f"nested more than {max_depth} levels deep")

    @property
    def pointer(self) -> str:
        """The JSON pointer of the member, or of the whole document."""
        if self.member is None:
            return "/"
        return "/" + self.member.replace("~", "~0").replace("/", "~1")


def check_depth(text: str, max_depth: int = MAX_DEPTH) -> None:
    """Raise TooDeep if ``text`` nests objects and arrays deeper than ``max_depth``."""
    depth = 0
    in_object = False
    member: str | None = None  # the last string seen at the top level: a member's name
    for match in _TOKENS.finditer(text):
        token = match.group()
        if token == "{" or token == "[":
            if depth == 0:
                in_object = token == "{"
            depth += 1
            if depth > max_depth:
                raise TooDeep(_name(member) if in_object else None, max_depth)
        elif token == "}" or token == "]":
            depth -= 1
        elif depth == 1:
            member = token


def _name(token: str | None) -> str | None:
    if token is None:
        return None
    try:
        name = json.loads(token)
    except ValueError:
        return None
    return name if isinstance(name, str) else None


def loads(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of a document no deeper than ``max_depth``; TooDeep (a
    ValueError, as a syntax error is) otherwise."""
    check_depth(text, max_depth)
    return json.loads(text)
