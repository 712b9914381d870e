"""Every failure of the command: one line on stderr, in one form, and its exit status."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest

from aiosfstream.cli.errors import ExitCode
from aiosfstream.testing import SalesforceEmulator

from .support import CHANNEL, base_env, emulator_env, run

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pipes")

LISTEN = ("listen", "--allow-insecure-http")
LISTEN_HELP = "(see 'aiosfstream listen --help')"


async def test_timeout_before_count_says_how_many_were_printed(
    emulator: SalesforceEmulator,
) -> None:
    finished = await run(
        *LISTEN, "--count", "3", "--timeout", "0.3", CHANNEL, env=emulator_env(emulator)
    )
    assert finished.code == ExitCode.INCOMPLETE
    assert finished.stderr == (
        "aiosfstream: incomplete: 0 of 3 events printed before --timeout (0.3 s)\n"
    )


@pytest.mark.parametrize("subcommand", ["listen", "emulator"])
async def test_unknown_option_shows_the_subcommand_usage(subcommand: str) -> None:
    finished = await run(subcommand, "--bogus", env=base_env())
    assert finished.code == ExitCode.USAGE
    lines = finished.stderr.splitlines()
    assert lines[0].startswith(f"usage: aiosfstream {subcommand} [-h] [-v]")
    assert lines[-1] == f"aiosfstream {subcommand}: error: unrecognized arguments: --bogus"
    assert all(line.startswith(" ") for line in lines[1:-1])  # the rest of the usage


async def expired_store(emulator: SalesforceEmulator, store: Path) -> int:
    """Fill *store* with the marker of an event the emulator then drops; return its id."""
    emulator.publish(CHANNEL, {"Name": "old"})
    first = await run(
        *LISTEN,
        "--replay-store",
        str(store),
        "--replay",
        "all",
        "--count",
        "1",
        CHANNEL,
        env=emulator_env(emulator),
    )
    assert first.code == ExitCode.OK
    emulator.purge_retention(before=emulator.now() + 1)
    replay_id: int = first.events[0]["data"]["event"]["replayId"]
    return replay_id


def invalid_replay(replay_id: int) -> str:
    """The emulator's answer to a replay id it no longer has, two spaces included."""
    return (
        f"The replayId {{{replay_id}}} you provided was invalid.  Please provide a valid ID, "
        "-2 to replay all events, or -1 to replay only new events."
    )


async def test_rejected_stored_replay_id_suggests_the_fallback(
    emulator: SalesforceEmulator, tmp_path: Path
) -> None:
    store = tmp_path / "replay.db"
    replay_id = await expired_store(emulator, store)
    finished = await run(*LISTEN, "--replay-store", str(store), CHANNEL, env=emulator_env(emulator))
    assert finished.code == ExitCode.SERVER
    # Folded into one line with single spaces, as every error line is.
    assert finished.stderr == (
        f"aiosfstream: Salesforce refused: Subscribe request to {CHANNEL} failed: "
        f"400::{' '.join(invalid_replay(replay_id).split())} "
        "(the replay id has left the retention window: --replay-fallback new or "
        "--replay-fallback all subscribes anyway, without the events lost in between)\n"
    )
    finished.assert_clean()


@pytest.mark.parametrize("fallback", ["new", "all"])
async def test_the_fallback_is_told_in_the_command_words(
    emulator: SalesforceEmulator, tmp_path: Path, fallback: str
) -> None:
    store = tmp_path / "replay.db"
    replay_id = await expired_store(emulator, store)
    args = (*LISTEN, "--replay-store", str(store), "--replay-fallback", fallback)
    finished = await run(*args, "--timeout", "0.2", CHANNEL, env=emulator_env(emulator))
    assert finished.code == ExitCode.OK
    # Shown without -v: the run goes on, but events were lost.
    assert finished.log == [
        f"WARNING aiosfstream.cli: replay id refused for {CHANNEL} "
        f"({invalid_replay(replay_id)}); "
        f"subscribing with --replay-fallback {fallback} instead"
    ]
    verbose = await run(*args, "-v", "--timeout", "0.2", CHANNEL, env=emulator_env(emulator))
    assert verbose.code == ExitCode.OK
    assert (
        f"subscribed to {CHANNEL}, replay {fallback} instead of after the stored id "
        f"{replay_id} (--replay-fallback)" in verbose.cli_log()
    )
    for output in (finished.stderr, verbose.stderr):
        assert "NEW_EVENTS" not in output
        assert "ALL_EVENTS" not in output


async def test_sandbox_with_a_login_url_is_a_usage_error(emulator: SalesforceEmulator) -> None:
    env = emulator_env(emulator)
    del env["SF_LOGIN_URL"]
    finished = await run(*LISTEN, "--sandbox", "--login-url", emulator.url, CHANNEL, env=env)
    assert finished.code == ExitCode.USAGE
    assert finished.stderr == (
        "aiosfstream listen: error: --sandbox and --login-url both say where to log in; "
        f"give only one {LISTEN_HELP}\n"
    )


async def test_sf_sandbox_accepts_what_its_error_message_says(
    emulator: SalesforceEmulator,
) -> None:
    refused = await run(*LISTEN, CHANNEL, env=emulator_env(emulator, SF_SANDBOX="maybe"))
    assert refused.code == ExitCode.USAGE
    match = re.fullmatch(
        r"aiosfstream listen: error: SF_SANDBOX must be one of (.+) \(a sandbox\) or (.+) "
        rf"\(not a sandbox\), or empty; got 'maybe' {re.escape(LISTEN_HELP)}\n",
        refused.stderr,
    )
    assert match is not None, refused.stderr
    yes_words, no_words = match[1].split(", "), match[2].split(", ")
    assert len(yes_words) > 1 and len(no_words) > 1

    # Each word the message lists is taken: a yes word then clashes with SF_LOGIN_URL
    # (and nothing is sent to test.salesforce.com), a no word logs in to the emulator.
    async def listen_with(word: str) -> tuple[str, int, str]:
        finished = await run(
            *LISTEN, "--timeout", "0.2", CHANNEL, env=emulator_env(emulator, SF_SANDBOX=word)
        )
        return word, finished.code, finished.stderr

    results = await asyncio.gather(*map(listen_with, [*yes_words, *no_words, ""]))
    assert results == [
        *(
            (
                word,
                ExitCode.USAGE,
                f"aiosfstream listen: error: SF_SANDBOX={word} and SF_LOGIN_URL both say "
                f"where to log in; give only one {LISTEN_HELP}\n",
            )
            for word in yes_words
        ),
        *((word, ExitCode.OK, "") for word in [*no_words, ""]),
    ]
