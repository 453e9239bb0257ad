"""The exit codes are one contract in three places (issue 10, item 1): the README's table,
`daemon/errors.py` and the systemd unit. Every code but 70 tells systemd not to restart."""

from __future__ import annotations

import re

import daemon.errors as errors
from tests.conftest import REPO

ROW = re.compile(r"^\| (\d+) \| `(EXIT_\w+)` \| (.+?) \| (yes|no) \|$")


def readme_table() -> dict[int, tuple[str, bool]]:
    """code -> (name, restarted) from the README's exit-code table."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("### Exit codes"):]
    rows = {int(m[1]): (m[2], m[4] == "yes")
            for line in section.splitlines() if (m := ROW.match(line))}
    assert rows, "the README has no exit-code table"
    return rows


def unit_no_restart() -> set[int]:
    unit = (REPO / "configs" / "systemd" / "tapeloop.service").read_text()
    values = [line.split("=", 1)[1] for line in unit.splitlines()
              if line.startswith("RestartPreventExitStatus=")]
    assert len(values) == 1, values
    return {int(code) for code in values[0].split()}


def test_readme_errors_and_unit_agree() -> None:
    table = readme_table()
    constants = {value: name for name, value in vars(errors).items()
                 if name.startswith("EXIT_") and isinstance(value, int)}
    assert {code: name for code, (name, _) in table.items()} == constants
    restarted = {code for code, (_, again) in table.items() if again}
    assert restarted == {errors.EXIT_CRASH}, "70 is the only code systemd restarts"
    must_act = set(constants) - {errors.EXIT_OK, errors.EXIT_CRASH}
    assert set(errors.NO_RESTART) == must_act
    assert unit_no_restart() == must_act


def test_an_unusable_data_directory_has_its_own_code() -> None:
    assert errors.EXIT_DATA == 6 and errors.EXIT_DATA in unit_no_restart()
    assert "6 data directory unusable" in (REPO / "README.md").read_text()


def test_a_refusal_is_one_line_whatever_its_message(capsys, monkeypatch) -> None:  # noqa: ANN001
    """A library's multi-line message inside a UserError (issue 10: "some refusals carry
    a library's multi-line message") is folded to one line on stderr."""
    import daemon.commands.check_config as check_config
    from daemon.cli import main

    def refuse(args: object) -> int:
        raise errors.UserError("bad.toml: $.x: Expected value\n  line 3\n    ^", errors.EXIT_CONFIG)

    monkeypatch.setattr(check_config, "run", refuse)
    assert main(["check-config", "bad.toml"]) == errors.EXIT_CONFIG
    assert capsys.readouterr().err == (
        "tapeloop check-config: bad.toml: $.x: Expected value line 3 ^\n")
