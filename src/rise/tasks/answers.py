"""Answer extraction shared by the graders. Standard library only, and nothing is ever evaluated.

Every function here is linear in the length of its input (no backtracking-prone regexes), so a
hostile multi-megabyte response costs milliseconds, not minutes.

Final-answer rule for GSM8K-style tasks (`final_number`), first rule that applies wins:
  1. the last `\\boxed{...}` / `\\fbox{...}` (balanced braces): the last number inside it;
  2. else the last `#### N` line: the number right after `####`;
  3. else the last "answer is N" / "answer: N" / "answer = N": the number right after it.
The marker that applies decides alone: a box with no number in it is unparseable, even when a
`####` line exists. There is no "last number in the text" fallback: a model that writes no final
answer has not answered (reward -1 on GSM8K).
"""
from __future__ import annotations

import re
from fractions import Fraction

# A number token: digits with optional comma groups and decimals, or a bare ".5". The sign is only
# taken when the minus does not follow a word character or ")" ("5-3" is 5 and 3, not 5 and -3).
_SIGN = r"(?:(?<![\w)])[-\u2212])?"
_NUM = _SIGN + r"(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)"
NUMBER_RE = re.compile(r"(?<![\w.])" + _NUM)

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_HASH_RE = re.compile(r"####[ \t*$\\]*(" + _NUM + ")")
_ANSWER_IS_RE = re.compile(
    r"answer(?:\s+is|\s+was|\s*[:=])\s*[:=]?[\s*$\\(\[]*(" + _NUM + ")", re.IGNORECASE)
_FRAC_RE = re.compile(r"^(?:\\[dt]?frac\{(-?\d+)\}\{(\d+)\}|(-?\d+)/(\d+))$")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox)\s*\{([^{}]*)\}")


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


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}`, `\\fbox{...}` or `\\boxed X` in `text`, stripped.

    Balanced-brace matching (the official code stops at the first `}` after one level of nesting,
    so `\\boxed{\\frac{\\sqrt{3}}{2}}` became `\\frac{\\sqrt{3}`). If the last box never closes,
    the answer was never finished: None, rather than silently taking an earlier box. An empty box
    is None too."""
    if not isinstance(text, str):
        return None
    last = None
    for last in _BOX_RE.finditer(text):
        pass
    if last is None:
        return None
    i, n = last.end(), len(text)
    while i < n and text[i] in " \t\r\n":
        i += 1
    if i < n and text[i] == "{":
        group = balanced_group(text, i)
        content = group[0] if group else None
    else:  # "\boxed 5$": one bare token, as in the MATH reference code
        m = re.match(r"[^\s$]+", text[i:i + 200])
        content = m.group(0).rstrip(".,") if m else None
    if content is None:
        return None
    content = content.strip()
    return content or None


# -- numbers -------------------------------------------------------------------------------------
def canonical_number(token: str) -> str | None:
    """Canonical string of one number token: "1,000.50" -> "1000.5", "18.0" -> "18", "-0" -> "0".

    Commas must be valid thousands separators ("1,8" is ambiguous: None). Pure string work, no
    float rounding and no int() (which refuses > 4300 digits)."""
    t = token.strip().replace("\u2212", "-")
    neg = t.startswith("-")
    t = t.lstrip("-")
    if not t:
        return None
    int_part, _, frac_part = t.partition(".")
    if "," in int_part:
        groups = int_part.split(",")
        if not (1 <= len(groups[0]) <= 3 and all(len(g) == 3 for g in groups[1:])):
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


def _fraction_number(s: str) -> str | None:
    """`\\frac{7}{2}` -> "3.5" when the fraction is a finite decimal; else None. No eval."""
    m = _FRAC_RE.match(s) if len(s) <= 60 else None
    if not m:
        return None
    num, den = (m.group(1), m.group(2)) if m.group(1) is not None else (m.group(3), m.group(4))
    if int(den) == 0:
        return None
    f = Fraction(int(num), int(den))
    den = f.denominator
    for p in (2, 5):
        while den % p == 0:
            den //= p
    if den != 1:
        return None
    digits = 0
    while (f * 10 ** digits).denominator != 1:
        digits += 1
    scaled = f * 10 ** digits
    sign = "-" if scaled < 0 else ""
    s_int = str(abs(scaled.numerator)).rjust(digits + 1, "0")
    return canonical_number(sign + s_int[:len(s_int) - digits] + "." + s_int[len(s_int) - digits:])


def clean_latex_number_text(s: str) -> str:
    """Drop the LaTeX that wraps numbers in boxed answers: `\\$`, `\\%`, `\\text{..}`, `\\!`,
    and turn `1\\,000` / `1{,}000` into `1,000`."""
    s = re.sub(r"(?<=\d)(?:\\,|\{,\}|\\!)(?=\d{3}(?!\d))", ",", s)
    s = _TEXT_CMD_RE.sub(r" \1 ", s)
    for junk in ("\\$", "$", "\\%", "%", "\\!", "\\,", "\\;", "\\:", "\\left", "\\right"):
        s = s.replace(junk, " ")
    return s.strip()


def number_in_box(content: str) -> str | None:
    """The number a boxed GSM8K answer states: the last number token inside it (so `x = 18`,
    `18 \\text{ apples}`, `2 \\times 9 = 18` all give 18), or a finite-decimal fraction
    (`\\frac{7}{2}`, `7/2`). Any other fraction is no number (its last token would mislead)."""
    s = clean_latex_number_text(content)
    compact = s.replace(" ", "")
    frac = _fraction_number(compact)
    if frac is not None or "\\frac" in compact or _FRAC_RE.match(compact):
        return frac
    last = None
    for last in NUMBER_RE.finditer(s):
        pass
    return canonical_number(last.group(0)) if last else None


def _last_match(pattern: re.Pattern, text: str) -> re.Match | None:
    last = None
    for last in pattern.finditer(text):
        pass
    return last


def final_number(text: str) -> str | None:
    """The final numeric answer of a GSM8K-style response, canonical, or None (see module doc)."""
    if not isinstance(text, str):
        return None
    if _BOX_RE.search(text):
        box = last_boxed(text)
        return number_in_box(box) if box is not None else None
    for pattern in (_HASH_RE, _ANSWER_IS_RE):
        m = _last_match(pattern, text)
        if m is not None:
            return canonical_number(m.group(1))
    return None


def answer_column_number(value: object) -> str | None:
    """Gold from an answer column: a plain number ("18", "$1,000", 18), or text in response form."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    s = str(value).strip()
    whole = clean_latex_number_text(s)
    if NUMBER_RE.fullmatch(whole):
        return canonical_number(whole)
    return final_number(s)
