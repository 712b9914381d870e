"""``main()`` in process: parsing, help, exit statuses and the error line."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from aiosfstream import __version__
from aiosfstream.cli import main
from aiosfstream.cli.errors import ExitCode
from aiosfstream.cli.settings import ENVIRONMENT, FALSE_WORDS, TRUE_WORDS

from .support import CHANNEL, ROOT


@pytest.mark.parametrize(
    "argv",
    [
        ["listen", "--count", "0", CHANNEL],
        ["listen", "--count", "many", CHANNEL],
        ["listen", "--timeout", "0", CHANNEL],
        ["listen", "--connection-timeout", "-1", CHANNEL],
        ["listen", "--replay", "latest", CHANNEL],
        ["listen", "--replay-fallback", "42", CHANNEL],
        ["emulator", "--port", "70000"],
        ["emulator", "--demo-rate", "fast"],
        [],
    ],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == ExitCode.USAGE
    assert "error:" in capsys.readouterr().err


def test_usage_error_is_one_line_without_secrets(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SF_PASSWORD", "secret-password-9876")
    for name in ("SF_CONSUMER_KEY", "SF_CONSUMER_SECRET", "SF_USERNAME", "SF_REFRESH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    assert main(["listen", CHANNEL]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("aiosfstream listen: error: the password flow needs")
    assert "secret-password-9876" not in captured.err


@pytest.mark.parametrize("argv", [["--help"], ["listen", "--help"], ["emulator", "--help"]])
def test_help_shows_no_secret(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ENVIRONMENT.values():
        monkeypatch.setenv(name, f"value-of-{name}")
    assert main(argv) == ExitCode.OK
    out = capsys.readouterr().out
    assert "usage: aiosfstream" in out
    assert "value-of-" not in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == f"aiosfstream {__version__}"


def test_every_exit_code_is_documented(capsys: pytest.CaptureFixture[str]) -> None:
    page = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    assert main(["listen", "--help"]) == ExitCode.OK
    help_text = capsys.readouterr().out
    exit_statuses = help_text.split("exit status:")[1]
    for code in ExitCode:
        assert f"``{code.value}``" in page, code
        assert f"{code.value} " in exit_statuses, code
    for variable in ENVIRONMENT.values():
        assert f"``{variable}``" in page
        assert variable in help_text


def test_the_package_exports_only_main() -> None:
    import aiosfstream.cli

    assert aiosfstream.cli.__all__ == ["main"]
    assert aiosfstream.cli.main is main
    assert not (ROOT / "aiosfstream" / "cli.py").exists()
    (script,) = entry_points(group="console_scripts", name="aiosfstream")
    assert script.load() is main


def test_sandbox_words_are_the_same_in_help_and_docs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "--help"]) == ExitCode.OK
    help_text = capsys.readouterr().out
    page = (ROOT / "docs" / "cli.rst").read_text(encoding="utf-8")
    assert f"--sandbox ({', '.join(TRUE_WORDS)}; or {', '.join(FALSE_WORDS)}, empty)" in help_text
    for word in (*TRUE_WORDS, *FALSE_WORDS):
        assert f"``{word}``" in page, word
