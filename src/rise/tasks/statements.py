"""Where a MATH response states its answer when it does not box it. Standard library only; every
regex is bounded, so extraction stays linear in the response length.

Extraction order of `math_answer` (each step named in `Extraction.step`):
  1. "boxed": the last `\\boxed{}` (with the boxes chained before it by separators only, see
     `rise.tasks.answers.boxed_chain`), unless a final-answer statement comes after it;
  2. "final_answer": the last final-answer statement ("Final Answer: The final answer is $5$. I
     hope it is correct.", "the answer is $x=3$", "Answer $ 9 $", "Answer $$ \\n 9 \\n $$",
     "**Answer:** 12"): the math right after the marker (several `$..$` chained by "," / "and"
     form one answer), else its words; words that make a sentence give the value it states
     ("The largest $n$ is 34." -> 34, `_value_in_prose`);
  3. "whole": a response that is only an answer, with no words and no math delimiters
     (`\\frac{10}{9}`, `(x-2)(x+2)`), is read whole (`bare_answer`);
  4. "last_math" / "last_number": whichever ends later of the last math segment (`$...$`,
     `\\(...\\)`, `\\[...\\]`, `$$...$$`, an `align`-like environment) and the last number
     outside math; `[asy]` drawings are skipped. The last segments joined by "," / "and" are one
     answer ("the solutions are $x=1$ and $x=-3$."); a segment states its value
     (`stated_value`: `a = b = 5` and `2009 \\cdot 2 = 4018` state the last side, `n \\equiv 3
     \\pmod 7` states 3, an equation such as `y = 2x + 3` is kept whole).
Instruction-tuned models often do not box; math-verify's own extraction reads all these forms.
"""
from __future__ import annotations

import re

from .answers import (
    _BOX_RE,
    MAX_CHAIN,
    NOTHING,
    NUMBER_RE,
    Extraction,
    _box_at,
    boxed_chain,
    final_statement,
)

_SEGMENT = 2000        # longest math segment looked at (bounds the regex work)
_ENV = r"(?:align|equation|gather|eqnarray|multline)\*?"
_MATH_RE = re.compile(
    r"\\begin\{%s\}(?P<env>.{1,%d}?)\\end\{%s\}" % (_ENV, _SEGMENT, _ENV) +
    r"|\$\$(?P<dd>(?:[^$]|\$(?!\$)){1,%d}?)\$\$"
    r"|\\\[(?P<br>.{1,%d}?)\\\]"
    r"|\\\((?P<pa>[^\n]{1,%d}?)\\\)"
    r"|(?<![\\$])\$(?P<d>(?:\\\$|[^$\n]){1,%d}?)(?<!\\)\$" % ((_SEGMENT,) * 4), re.DOTALL)
_MATH_CHAIN_RE = re.compile(r"\s*(?:,\s*(?:and\b)?|\band\b)\s*")   # "$1$, $2$ and $3$"
_LEAD_SEP_RE = re.compile(r"\s*(?:,|;|\band\b|\bor\b)?\s*(?:\band\b)?\s*$")
_NO_ANSWER_WORDS = {"correct", "incorrect", "wrong", "right", "not", "as", "that", "the", "a",
                    "an", "to", "in", "this", "below", "above", "given", "shown", "then", "of",
                    "from", "because", "we", "it", "therefore", "thus", "so", "clear"}
_LAST_NUMBER_RE = re.compile(NUMBER_RE.pattern + r"(?:\s*/\s*\d+(?!\d|\.\d))?")   # 5, 1,000, 1/2
_QUOTE_RE = re.compile(r"^(?:\\?[\"'`\u201c\u201d])+|(?:\\?[\"'`\u201c\u201d])+(?=\W*$)")
TAIL = 20_000          # the last characters searched for a last math / last number


def math_segments(text: str) -> list[re.Match]:
    """The math segments of `text` in order (display and inline)."""
    return list(_MATH_RE.finditer(text))


def segment_content(m: re.Match) -> str:
    """The math of a segment; of an `align`-like environment, the value its last row states
    (`&= \\frac{16}{65}.` -> `\\frac{16}{65}`)."""
    if m.group("env") is not None:
        rows = [r for r in m.group("env").split("\\\\") if r.strip(" \t\n.&")]
        row = rows[-1].replace("&", " ") if rows else ""
        row = _ROW_TAIL_RE.sub("", row)
        return stated_value(row)
    return next(v for v in m.groupdict().values() if v is not None).strip()


def last_equal_side(latex: str) -> str:
    """The right side of the last "=" of a chain `a = b = c` (not of `x=1, y=2` or `a \\le b`),
    as math-verify's `get_last_eq`: a chain of equalities states its value last. Only "=" outside
    braces count (`F_n = \\sum_{k=0}^{n-1} ...` is one equation, not a chain)."""
    if ";" in latex or re.search(r",(?!\\!|\d{3}(?!\d))", latex.replace("{,}", "")):
        return latex                                # a list, not a chain ("85,\\!184" is one)
    parts = _top_level_split(latex)
    return parts[-1].strip() if len(parts) > 2 else latex


def stated_value(latex: str) -> str:
    """What a last math segment states: the end of a chain `a = b = c`, and the right side of
    `<arithmetic> = <value>` (`2009 \\cdot 2 = 4018` states 4018; `x = 5` and `2x + 3y = 6` are
    kept whole: an equation can be the answer)."""
    latex = latex.strip().rstrip(".,;").strip()         # "$x \\in (5,\\infty).$"
    if "\\equiv" in latex:                              # "n \\equiv 5 \\pmod{17}" states 5
        latex = _PMOD_RE.sub("", latex).rsplit("\\equiv", 1)[1].strip()
    parts = [p.strip() for p in _top_level_split(latex)]
    if len(parts) >= 2 and _BARE_VAR_RE.fullmatch(parts[-1]) and parts[-2] \
            and not re.search(r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", " ", parts[-2])):
        parts = parts[:-1]                              # "36 - 7 - 2 - 10 = 17 = x" states 17
        latex = "=".join(parts)
    latex = last_equal_side(latex)
    parts = [p.strip() for p in _top_level_split(latex)]
    if len(parts) == 2 and parts[1] and not re.search(
            r"[A-Za-z]", re.sub(r"\\[A-Za-z]+", " ", parts[0])):
        return parts[1]
    return latex


# what ends an align row without being its value: "\quad \Rightarrow ...", a closing \text{..}
_ROW_TAIL_RE = re.compile(r"\\(?:quad|qquad)\s*\\[Rr]ightarrow.*$|\\(?:text|mbox)\{[^{}]*\}\s*$")
_WORD_ANSWER_RE = re.compile(r"[A-Za-z]{2,20}\.?")
_PMOD_RE = re.compile(r"\\[pb]?mod\s*(?:\{[^{}]*\}|\d+)|\(\s*\\mod\s*\d+\s*\)")
_BARE_VAR_RE = re.compile(r"[A-Za-z](?:_\{?\w{1,3}\}?)?")


def _top_level_split(latex: str) -> list[str]:
    """`latex` split at each "=" outside braces that is not part of `<=` / `>=` (`5!=120` is a
    factorial: LaTeX writes "not equal" as `\\ne`)."""
    parts, depth, start = [], 0, 0
    for i, c in enumerate(latex):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "=" and depth == 0 and (i == 0 or latex[i - 1] not in "\\<>"):
            parts.append(latex[start:i])
            start = i + 1
    parts.append(latex[start:])
    return parts


def _statement_value(clause: str) -> str | None:
    """The answer a final-answer clause states: its leading math (chained), a box, or words."""
    clause = _QUOTE_RE.sub("", clause.strip().lstrip("*: ").strip())     # '"$12$ and $13$"'
    box = _BOX_RE.match(clause)
    if box:
        return _box_at(clause, box)[0]
    segs = [m for m in math_segments(clause)]
    if segs and segs[0].start() == 0:
        parts, end = [segment_content(segs[0])], segs[0].end()
        for m in segs[1:]:
            if not _LEAD_SEP_RE.fullmatch(clause[end:m.start()]):
                break
            parts.append(segment_content(m))
            end = m.end()
        inner = boxed_chain(", ".join(parts))
        return inner.answer if inner.answer is not None else ", ".join(parts)
    words = clause.rstrip(" .*").strip()
    if not words or len(words) > 200:
        return None
    if prose_words(words):             # "The largest $n$ is 34", "Sphere 3 hours ago"
        value = _value_in_prose(words)
        if value is not None:
            return value
    first = words.split()[0].lower().strip(",.")
    if first in _NO_ANSWER_WORDS and not any(c.isdigit() for c in words):
        return None
    return words


_CMD_ARG_RE = re.compile(r"\\[A-Za-z]+\*?(?:\s*\{[^{}]{0,200}\})?")
# A word: 3+ letters, or a short English word ("So $x = 5$." is prose; `2xy` is not).
_WORD_RE = re.compile(r"[A-Za-z]{3,}|\b(?:so|is|or|of|to|in|on|at|it|be|we|as|an|by|if|am|are)\b",
                      re.IGNORECASE)
_IS_RE = re.compile(r"\s(?:is|are|was|equals|be)\s|=")


def prose_words(text: str) -> list[str]:
    """The words (3+ letters) of `text` outside math segments and LaTeX commands (with their
    argument: `10\\text{ units}` has none): an answer with words around it is prose."""
    return _WORD_RE.findall(_CMD_ARG_RE.sub(" ", _MATH_RE.sub(" ", text)))


def _value_in_prose(words: str) -> str | None:
    """The value a sentence states: after its last "is" / "=" the leading math or number
    ("the volume of $V$ is 120 cubic units" -> 120); without one, its last math or number."""
    last_is = None
    for last_is in _IS_RE.finditer(words):  # noqa: B007 - keep the last match
        pass
    if last_is is not None:
        rest = words[last_is.end():].strip()
        lead = _MATH_RE.match(rest) or _LAST_NUMBER_RE.match(rest)
        if lead is not None:
            return segment_content(lead) if lead.re is _MATH_RE else lead.group(0)
        if rest and not prose_words(rest):
            return rest
    found = last_math_or_number(words)
    return found.answer


def bare_answer(text: str) -> Extraction:
    """Step "whole": a response that is only an answer, outside math delimiters and with no
    words around it (`\\frac{10}{9}`, `(x-2)(x+2)`, `1,000.99`, `x + y - z + 2 = 0`), is read
    whole; reading its last number would turn `\\frac{10}{9}` into 9."""
    s = text.strip()
    if _WORD_ANSWER_RE.fullmatch(s):    # "Monday", "Even": a one-word answer
        return Extraction(s.rstrip("."), "whole", 0)
    if not s or len(s) > 400 or "\n\n" in s or prose_words(s) or _MATH_RE.search(s):
        return NOTHING                  # math in delimiters is read by "last_math" (its value)
    s = s.rstrip(".").strip()
    return Extraction(s, "whole", 0) if s else NOTHING


def statement_answer(text: str) -> Extraction:
    """The last final-answer statement's value (step "final_answer")."""
    found = final_statement(text)
    if found.answer is None:
        return NOTHING
    value = _statement_value(found.answer)
    return Extraction(value, "final_answer", found.start) if value else NOTHING


def without_drawings(text: str) -> str:
    """`text` with each `[asy]...[/asy]` drawing blanked (same length): its labels and
    coordinates are no answer. One pass of `str.find`, linear in the text."""
    out, i = [], 0
    while True:
        start = text.find("[asy]", i)
        end = text.find("[/asy]", start + 5) if start >= 0 else -1
        if end < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:start] + " " * (end + 6 - start))
        i = end + 6


def last_math_or_number(text: str) -> Extraction:
    """Step 3: the last math segment or the last number outside math, whichever ends later."""
    offset = max(len(text) - TAIL, 0)
    tail = without_drawings(text[offset:])
    segs = math_segments(tail)
    seg = segs[-1] if segs else None
    number = None
    for number in _LAST_NUMBER_RE.finditer(tail, seg.end() if seg else 0):  # noqa: B007 - the loop only seeks the last match
        pass
    if number is not None:
        return Extraction(number.group(0), "last_number", offset + number.start())
    if seg is not None:
        content = stated_value(segment_content(seg))
        if len(prose_words(content)) >= 2:  # words typed inside math: "$? just about 1$"
            inner = None
            for inner in _LAST_NUMBER_RE.finditer(content):  # noqa: B007 - keep the last match
                pass
            if inner is not None:
                return Extraction(inner.group(0), "last_number", offset + seg.start())
        if not content:
            return NOTHING
        parts, first = [content], seg
        for prev in reversed(segs[-MAX_CHAIN:-1]):   # "the solutions are $x=1$ and $x=-3$."
            if not _MATH_CHAIN_RE.fullmatch(tail[prev.end():first.start()]):
                break
            if seg.group("env") is not None or prev.group("env") is not None:
                break                               # an align block is one answer of its own
            part = stated_value(segment_content(prev))
            if not part or prose_words(part):
                break
            parts.insert(0, part)
            first = prev
        return Extraction(", ".join(parts), "last_math", offset + first.start())
    return NOTHING


def math_answer(text: str) -> Extraction:
    """The answer of a MATH response and the step that read it (module doc)."""
    if not isinstance(text, str) or not text.strip():
        return NOTHING
    box = boxed_chain(text)
    statement = statement_answer(text)
    last_box = None
    for last_box in _BOX_RE.finditer(text):  # noqa: B007 - the loop only seeks the last match
        pass
    if statement.answer is not None and (last_box is None or statement.start > last_box.start()):
        return statement
    if last_box is not None:                # a box that never closes is no answer
        return box if box.answer is not None else Extraction(None, "boxed", last_box.start())
    whole = bare_answer(text)
    return whole if whole.answer is not None else last_math_or_number(text)
