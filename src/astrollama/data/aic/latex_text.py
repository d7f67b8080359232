"""LaTeX route, step 4: LaTeX -> text in one linear pass (:class:`_Converter`), then paragraphs
joined and punctuation tidied (:func:`tidy_paragraphs`).

Math stays LaTeX; floats are dropped but their captions kept; citations, references and acronyms are
written from the paper's :class:`~astrollama.data.aic.citations._Context`. Each command is handled by
the converter method that ``_HANDLERS`` names for it (the tables of
:mod:`astrollama.data.aic.latex_commands` say which commands go where); a command in none of them is
dropped and its braced argument read as text. See :mod:`astrollama.data.aic.latex`.
"""

from __future__ import annotations

import re
import unicodedata

from astrollama.data.aic.citations import _Context
from astrollama.data.aic.labels import KIND_WORD
from astrollama.data.aic.latex_args import _arg, _braced, _opt_arg, brace_map
from astrollama.data.aic.latex_commands import (
    _ABBREV_END,
    _ACCENTS,
    _ACRO,
    _ARGS,
    _BETWEEN_REFS,
    _BREAKS,
    _CITE,
    _FLOATS,
    _PLURAL,
    _PREFIX_WORD,
    _REF_JOIN,
    _REF_JOIN_OPEN,
    _REF_WORD,
    _REFS,
    _SKIP_ENVS,
    _SYMBOLS,
    _TEXTUAL,
    _TYPED_REFS,
    _WORDS,
    MATH_CLOSE,
    MATH_ENVS,
    MATH_OPEN,
)

MAX_GROUP_DEPTH = 16  # arguments nested deeper are reduced to their text

_NAME = re.compile(r"[A-Za-z@]+\*?")
_HEADINGS = ("section", "subsection", "subsubsection", "paragraph", "subparagraph")
# command (without its *) -> the converter method that handles it; the first group naming a command
# wins (a citation command, matched by ``_CITE``, is handled before this table is read)
_HANDLERS: dict[str, str] = {}
for _names, _method in (
    (("begin",), "_begin"),
    (("end",), "_end"),
    (_REFS, "_ref"),
    (_ACRO, "_acronym"),
    (_HEADINGS, "_heading"),
    (("caption",), "_caption"),
    (("ensuremath",), "_ensuremath"),
    (("item",), "_item"),
    (("ion",), "_ion"),
    (("textsuperscript", "textsubscript"), "_script"),
    (_BREAKS, "_break"),
    (_ARGS, "_drop_args"),
    (_WORDS, "_word"),
):
    for _n in _names:
        _HANDLERS.setdefault(_n, _method)


class _Converter:
    """One left-to-right pass from LaTeX to text (math kept verbatim). Linear in the input."""

    def __init__(self, ctx: _Context) -> None:
        self.ctx = ctx
        self.captions: list[str] = []
        self.last_ref_empty = False
        self.last_ref_numbered = False  # "Figures \ref{a} and \ref{b}": the second one is a number only
        self.last_ref_word = ""
        self.depth = 0

    def text(self, s: str) -> str:
        self.out: list[str] = []
        self._run(re.sub("[\ue000-\ue002]", "", s))
        return "".join(self.out)

    # -- helpers
    def _tail(self, n: int = 40) -> str:
        t = ""
        for piece in reversed(self.out):
            t = piece + t
            if len(t) >= n:
                break
        return t[-n:]

    def _drop_tail(self, k: int) -> None:
        """Remove the last ``k`` characters of the output."""
        while k > 0 and self.out:
            last = self.out.pop()
            if len(last) > k:
                self.out.append(last[:-k])
            k -= len(last)

    def _emit_math(self, m: str) -> None:
        m = re.sub(r"\\(?:label|tag)\s*\{[^{}]*\}|\\nonumber\b|\\notag\b", "", m)
        self.out.append(MATH_OPEN + m + MATH_CLOSE)

    def _at_line_start(self) -> bool:
        t = self._tail(2)
        return t == "" or t.endswith("\n")

    # -- main loop
    def _run(self, s: str) -> None:
        bm = brace_map(s)
        n = len(s)
        i = 0
        special = re.compile(r"[\\${}~]")
        while i < n:
            m = special.search(s, i)
            j = m.start() if m else n
            if j > i:
                self.out.append(_plain_chunk(s[i:j]))
                self.last_ref_empty = self.last_ref_empty and bool(_REF_JOIN.fullmatch(s[i:j].strip() + " "))
                self.last_ref_numbered = self.last_ref_numbered and bool(_BETWEEN_REFS.fullmatch(s[i:j]))
            if j >= n:
                break
            c = s[j]
            if c in "{}":
                i = j + 1
            elif c == "~":
                self.out.append(" ")
                i = j + 1
            elif c == "$":
                if s.startswith("$$", j):
                    e = s.find("$$", j + 2)
                    e = n if e < 0 else e + 2
                else:
                    e = j + 1
                    while True:
                        e = s.find("$", e)
                        if e < 0:
                            e = n
                            break
                        if s[e - 1] != "\\":
                            e += 1
                            break
                        e += 1
                self._emit_math(s[j:e])
                i = e
            else:
                i = self._command(s, j, bm)

    def _command(self, s: str, j: int, bm: dict[int, int]) -> int:
        """The command at ``j`` (a backslash): its handler's result, the index after it."""
        n = len(s)
        if j + 1 >= n:
            return n
        nxt = s[j + 1]
        if not (nxt.isalpha() or nxt == "@"):
            return self._symbol(s, j, bm)
        m = _NAME.match(s, j + 1)
        assert m is not None
        name = m.group(0)
        if _CITE.fullmatch(name):
            return self._cite(s, name, m.end(), bm)
        handler = _HANDLERS.get(name.rstrip("*"))
        if handler is None:
            return m.end()  # unknown command: dropped, its braced argument (if any) read as text
        return getattr(self, handler)(s, name, m.end(), bm)

    # -- handlers: (s, name, index after the name, brace map) -> index after the command
    def _symbol(self, s: str, j: int, bm: dict[int, int]) -> int:
        """A control symbol: ``\\(``/``\\[`` math, an accent, or an escaped character."""
        n = len(s)
        nxt = s[j + 1]
        if nxt in "([":
            close = "\\)" if nxt == "(" else "\\]"
            e = s.find(close, j + 2)
            e = n if e < 0 else e + 2
            self._emit_math(s[j:e])
            return e
        if nxt in _ACCENTS:
            a, e = _arg(s, j + 2, bm)
            a = a.replace("\\i", "i").replace("\\j", "j").strip("{}")
            if a:
                self.out.append(unicodedata.normalize("NFC", a[0] + _ACCENTS[nxt] + a[1:]))
            return e
        self.out.append(_SYMBOLS.get(nxt, ""))
        return j + 2

    def _end(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        _, e = _arg(s, i, bm)
        return e

    def _heading(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        base = name.rstrip("*")
        _, i = _opt_arg(s, i)
        title, i = _arg(s, i, bm)
        t = " ".join(self._sub(title).split())
        self.out.append(f"\n\n{t}\n\n" if base != "paragraph" and base != "subparagraph" else f"\n\n{t} ")
        return i

    def _caption(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        _, i = _opt_arg(s, i)
        cap, i = _arg(s, i, bm)
        self.captions.append(" ".join(self._sub(cap).split()))
        return i

    def _ensuremath(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        a, i = _arg(s, i, bm)
        self._emit_math("$" + a + "$")
        return i

    def _item(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        _, i = _opt_arg(s, i)
        self.out.append("\n- ")
        return i

    def _ion(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:  # \ion{Fe}{ii}
        el, i = _arg(s, i, bm)
        st, i = _arg(s, i, bm)
        self.out.append(f"{self._sub(el)} {self._sub(st)}")
        return i

    def _script(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        a, i = _arg(s, i, bm)
        self._emit_math(("$^{" if name.rstrip("*") == "textsuperscript" else "$_{") + a + "}$")
        return i

    def _break(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        self.out.append(_BREAKS[name.rstrip("*")])
        return i

    def _drop_args(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        """A command of ``_ARGS``: its optional and dropped arguments skipped, the kept ones read."""
        n = len(s)
        n_opt, n_drop, n_keep = _ARGS[name.rstrip("*")]
        for _ in range(n_opt):
            _, i = _opt_arg(s, i)
        for _ in range(n_drop):
            _, i = _arg(s, i, bm)
        for _ in range(n_keep):
            a, i = _arg(s, i, bm)
            self.out.append(self._sub(a))
        if not n_keep and self._at_line_start():  # a line holding only \label{..} is no line at all
            k = i
            while k < n and s[k] in " \t":
                k += 1
            if k < n and s[k] == "\n" and not s.startswith("\n\n", k):
                i = k + 1
        return i

    def _word(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        self.out.append(_WORDS[name.rstrip("*")])
        return i

    def _sub(self, s: str) -> str:
        """Convert a fragment with the same context (captions and notes go to this converter)."""
        if self.depth >= MAX_GROUP_DEPTH:  # nested arguments deeper than any paper: text only
            return re.sub(r"\\[A-Za-z@]+\*?|[{}$]", " ", s)
        saved, self.out = self.out, []
        self.depth += 1
        self._run(s)
        self.depth -= 1
        res = "".join(self.out)
        self.out = saved
        return res

    def _begin(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        env, k = _arg(s, i, bm)
        env = env.strip()
        end_tok = "\\end{" + env + "}"
        if env in MATH_ENVS:
            e = s.find(end_tok, k)
            e = len(s) if e < 0 else e + len(end_tok)
            self.out.append(" ")
            self._emit_math("\\begin{" + env + "}" + s[k:e][: -len(end_tok) or None] + end_tok)
            self.out.append(" ")
            return e
        if env in _FLOATS or env in _SKIP_ENVS:
            e = s.find(end_tok, k)
            body = s[k:] if e < 0 else s[k:e]
            if env in _FLOATS and "\\caption" in body:
                fbm = brace_map(body)
                for cm in re.finditer(r"\\caption\s*", body):
                    _, p = _opt_arg(body, cm.end())
                    if p < len(body) and body[p] == "{":
                        cap, _ = _braced(body, p, fbm)
                        self.captions.append(" ".join(_Converter(self.ctx).text(cap).split()))
            e = len(s) if e < 0 else e + len(end_tok)
            if self._at_line_start() and s.startswith("\n", e) and not s.startswith("\n\n", e):
                e += 1
            return e
        # a list or other environment: its content is text; drop the begin and its arguments
        _, k = _opt_arg(s, k)
        if env in ("itemize", "enumerate", "description"):
            self.out.append("\n")
        return k

    def _cite(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        pre, i = _opt_arg(s, i)
        post, i = _opt_arg(s, i)
        if post is None:
            pre, post = None, pre
        keys_s, i = _arg(s, i, bm)
        keys = [k.strip() for k in keys_s.split(",") if k.strip()]
        pre = " ".join(self._sub(pre).split()) if pre else ""
        post = " ".join(self._sub(post).split()) if post else ""
        found = [c for c in (self.ctx.cite(k) for k in keys) if c is not None]
        self.ctx.unresolved += len(keys) - len(found)
        base = name.rstrip("*").lower()
        ay = [c for c in found if isinstance(c, tuple)]
        nums = [c for c in found if isinstance(c, str)]
        if nums and not ay and base not in ("citeauthor", "citeyear", "citeyearpar"):
            ref = "[" + ", ".join(nums) + "]"
            if base in ("citet", "textcite"):  # numeric \citet: "Smith et al. [3]", else "Ref. [3]"
                named = [(self.ctx.authors.get(k), self.ctx.cites[k]) for k in keys if k in self.ctx.cites]
                if all(a for a, _ in named):
                    ref = ", ".join(f"{a} [{n}]" for a, n in named)
                elif not re.search(r"\bRef(?:erence)?s?\.?\s*$", self._tail(20)):
                    ref = ("Refs. " if len(nums) > 1 else "Ref. ") + ref
            self.out.append(ref)
            return i
        textual = base in ("citet", "textcite") or (base == "cite" and not nums and bool(ay))
        if base in ("citeauthor",):
            names = [a for a, _ in ay] or [self.ctx.authors[k] for k in keys if k in self.ctx.authors]
            self.out.append(", ".join(names) if names else "the authors")
            return i
        if base in ("citeyear", "citeyearpar"):
            ys = ", ".join(y for _, y in ay)
            self.out.append((f"({ys})" if base == "citeyearpar" else ys) if ys else "")
            return i
        if not ay:
            if nums:
                self.out.append("[" + ", ".join(nums) + "]")
                return i
            # neutral: keep a textual citation's place in the sentence, drop a parenthetical one
            tail = self._tail(20)
            if base in ("citet", "textcite", "citealt", "citealp", "citeads", "citeadst") or _TEXTUAL.search(
                tail
            ):
                word = "previous work"
                if not tail.strip() or (re.search(r"[.!?]\s*$", tail) and not _ABBREV_END.search(tail)):
                    word = "Previous work"
                self.out.append(word)
            return i
        if textual:
            parts = [f"{a} ({y})" for a, y in ay]
            if post:
                a, y = ay[-1]
                parts[-1] = f"{a} ({y}, {post})"
            self.out.append((pre + " " if pre else "") + ", ".join(parts))
            return i
        inner = "; ".join(f"{a} {y}" for a, y in ay)
        inner = (pre + " " if pre else "") + inner + (", " + post if post else "")
        if base in ("citealt", "citealp"):
            self.out.append(inner)
        else:
            self.out.append("(" + inner + ")")
        return i

    def _acronym(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        """acronym/glossaries use: the first one reads "long (short)", later ones the short form."""
        base = name.rstrip("*")
        if base == "acresetall":
            self.ctx.acro_used.clear()
            return i
        _, i = _opt_arg(s, i)
        key, i = _arg(s, i, bm)
        key = key.strip()
        if base in ("acrodef", "acro"):  # a definition in the body: no text
            _, i = _opt_arg(s, i)
            return _arg(s, i, bm)[1]
        if base == "newacronym":
            return _arg(s, _arg(s, i, bm)[1], bm)[1]
        if base == "acused":
            self.ctx.acro_used.add(key)
            return i
        short, long_ = self.ctx.acronyms.get(key, (key, key))
        form, plural = _ACRO[base]
        if key not in self.ctx.acronyms:  # defined where we cannot see it: the key is the short form
            form = "short"
        elif form == "ac":
            form = "short" if key in self.ctx.acro_used else "full"
        if form == "full" and not name.endswith("*"):
            self.ctx.acro_used.add(key)
        pl = "s" if plural else ""
        text = {"short": short + pl, "long": long_ + pl, "full": f"{long_}{pl} ({short}{pl})"}[form]
        if base[:1].isupper() and text:
            text = text[0].upper() + text[1:]
        self.out.append(text)
        return i

    def _ref(self, s: str, name: str, i: int, bm: dict[int, int]) -> int:
        name = name.rstrip("*")
        key, i = _arg(s, i, bm)
        keys = [k.strip() for k in key.split(",") if k.strip()] or [""]
        tail = self._tail(30)
        nums = [self.ctx.labels[k] for k in keys if k in self.ctx.labels]
        after_word = bool(_REF_WORD.search(tail))
        after_ref = self.last_ref_empty and bool(_REF_JOIN.search(tail))
        word = "Section"
        low = keys[0].lower()
        for pre, w in _PREFIX_WORD:
            if low.startswith(pre):
                word = w
                break
        kind = next((self.ctx.kinds[k] for k in keys if k in self.ctx.kinds), "")
        word = KIND_WORD.get(kind, word)  # the counter's kind, where known, over the label's spelling
        if name == "eqref":
            word = "Eq."
        if nums:
            paren = name == "eqref" or (word == "Eq." and name in _TYPED_REFS)
            parts = [f"({x})" if paren else x for x in nums]
            num = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            if len(parts) > 1:
                word = _PLURAL.get(word, word)
            sep = "" if tail.endswith((" ", "(")) else " "
            after_num = (
                self.last_ref_numbered
                and self.last_ref_word == word
                and bool(_REF_JOIN_OPEN.search(tail))
                and name not in _TYPED_REFS
            )
            bare_num = after_word or after_num or name == "pageref"
            self.out.append(sep + num if bare_num else f"{word} {num}")
            self.last_ref_empty = False
            self.last_ref_numbered, self.last_ref_word = True, word
            return i
        self.ctx.bare_refs += 1
        if after_ref:  # "Figs. \ref{a} and \ref{b}" without numbers: drop the joiner too
            j = _REF_JOIN.search(tail)
            self._drop_tail(len(tail) - j.start() if j else 0)
            self.out.append(" ")
        elif not after_word:
            self.out.append(word)
        self.last_ref_empty = True
        self.last_ref_numbered = False
        return i


def _plain_chunk(t: str) -> str:
    if "-" in t or "`" in t or "'" in t:
        t = t.replace("---", "—").replace("--", "–").replace("``", '"').replace("''", '"')
    return t


# ------------------------------------------------------------------------------- tidy text

_MARKED = re.compile(MATH_OPEN + "[^" + MATH_CLOSE + "]*" + MATH_CLOSE)
_HOLE = "\ue002"  # where a math span was while the prose is tidied


def _tidy_prose(t: str) -> str:
    t = re.sub(r"[ \t\u00a0]+", " ", t)
    t = re.sub(r" +([.,;:!?)\]])", r"\1", t)
    t = re.sub(r"([(\[]) +", r"\1", t)
    t = re.sub(r"\(\s*[,;]?\s*\)|\[\s*\]", "", t)
    t = re.sub(r"\(\s*(?:e\.g\.|i\.e\.|see|cf\.)[,;]?\s*\)", "", t)
    t = re.sub(r"\(\s*[,;]\s*", "(", t)
    t = re.sub(r"\s*[,;]\s*\)", ")", t)
    t = re.sub(r",\s*,", ",", t)
    t = re.sub(r"\.\s*\.(?!\.)", ".", t)
    return re.sub(r" {2,}", " ", t)


def tidy_paragraphs(text: str) -> str:
    """Join each paragraph's lines (list items stay on their own lines), then tidy punctuation
    outside math (math spans are set aside while the prose is tidied)."""
    paras = []
    for p in re.split(r"\n[ \t]*\n", text):
        lines = [ln.strip() for ln in p.split("\n") if ln.strip()]
        if not lines:
            continue
        joined: list[str] = []
        for ln in lines:
            if ln.startswith("- ") or not joined:
                joined.append(ln)
            else:
                joined[-1] += " " + ln
        para = "\n".join(joined)
        maths = [m.group(0)[1:-1] for m in _MARKED.finditer(para)]
        para = _tidy_prose(_MARKED.sub(_HOLE, para).replace(MATH_OPEN, "").replace(MATH_CLOSE, ""))
        if maths:
            parts = para.split(_HOLE)
            para = parts[0] + "".join(m + rest for m, rest in zip(maths, parts[1:], strict=False))
        para = para.strip()
        if para and para != "-":
            paras.append(para)
    return "\n\n".join(paras)


def latex_to_text(tex: str, ctx: _Context | None = None) -> str:
    """LaTeX fragment -> paragraphs of text; floats' captions appended as "Caption: ..."."""
    conv = _Converter(ctx or _Context())
    body = conv.text(tex)
    caps = "".join(f"\n\nCaption: {c}" for c in conv.captions if c)
    return tidy_paragraphs(body + caps)


def clean_latex(tex: str) -> str:
    """LaTeX -> text without a paper context (no .bbl/.aux): see :func:`latex_to_text`."""
    return latex_to_text(tex)


def _plain(s: str) -> str:
    return " ".join(_Converter(_Context()).text(s).split())


def define_acronyms(ctx: _Context, tex: str) -> None:
    """``\\acrodef``/``\\acro{key}[short]{long}`` (acronym) and ``\\newacronym{key}{short}{long}``."""
    bm = brace_map(tex)
    for m in re.finditer(r"\\(acrodef|acro|newacronym)\s*(?=[\[{])", tex):
        i = m.end()
        if m.group(1) == "newacronym":
            _, i = _opt_arg(tex, i)
        key, i = _arg(tex, i, bm)
        if m.group(1) == "newacronym":
            short, i = _arg(tex, i, bm)
        else:
            short, i = _opt_arg(tex, i)
        long_, i = _arg(tex, i, bm)
        key = key.strip()
        if key and long_.strip():
            ctx.acronyms.setdefault(key, (_plain(short or key), _plain(long_)))
