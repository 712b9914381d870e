"""The settings of the command: options, environment variables and their checks."""

from __future__ import annotations

import argparse

import pytest

from aiosfstream.cli.errors import UsageError
from aiosfstream.cli.parser import build_parser
from aiosfstream.cli.settings import (
    DEMO_CHANNEL,
    EMULATOR_CHANNELS,
    EMULATOR_PORT,
    FALSE_WORDS,
    TRUE_WORDS,
    LoginSettings,
    emulator_settings,
    listen_settings,
    login_settings,
    parse_replay,
    replay_word,
)
from aiosfstream.replay import ReplayOption, check_replay_id

from .support import CHANNEL


def parse(*args: str) -> argparse.Namespace:
    return build_parser().parse_args(args)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("new", ReplayOption.NEW_EVENTS),
        ("ALL", ReplayOption.ALL_EVENTS),
        ("-1", ReplayOption.NEW_EVENTS),
        ("-2", ReplayOption.ALL_EVENTS),
        ("0", 0),
        ("1234", 1234),
    ],
)
def test_parse_replay(text: str, expected: int) -> None:
    assert parse_replay(text) == expected
    assert type(parse_replay(text)) is type(expected)


@pytest.mark.parametrize("text", ["", "newest", "-3", "1.5"])
def test_parse_replay_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="replay id"):
        parse_replay(text)


def test_parse_replay_checks_ids_like_the_library() -> None:
    # One validator for replay ids: the command's message is the library's.
    with pytest.raises(ValueError, match="-3") as library:
        check_replay_id("--replay", -3)
    with pytest.raises(ValueError, match="-3") as command:
        parse_replay("-3")
    assert str(command.value) == str(library.value)


@pytest.mark.parametrize(
    ("replay_id", "word"),
    [
        (ReplayOption.NEW_EVENTS, "new"),
        (ReplayOption.ALL_EVENTS, "all"),
        (0, "after 0"),
        (42, "after 42"),
    ],
)
def test_replay_word(replay_id: int, word: str) -> None:
    assert replay_word(replay_id) == word
    assert parse_replay(word.removeprefix("after ")) == replay_id


FULL_ENV = {
    "SF_CONSUMER_KEY": "env-key",
    "SF_CONSUMER_SECRET": "env-secret",
    "SF_USERNAME": "env-user",
    "SF_PASSWORD": "env-password",
    "SF_LOGIN_URL": "https://acme.my.salesforce.com",
}


def test_environment_supplies_the_credentials() -> None:
    settings = listen_settings(parse("listen", CHANNEL), FULL_ENV)
    assert settings.login == LoginSettings(
        flow="password",
        consumer_key="env-key",
        consumer_secret="env-secret",
        username="env-user",
        password="env-password",
        login_url="https://acme.my.salesforce.com",
    )
    assert settings.channels == (CHANNEL,)
    assert settings.replay is ReplayOption.NEW_EVENTS
    assert settings.connection_timeout == 10.0
    assert settings.api_version == "66.0"
    assert "env-secret" not in repr(settings)
    assert "env-password" not in repr(settings)


def test_options_win_over_the_environment() -> None:
    args = parse(
        "listen",
        "--username",
        "flag-user",
        "--password",
        "flag-password",
        "--login-url",
        "https://flag.my.salesforce.com",
        "--api-version",
        "60.0",
        CHANNEL,
    )
    env = {**FULL_ENV, "SF_API_VERSION": "59.0"}
    settings = listen_settings(args, env)
    assert settings.login is not None
    assert settings.login.username == "flag-user"
    assert settings.login.password == "flag-password"
    assert settings.login.consumer_key == "env-key"
    assert settings.login.login_url == "https://flag.my.salesforce.com"
    assert settings.api_version == "60.0"


def test_flow_follows_the_credentials() -> None:
    env = {**FULL_ENV, "SF_REFRESH_TOKEN": "env-refresh"}
    assert login_settings(parse("listen", CHANNEL), env).flow == "refresh-token"
    assert login_settings(parse("listen", "--auth", "password", CHANNEL), env).flow == ("password")
    jwt_env = {"SF_CONSUMER_KEY": "k", "SF_USERNAME": "u", "SF_PRIVATE_KEY_FILE": "key.pem"}
    assert login_settings(parse("listen", CHANNEL), jwt_env).flow == "jwt"
    client_env = {"SF_AUTH_FLOW": "client-credentials", **FULL_ENV}
    assert login_settings(parse("listen", CHANNEL), client_env).flow == "client-credentials"


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["listen", CHANNEL], {}, "no credentials"),
        (["listen", CHANNEL], {"SF_PASSWORD": "p", "SF_CONSUMER_KEY": " "}, "SF_CONSUMER_KEY"),
        (["listen", "--auth", "jwt", CHANNEL], FULL_ENV, "SF_PRIVATE_KEY_FILE"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_SANDBOX": "maybe"}, "SF_SANDBOX"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_AUTH_FLOW": "magic"}, "unknown auth flow"),
        (["listen", CHANNEL], {**FULL_ENV, "SF_API_VERSION": "12"}, "api_version"),
        (["listen"], FULL_ENV, "CHANNEL"),
        (["listen", "topic/NoSlash"], FULL_ENV, "must start with '/'"),
    ],
)
def test_listen_settings_errors(argv: list[str], env: dict[str, str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        listen_settings(parse(*argv), env)


def test_emulator_option_needs_no_credentials() -> None:
    settings = listen_settings(parse("listen", "--emulator", "--count", "5"), {})
    assert settings.emulator
    assert settings.channels == (DEMO_CHANNEL,)
    assert settings.count == 5


def test_listen_options() -> None:
    args = parse(
        "listen",
        "--emulator",
        "--replay",
        "42",
        "--replay-store",
        "r.db",
        "--replay-fallback",
        "all",
        "--timeout",
        "2.5",
        "--connection-timeout",
        "0",
        CHANNEL,
        CHANNEL,
    )
    settings = listen_settings(args, {})
    assert settings.channels == (CHANNEL,)
    assert settings.replay == 42
    assert settings.replay_store == "r.db"
    assert settings.replay_fallback is ReplayOption.ALL_EVENTS
    assert settings.timeout == 2.5
    assert settings.connection_timeout is None


def test_emulator_settings() -> None:
    settings = emulator_settings(parse("emulator"))
    assert settings.port == EMULATOR_PORT
    assert settings.demo_channels == EMULATOR_CHANNELS
    assert settings.demo_rate == 0
    args = parse("emulator", "--demo-channel", "/event/A__e", "--demo-channel", "/u/B")
    assert emulator_settings(args).demo_channels == ("/event/A__e", "/u/B")
    with pytest.raises(UsageError, match="not a streaming channel"):
        emulator_settings(parse("emulator", "--demo-channel", "/foo/bar"))


NO_URL_ENV = {name: value for name, value in FULL_ENV.items() if name != "SF_LOGIN_URL"}


@pytest.mark.parametrize("word", [*TRUE_WORDS, "TRUE", " Yes "])
def test_sandbox_variable_accepts_its_yes_words(word: str) -> None:
    settings = login_settings(parse("listen", CHANNEL), {**NO_URL_ENV, "SF_SANDBOX": word})
    assert settings.sandbox is True


@pytest.mark.parametrize("word", [*FALSE_WORDS, "OFF", "", "  "])
def test_sandbox_variable_accepts_its_no_words(word: str) -> None:
    settings = login_settings(parse("listen", CHANNEL), {**FULL_ENV, "SF_SANDBOX": word})
    assert settings.sandbox is False


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (
            ["--sandbox", "--login-url", "https://a.my.salesforce.com"],
            NO_URL_ENV,
            "--sandbox and --login-url",
        ),
        (["--sandbox"], FULL_ENV, "--sandbox and SF_LOGIN_URL"),
        (
            ["--login-url", "https://a.my.salesforce.com"],
            {**NO_URL_ENV, "SF_SANDBOX": "on"},
            "SF_SANDBOX=on and --login-url",
        ),
        ([], {**FULL_ENV, "SF_SANDBOX": "1"}, "SF_SANDBOX=1 and SF_LOGIN_URL"),
    ],
)
def test_sandbox_and_login_url_together_are_refused(
    argv: list[str], env: dict[str, str], message: str
) -> None:
    with pytest.raises(UsageError) as error:
        login_settings(parse("listen", *argv, CHANNEL), env)
    assert str(error.value) == f"{message} both say where to log in; give only one"
