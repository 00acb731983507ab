"""rise's own error types. Standard library only.

The CLI prints an `InputError` as one line (`rise: error: ...`, exit 2): bad input a user can fix
(a config value, a data row, a model path, an unreachable server). Every other exception is a bug
of ours, or of a library, and keeps its traceback; `--debug` / `RISE_DEBUG=1` re-raises all.
"""
from __future__ import annotations


class InputError(ValueError):
    """Bad input; the message names the culprit (key, file:line, problem id, model)."""
