"""Answer extraction shared by the graders. Standard library only, and nothing is ever evaluated.

Every function here is linear in the length of its input (bounded regexes, no backtracking-prone
patterns), so a hostile multi-megabyte response costs milliseconds, not minutes.

An extraction says which step read the answer (`Extraction.step`), so that an episode record can
show why an answer was read. The steps (set per task, see `gsm8k_answer` and
`rise.tasks.statements.math_answer`):

  "boxed"         the last `\\boxed{...}` / `\\fbox{...}` (balanced braces), together with the boxes
                  chained right before it by "," / "and" (`\\boxed{1}, \\boxed{2}` is the set 1, 2);
  "hash"          the last `#### N` line (GSM8K's own format);
  "final_answer"  a final-answer statement: "The final answer is $5$", "Final Answer: 5",
                  "the answer is 9 * 2 = 18.", "Answer $ 9 $" (its value: the math right after the
                  marker, else the clause up to the end of the sentence, after its last "=");
  "last_math"     the last `$...$` / `\\(...\\)` / `\\[...\\]` (MATH only);
  "whole"         a response that is only an answer, read whole (GSM8K: one value and nothing
                  else; MATH: no words around it, `rise.tasks.statements.bare_answer`);
  "last_number"   the last number in the text (MATH only).

GSM8K (`gsm8k_answer`): of "boxed", "hash" and "final_answer", the one that comes LAST in the
text wins ("#### 16 ... The answer is 18." reads 18; a final-answer line beats earlier boxes).
There is no "last number in the text" fallback: a model that writes no final answer has not
answered (reward -1 on GSM8K, as in the paper); only a response that is one value and nothing
else ("18", "$1,000.") is read whole (step "whole"). A statement in words reads its leading
number words ("The answer is eighteen."). Values are exact rationals: `1/2`,
`\\frac{1}{2}`, `2 1/2` (mixed), `3:00` (a time, h + m/60), `5e3`, `5 \\times 10^3`, `1,000`,
`$18`, `50%`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

# A number token: digits with optional comma groups and decimals, or a bare ".5". The sign is only
# taken when the minus does not follow a word character or ")" ("5-3" is 5 and 3, not 5 and -3).
_SIGN = r"(?:(?<![\w)])[-\u2212])?"
_NUM = _SIGN + r"(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)"
NUMBER_RE = re.compile(r"(?<![\w.])" + _NUM)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_HASH_RE = re.compile(r"####")
# A final-answer marker: "final answer is", "the answer is", "answer:", "Answer $9$" ...
ANSWER_MARKER_RE = re.compile(
    r"\banswer\b(?:\s+(?:is|was|would be|will be|should be)\b|\s*(?:[:=]|\*\*\s*:|:\s*\*\*)"
    r"|(?=\s*(?:\$|\\\(|\\\[|\\boxed)))[\s:*=]*", re.IGNORECASE)
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|mathbf)\s*\{([^{}]*)\}")
# Separators that chain several boxes into one answer: "\boxed{1}, \boxed{2} and \boxed{3}",
# "$\boxed{(2, 2)} \quad \text{and} \quad \boxed{(6, 2)}$", "\( y_1 = \boxed{..} \) and \( y_2 = ".
# Any run of: spaces, math delimiters, "," ";" "&", spacing commands, "and", a short `\text{..}`
# (its words connect, they hold no sentence end) and a variable label "y_2 =" before the next box.
_CHAIN_TOKEN = (r"(?:\s|\$|\\[()\[\]]|[,;&]|\\(?:quad|qquad|[,;: !])|\band\b"
                r"|\\(?:text|textrm|mbox)\s*\{[^{}.!?]{0,40}\}"
                r"|[A-Za-z](?:_\{?\w{1,4}\}?)?\s*=)")
_CHAIN_SEP_RE = re.compile("(?:%s){0,120}" % _CHAIN_TOKEN)
MAX_SEP = 200          # longest text between two chained boxes (bounds the separator match)
MAX_CHAIN = 12


@dataclass(frozen=True)
class Extraction:
    """An extracted answer and the step that read it (None/None when nothing was read)."""
    answer: str | None
    step: str | None = None
    start: int = -1          # where in the text the answer was read (orders the steps)


NOTHING = Extraction(None, None)


# -- boxes ---------------------------------------------------------------------------------------
def balanced_group(text: str, open_pos: int) -> tuple[str, int] | None:
    """Content of the `{...}` group whose `{` is at `open_pos`, and the index after its `}`.

    Escaped braces (`\\{`, `\\}`) do not count, so `\\boxed{\\{1,2\\}}` is the set `\\{1,2\\}`.
    Returns None when the group never closes (a truncated response)."""
    depth, i, n = 0, open_pos, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return text[open_pos + 1:i], i + 1
        i += 1
    return None


def _box_at(text: str, m: re.Match) -> tuple[str | None, int]:
    """(content, end) of the box whose command `m` matched; content None if it never closes."""
    i, n = m.end(), len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i < n and text[i] == "{":
        group = balanced_group(text, i)
        if group is None:
            return None, n
        return group[0].strip() or None, group[1]
    # "\boxed 5$": one bare token, as in the MATH reference code
    bare = re.match(r"[^\s$]+", text[i:i + 200])
    if not bare:
        return None, i
    return bare.group(0).rstrip(".,") or None, i + bare.end()


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, `\\fbox{...}` or `\\boxed X` in `text`, stripped.

    Balanced-brace matching (the official code stops at the first `}` after one level of nesting,
    so `\\boxed{\\frac{\\sqrt{3}}{2}}` became `\\frac{\\sqrt{3}`). If the last box never closes,
    the answer was never finished: None, rather than silently taking an earlier box. An empty box
    is None too."""
    if not isinstance(text, str):
        return None
    last = _last_match(_BOX_RE, text)
    return _box_at(text, last)[0] if last else None


def boxed_chain(text: str, *, sentence: bool = False) -> Extraction:
    """The last box and the boxes chained right before it, joined by ", " (step "boxed").

    Boxes chain when only a separator ("," "and" "\\text{ and }" "\\quad", math delimiters) stands
    between them, so `$\\boxed{1}$ and $\\boxed{-2}$` is the answer "1, -2", or when they end the
    rows of one `align` (`\\\\` between them, no sentence end). With `sentence=True` (reference
    solutions) boxes in the same sentence joined by "and" or "," chain too, unless "or" or a
    plain "=" links them
    (`\\boxed{\\frac{25}{13}} = \\boxed{1\\frac{12}{13}}` is one answer written twice: the last is
    kept; `x = \\boxed{3}$, so $y = 2x = \\boxed{6}` reads 6). A box that never closes is no
    answer (None)."""
    starts = list(_BOX_RE.finditer(text)) if isinstance(text, str) else []
    if not starts:
        return NOTHING
    content, end = _box_at(text, starts[-1])
    if content is None:
        return NOTHING
    parts, first = [content], starts[-1].start()
    for m in reversed(starts[-MAX_CHAIN:-1]):
        prev, prev_end = _box_at(text, m)
        if prev is None or prev_end > first or not _chains(text[prev_end:first], sentence):
            break
        if prev not in parts:                     # the same answer boxed twice is one answer
            parts.insert(0, prev)
        first = m.start()
    return Extraction(", ".join(parts), "boxed", first)


_JOIN_RE = re.compile(r"\band\b|,")
_SENTENCE_END_RE = re.compile(r"[.!?](?:\s|\$|$)|\n\s*\n|\bOR\b|\bor\b")


def _chains(between: str, sentence: bool) -> bool:
    if len(between) <= MAX_SEP and _CHAIN_SEP_RE.fullmatch(between):
        return True
    if len(between) > 400 or _SENTENCE_END_RE.search(between):
        return False
    if "\\\\" in between:                          # rows of an align: one answer per row
        return True
    # a reference solution's boxes in one sentence, joined by "and" or a comma, are one answer
    # ("the $x$-intercept is $\\boxed{3}$ and the $y$-intercept is $\\boxed{2}$"); words
    # alone do not join them ("\\boxed{1} no no \\boxed{2}" is its last box)
    return sentence and "=" not in between and bool(
        _JOIN_RE.search(between) or not re.search(r"(?<!\\)\b[A-Za-z]{2,}", between))


# -- numbers -------------------------------------------------------------------------------------
def canonical_number(token: str) -> str | None:
    """Canonical string of one number token: "1,000.50" -> "1000.5", "18.0" -> "18", "-0" -> "0".

    Commas must be valid thousands separators ("1,8" and "0,111" are ambiguous: None). Pure
    string work, no float rounding and no int() (which refuses > 4300 digits)."""
    t = token.strip().replace("\u2212", "-")
    neg = t.startswith("-")
    t = t.lstrip("-")
    if not t:
        return None
    int_part, _, frac_part = t.partition(".")
    if "," in int_part:
        groups = int_part.split(",")
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])) \
                or groups[0].startswith("0"):      # "0,111" is no thousands grouping
            return None
        int_part = "".join(groups)
    if not (int_part.isdigit() or int_part == "") or not (frac_part.isdigit() or frac_part == ""):
        return None
    if int_part == "" and frac_part == "":
        return None
    int_part = int_part.lstrip("0") or "0"
    frac_part = frac_part.rstrip("0")
    out = int_part + ("." + frac_part if frac_part else "")
    if out == "0":
        return "0"
    return "-" + out if neg else out


def canonical_rational(value: Fraction) -> str:
    """Canonical string of an exact value: a finite decimal ("0.5", "2.5", "5000") when there is
    one, else "p/q" ("10/3")."""
    den = value.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return f"{value.numerator}/{value.denominator}"
    digits = 0
    while (value * 10 ** digits).denominator != 1:
        digits += 1
    scaled = value * 10 ** digits
    sign = "-" if scaled < 0 else ""
    s_int = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return canonical_number(sign + s_int[:len(s_int) - digits] + "." + s_int[len(s_int) - digits:])


def clean_latex_number_text(s: str) -> str:
    """Drop the LaTeX and markdown that wrap numbers in answers: `\\$`, `\\%`, `\\text{..}`, `\\!`,
    `**`, and turn `1\\,000` / `1{,}000` into `1,000`, `\\dfrac` into `\\frac`."""
    s = re.sub(r"(?<=\d)(?:\\,|\{,\}|\\!)(?=\d{3}(?!\d))", ",", s)
    s = _TEXT_CMD_RE.sub(r" \1 ", s)
    s = re.sub(r"\\[dtc]frac(?![A-Za-z])", r"\\frac", s)
    for junk in ("\\$", "$", "\\%", "%", "\\!", "\\,", "\\;", "\\:", "\\left", "\\right", "**",
                 "\\(", "\\)", "\\[", "\\]", "\u20ac", "\u00a3"):
        s = s.replace(junk, " ")
    return s.strip()


_INT = r"[-\u2212]?\d+(?:,\d{3})*"
_DEC = r"[-\u2212]?(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)"
# One numeric value, most specific form first. Bounded digit runs keep Fraction() cheap.
_VALUE_RE = re.compile(
    r"(?<![\w.])(?:"
    r"(?P<mixed>" + _INT + r")\s*(?:\s(?P<mnum>\d{1,9})\s*/\s*(?P<mden>\d{1,9})"
    r"|\\frac\s*\{\s*(?P<mfnum>\d{1,9})\s*\}\s*\{\s*(?P<mfden>\d{1,9})\s*\})(?![\d/])"
    r"|(?P<fneg>[-\u2212])?\s*\\frac\s*\{\s*(?P<fnum>" + _DEC + r")\s*\}\s*\{\s*(?P<fden>" + _DEC
    + r")\s*\}"
    r"|(?P<hour>\d{1,2}):(?P<minute>[0-5]\d)(?![\d:])"
    r"|(?P<snum>" + _DEC + r")\s*(?:[eE](?P<sexp>[-+]?\d{1,4})(?![\w.])"
    r"|(?:\\times|\\cdot|\*|x|\u00d7)\s*10\s*\^\s*\{?\s*(?P<texp>[-+]?\d{1,4})\s*\}?)"
    r"|(?P<num>" + _DEC + r")(?:\s*/\s*(?P<den>" + _DEC + r"))?"
    r")")


def _dec(token: str) -> Fraction | None:
    canon = canonical_number(token)
    if canon is None or len(canon) > 400:
        return None
    return Fraction(canon)


def value_of(m: re.Match) -> Fraction | None:
    """The exact value of one `_VALUE_RE` match (None: ambiguous, e.g. "1,8", or a zero divisor)."""
    g = m.groupdict()
    if g["mixed"] is not None:
        whole = _dec(g["mixed"])
        num, den = (g["mnum"], g["mden"]) if g["mnum"] is not None else (g["mfnum"], g["mfden"])
        if whole is None or int(den) == 0 or int(num) >= int(den):
            return None
        part = Fraction(int(num), int(den))
        return whole - part if whole < 0 or g["mixed"].startswith(("-", "\u2212")) else whole + part
    if g["fnum"] is not None:
        num, den = _dec(g["fnum"]), _dec(g["fden"])
        if num is None or not den:
            return None
        return -num / den if g["fneg"] else num / den
    if g["hour"] is not None:
        return int(g["hour"]) + Fraction(int(g["minute"]), 60)
    if g["snum"] is not None:
        base = _dec(g["snum"])
        return None if base is None else base * Fraction(10) ** int(g["sexp"] or g["texp"])
    num = _dec(g["num"])
    if num is None or g["den"] is None:
        return num
    den = _dec(g["den"])
    return num / den if den else None


def number_of(clause: str) -> str | None:
    """The canonical number a final statement or a box states: after its last "=" (so `x = 18`,
    `9 * 2 = 18`, `2 \\times 9 = 18` give 18), the first value (so `18 \\text{ apples}` is 18)."""
    s = clean_latex_number_text(clause)
    if "=" in s:
        s = s.rsplit("=", 1)[1]
    m = _VALUE_RE.search(s[:400])
    if m is None:
        value = number_in_words(s[:200])          # "The answer is eighteen."
        return str(value) if value is not None else None
    value = value_of(m)
    return canonical_rational(value) if value is not None else None


_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate(
    "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if w != "_"}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 10 ** 6, "billion": 10 ** 9}
_WORDS_RE = re.compile(r"[A-Za-z]+")


def number_in_words(text: str) -> int | None:
    """The whole number that `text` opens with in English words ("eighteen", "two hundred and
    five", "forty-two dollars" -> 42), else None. Only the leading words are read."""
    total = current = 0
    seen = False
    for word in _WORDS_RE.findall(text)[:12]:
        w = word.lower()
        if w in _UNITS or w in _TENS:
            current += _UNITS.get(w, _TENS.get(w, 0))
        elif w in _SCALES and (seen or w == "hundred"):
            scale = _SCALES[w]
            if scale == 100:
                current = max(current, 1) * 100
            else:
                total += max(current, 1) * scale
                current = 0
        elif w in ("and", "a"):
            continue
        else:
            break
        seen = True
    return total + current if seen else None


def number_in_box(content: str) -> str | None:
    """The number a boxed GSM8K answer states (see `number_of`)."""
    return number_of(content)


# -- GSM8K ---------------------------------------------------------------------------------------
_CLAUSE_END_RE = re.compile(r"\n|[.!?;](?=\s|$)|,\s(?=[A-Za-z])|\bI hope\b")


_DISPLAY_OPEN_RE = re.compile(r"[ \t*:]*(\$\$|\\\[)")


def clause_after(text: str, pos: int, limit: int = 300) -> str:
    """The text from `pos` to the end of its sentence (at most `limit` characters). Display math
    that opens right there (`Answer $$ \\n 9 \\n $$`, `\\[ ... \\]`) is read to its close,
    across lines."""
    chunk = text[pos:pos + limit]
    display = _DISPLAY_OPEN_RE.match(chunk)
    if display:
        close = chunk.find("$$" if display.group(1) == "$$" else "\\]", display.end())
        if close > 0:
            return chunk[:close + 2]
    m = _CLAUSE_END_RE.search(chunk.lstrip(" \t*:"))
    lead = len(chunk) - len(chunk.lstrip(" \t*:"))
    return chunk[:lead + m.start()] if m else chunk


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):  # noqa: B007 - the loop only seeks the last match
        pass
    return last


def final_statement(text: str) -> Extraction:
    """The last final-answer statement: the text after its marker (step "final_answer").
    The caller reads its value; a marker followed by nothing is no statement."""
    for m in reversed(list(ANSWER_MARKER_RE.finditer(text))[-8:]):
        clause = clause_after(text, m.end())
        if clause.strip():
            return Extraction(clause.strip(), "final_answer", m.start())
    return NOTHING


def _hash_line(text: str) -> Extraction:
    m = _last_match(_HASH_RE, text)
    if m is None:
        return NOTHING
    return Extraction(clause_after(text, m.end()), "hash", m.start())


def gsm8k_answer(text: str) -> Extraction:
    """The final numeric answer of a GSM8K-style response, canonical, and its step (module doc)."""
    if not isinstance(text, str):
        return NOTHING
    last_box = _last_match(_BOX_RE, text)
    box = Extraction(_box_at(text, last_box)[0], "boxed", last_box.start()) if last_box else NOTHING
    found = [e for e in (box, _hash_line(text), final_statement(text)) if e.answer is not None]
    if box.step and box.answer is None and not any(e.start > box.start for e in found):
        return box                                # the last box never closes: never finished
    if not found:
        value = whole_value(text)                 # a response that is only a number: "18"
        return Extraction(value, "whole", 0) if value is not None else NOTHING
    last = max(found, key=lambda e: e.start)
    if last.step == "final_answer":               # "The answer is $\boxed{18}$": one statement
        inner = _last_match(_BOX_RE, last.answer)
        if inner is not None:
            last = Extraction(_box_at(last.answer, inner)[0] or "", "final_answer", last.start)
    return Extraction(number_of(last.answer), last.step, last.start)


def final_number(text: str) -> str | None:
    """The final numeric answer of a GSM8K-style response, canonical, or None (see module doc)."""
    return gsm8k_answer(text).answer


def whole_value(text: str) -> str | None:
    """The canonical number of a text that is one value and nothing else ("18", "$1,000.",
    "\\frac{1}{2}", "3:00"), else None. No words: "I got 18" is not an answer."""
    s = clean_latex_number_text(text.strip()[:200]).rstrip(".").strip()
    m = _VALUE_RE.fullmatch(s)
    if m is None:
        return None
    v = value_of(m)
    return canonical_rational(v) if v is not None else None


def answer_column_number(value: object) -> str | None:
    """Gold from an answer column: a plain number ("18", "$1,000", 18, "1/2"), or a response."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    s = str(value).strip()
    return final_number(s)
