"""Issue 10.6: only rise's own input errors are one line; a bug keeps its traceback."""
import pytest

from rise import cli
from rise.config import ConfigError
from rise.errors import InputError
from rise.records import RecordError
from rise.tasks.base import TaskError


def _raising(exc):
    def dispatch(args, cfg):
        raise exc
    return dispatch


@pytest.mark.parametrize("exc", [KeyError("steps"), ValueError("internal"), TypeError("x"), IndexError(3)])
def test_internal_errors_keep_their_traceback(monkeypatch, exc):
    monkeypatch.setattr(cli, "_dispatch", _raising(exc))
    with pytest.raises(type(exc)):
        cli.main(["eval", "--model", "m=/nowhere"])


@pytest.mark.parametrize("exc", [InputError("bad row"), ConfigError("bad key"), RecordError("f:3"), TaskError("gold")])
def test_input_errors_are_one_line(monkeypatch, capsys, exc):
    monkeypatch.setattr(cli, "_dispatch", _raising(exc))
    assert cli.main(["eval", "--model", "m=/nowhere"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and err.startswith("rise: error: ")


@pytest.mark.parametrize("argv", [["--debug", "eval"], ["eval", "--debug"]])
def test_debug_reraises_input_errors(monkeypatch, argv):
    monkeypatch.setattr(cli, "_dispatch", _raising(InputError("bad row")))
    with pytest.raises(InputError):
        cli.main(argv + ["--model", "m=/nowhere"])


def test_rise_debug_env(monkeypatch):
    monkeypatch.setattr(cli, "_dispatch", _raising(InputError("bad row")))
    monkeypatch.setenv("RISE_DEBUG", "1")
    with pytest.raises(InputError):
        cli.main(["eval", "--model", "m=/nowhere"])


def test_error_types_share_one_base():
    for cls in (ConfigError, RecordError, TaskError):
        assert issubclass(cls, InputError)
