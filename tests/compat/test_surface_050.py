"""Code written for aiosfstream 0.5.0 finds every name and argument it used.

``surface_050.json`` is the public surface of the real 0.5.0, written down by
``dump_surface.py`` (its docstring says what counts as public and how to rerun it).
Each of its names must exist here in the same module, and be usable the same way:

* a positional parameter of 0.5.0 is positional here too, at the same place and, unless
  it was positional-only, under the same name (not for the methods Python itself calls,
  such as ``__aexit__``: it passes their arguments by position);
* a keyword-only parameter of 0.5.0 is accepted by keyword here (a constructor that
  takes ``**kwargs`` and hands them to its base class is read through to that class);
* a parameter 0.5.0 let callers leave out has a default here, and so has every
  parameter we added;
* a method stays a method (a coroutine if it was one), a static method stays callable on
  the class, a property or attribute stays readable, on the class or on an instance built
  like 0.5.0's (``dump_surface.SAMPLES``).

What 0.5.0 exposed without meaning to, and we do not provide, is listed in
:data:`NOT_CARRIED_OVER` with the reason.
"""

from __future__ import annotations

import enum
import importlib
import inspect
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

import aiosfstream
from tests.compat.dump_surface import PROTOCOL_METHODS, SAMPLES

SURFACE: dict[str, dict[str, Any]] = json.loads(
    Path(__file__).with_name("surface_050.json").read_text()
)["modules"]

#: Parts of 0.5.0's surface we leave out on purpose: the path, then why.
NOT_CARRIED_OVER = {
    "aiosfstream.auth:ClientError": (
        "aiohttp's ClientError, imported by 0.5.0's auth module for its own use; 0.5.0's "
        "authenticate() already turned it into AuthenticationError, and so do we"
    ),
    "aiosfstream.client:COMETD_PATH": (
        "the path of Salesforce's endpoint, not a setting; aiosfstream.policy.cometd_url "
        "and Client.get_cometd_url build the URL"
    ),
    "aiosfstream.replay:MappingStorage().replay_fallback": (
        "0.5.0's client parked the fallback option on its storage for the next subscribe; "
        "ours sends it with the subscribe itself (Client.replay_fallback)"
    ),
    "aiosfstream.replay:DefaultMappingStorage().replay_fallback": "as for MappingStorage",
    "aiosfstream.replay:ConstantReplayId().replay_fallback": "as for MappingStorage",
    "aiosfstream.replay:DefaultReplayIdMixin.get_replay_id": (
        "ours comes from ReplayMarkerStorage, the base of every storage the mixin goes with, "
        "which reads the mixin's default_id"
    ),
}


class Part(NamedTuple):
    """One item of 0.5.0's surface: its path and its entry in the data file."""

    path: str
    entry: dict[str, Any]


def names() -> Iterator[Part]:
    for module, entries in SURFACE.items():
        for name, entry in entries.items():
            yield Part(f"{module}:{name}", entry)


def members() -> Iterator[Part]:
    for part in names():
        for member, entry in part.entry.get("members", {}).items():
            yield Part(f"{part.path}.{member}", entry)


def callables() -> Iterator[Part]:
    for part in [*names(), *members()]:
        if part.entry.get("parameters") is not None:
            yield Part(part.path, part.entry)


def attributes() -> Iterator[Part]:
    for part in names():
        for attribute in part.entry.get("attributes", []):
            yield Part(f"{part.path}().{attribute}", {})


def cases(parts: Iterator[Part]) -> list[Any]:
    return [pytest.param(part, id=part.path) for part in parts if part.path not in NOT_CARRIED_OVER]


def resolve(path: str) -> Any:
    """Our object at *path*, ``module:Name.member``; fails the test if it is missing."""
    module_name, _, qualified = path.partition(":")
    found: Any = importlib.import_module(module_name)
    where = module_name
    for name in qualified.split("."):
        if not hasattr(found, name):
            pytest.fail(f"{where} has no {name!r}, which 0.5.0 had")
        found = getattr(found, name)
        where = f"{where}.{name}"
    return found


def owner_and_name(path: str) -> tuple[type, str]:
    owner_path, _, name = path.rpartition(".")
    owner = resolve(owner_path)
    assert isinstance(owner, type)
    return owner, name


# --- names --------------------------------------------------------------------------


@pytest.mark.parametrize("part", cases(names()))
def test_name_exists_in_the_same_module(part: Part) -> None:
    ours = resolve(part.path)
    kind = part.entry["kind"]
    if kind == "exception":
        assert isinstance(ours, type) and issubclass(ours, BaseException)
        if part.entry["parameters"] is None:  # 0.5.0 took Exception's arguments
            assert str(ours("it failed")).startswith("it failed")
    elif kind == "enum":
        assert isinstance(ours, type) and issubclass(ours, enum.Enum)
    elif kind == "namedtuple":
        assert list(ours._fields) == part.entry["fields"]
    elif kind == "class":
        assert isinstance(ours, type)
    elif kind == "function":
        assert callable(ours)
    elif kind == "constant":
        assert type(ours).__name__ == part.entry["type"]


def test_what_is_not_carried_over_was_in_050() -> None:
    known = {part.path for part in [*names(), *members(), *attributes()]}
    assert set(NOT_CARRIED_OVER) <= known


# --- parameters ---------------------------------------------------------------------


def our_parameters(part: Part) -> tuple[list[inspect.Parameter], Callable[[], list[Any]] | None]:
    """Our parameters for *part*, and how to read on through a ``**kwargs``, if it can."""
    kind = part.entry["kind"]
    if kind in ("class", "exception"):
        cls = resolve(part.path)
        return list(inspect.signature(cls).parameters.values()), lambda: forwarded_to(cls)
    ours = resolve(part.path)
    found = list(inspect.signature(ours).parameters.values())
    if kind == "method":
        owner, name = owner_and_name(part.path)
        raw = inspect.getattr_static(owner, name)
        assert not isinstance(raw, staticmethod | classmethod | property), f"{name} is no method"
        assert inspect.isfunction(raw), f"{name} is not a method"
        found = found[1:]  # self
    elif kind == "staticmethod":
        owner, name = owner_and_name(part.path)
        raw = inspect.getattr_static(owner, name)
        assert isinstance(raw, staticmethod | classmethod), f"{name} needs an instance"
    return found, None


def forwarded_to(cls: type) -> list[Any]:
    """The parameters of the base class a constructor's ``**kwargs`` go to."""
    for base in cls.__mro__[1:]:
        if "__init__" in vars(base):
            return list(inspect.signature(vars(base)["__init__"]).parameters.values())[1:]
    return []


POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)


def check_parameter(
    theirs: dict[str, Any],
    position: int,
    ours: list[inspect.Parameter],
    forwarded: Callable[[], list[Any]] | None,
    *,
    names_matter: bool = True,
) -> inspect.Parameter:
    """Fail unless *ours* takes 0.5.0's parameter *theirs*; return the one that does."""
    kind, name = theirs["kind"], theirs["name"]
    by_name = {parameter.name: parameter for parameter in ours}
    if kind in ("VAR_POSITIONAL", "VAR_KEYWORD"):
        matching = [p for p in ours if p.kind.name == kind]
        assert matching, f"0.5.0 took {'*' if kind == 'VAR_POSITIONAL' else '**'}{name}"
        return matching[0]
    if kind in ("POSITIONAL_ONLY", "POSITIONAL_OR_KEYWORD"):
        assert position < len(ours), f"{name!r} (position {position}) is missing"
        found = ours[position]
        assert found.kind in POSITIONAL, f"{name!r} is no longer positional"
        if kind == "POSITIONAL_OR_KEYWORD" and names_matter:
            assert found.name == name, f"position {position} is {found.name!r}, not {name!r}"
            assert found.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, f"{name!r}: kind"
    elif name in by_name:
        found = by_name[name]
        assert found.kind in (
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            inspect.Parameter.KEYWORD_ONLY,
        ), f"{name!r} is not accepted by keyword"
    else:
        has_kwargs = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ours)
        assert has_kwargs and forwarded is not None, f"keyword {name!r} is not accepted"
        following = forwarded()
        found = check_parameter(theirs, position, following, lambda: [])
    if theirs["default"]:
        assert found.default is not found.empty or found.kind.name.startswith("VAR_"), (
            f"{name!r} had a default in 0.5.0"
        )
    return found


@pytest.mark.parametrize("part", cases(callables()))
def test_parameters_are_accepted_as_050_took_them(part: Part) -> None:
    ours, forwarded = our_parameters(part)
    names_matter = part.path.rpartition(".")[2] not in PROTOCOL_METHODS
    matched = {
        check_parameter(theirs, position, ours, forwarded, names_matter=names_matter).name
        for position, theirs in enumerate(part.entry["parameters"])
    }
    for parameter in ours:
        if parameter.name not in matched and not parameter.kind.name.startswith("VAR_"):
            assert parameter.default is not parameter.empty, (
                f"{parameter.name!r} is new and must have a default"
            )


# --- members and attributes ---------------------------------------------------------


def sample(path: str) -> object | None:
    """An instance of our class at *path*, built as 0.5.0 code builds one, if we have one."""
    cls = resolve(path)
    build = SAMPLES.get(f"{cls.__module__}.{cls.__qualname__}")
    return None if build is None else build(aiosfstream)


@pytest.mark.parametrize("part", cases(members()))
def test_members_are_used_the_same_way(part: Part) -> None:
    owner, name = owner_and_name(part.path)
    kind = part.entry["kind"]
    if kind == "method":
        raw = inspect.getattr_static(owner, name)
        assert inspect.isfunction(raw), f"{name} is not a method"
        if part.entry["coroutine"]:
            assert inspect.iscoroutinefunction(raw), f"{name} is not a coroutine method"
    elif kind in ("property", "attribute"):
        instance = sample(part.path.rpartition(".")[0])
        assert hasattr(owner, name) or (instance is not None and hasattr(instance, name))
    else:  # static methods are checked with their parameters, enum members exist
        assert hasattr(owner, name)


@pytest.mark.parametrize("part", cases(attributes()))
def test_instance_attributes_are_there(part: Part) -> None:
    class_path, _, attribute = part.path.partition("().")
    instance = sample(class_path)
    assert instance is not None
    assert hasattr(instance, attribute), f"{type(instance).__name__}.{attribute} is missing"
