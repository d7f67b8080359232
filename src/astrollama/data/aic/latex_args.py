"""LaTeX scanning shared by the LaTeX route's passes: brace groups, optional ``[..]`` and
undelimited arguments, each bounded so that a hostile e-print stays linear."""

from __future__ import annotations

import re

MAX_OPT_ARG_CHARS = 500  # an optional [argument] longer than this is not one


def brace_map(s: str) -> dict[int, int]:
    """``{`` position -> position of its ``}`` (len(s) when unclosed), ignoring ``\\{``/``\\}``."""
    out: dict[int, int] = {}
    stack: list[int] = []
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            stack.append(i)
        elif c == "}" and stack:
            out[stack.pop()] = i
        i += 1
    for j in stack:
        out[j] = n
    return out


def _braced(tex: str, open_at: int, bm: dict[int, int] | None = None) -> tuple[str, int]:
    """Content of the brace group whose ``{`` is at ``open_at``, and the index after it (``bm``:
    the string's :func:`brace_map`, else the group is scanned)."""
    if bm is not None:
        end = bm.get(open_at, len(tex))
    else:
        depth, end = 0, len(tex)
        k = open_at
        while k < len(tex):
            ch = tex[k]
            if ch == "\\":
                k += 2
                continue
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = k
                    break
            k += 1
    return tex[open_at + 1 : end], min(end + 1, len(tex))


_SPACE = " \t\n"


def _skip_space(s: str, i: int) -> int:
    n = len(s)
    nl = 0
    while i < n and s[i] in _SPACE:
        if s[i] == "\n":
            nl += 1
            if nl > 1:  # a blank line ends the argument search (\par)
                break
        i += 1
    return i


_OPT_CHARS = re.compile(r"[{}\]]|\n[ \t]*\n")


def _opt_arg(s: str, i: int) -> tuple[str | None, int]:
    """``[...]`` at ``i`` (after spaces): its content and the index after it, else (None, i).
    Bounded: an ``[`` not closed within ``MAX_OPT_ARG_CHARS`` is no optional argument."""
    j = _skip_space(s, i)
    if j < len(s) and s[j] == "[":
        lim = min(len(s), j + MAX_OPT_ARG_CHARS)
        k = s.find("]", j + 1, lim)
        if k < 0:
            return None, i
        if "{" not in s[j + 1 : k] and "\n" not in s[j + 1 : k]:  # the common case
            return s[j + 1 : k], k + 1
        depth = 0
        for m in _OPT_CHARS.finditer(s, j + 1, lim):
            c = m.group(0)
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
            elif c == "]":
                if depth <= 0:
                    return s[j + 1 : m.start()], m.end()
            else:  # a blank line
                break
    return None, i


_TOKEN = re.compile(r"\\(?:[A-Za-z@]+|.)|[^\s]", re.S)


def _arg(s: str, i: int, bm: dict[int, int]) -> tuple[str, int]:
    """One undelimited argument at ``i`` (a brace group or a single token)."""
    j = _skip_space(s, i)
    if j >= len(s):
        return "", j
    if s[j] == "{":
        end = bm.get(j, len(s))
        return s[j + 1 : end], min(end + 1, len(s))
    m = _TOKEN.match(s, j)
    return (m.group(0), m.end()) if m else ("", j)
