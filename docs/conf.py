"""Sphinx configuration for the aiosfstream documentation.

Build with::

    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

The build must stay warning-free: it runs nitpicky, with warnings as errors.
No extension or theme beyond plain Sphinx is needed.
"""

from __future__ import annotations

import importlib
import re
import sys
import types
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import Directive

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

_version_file = (ROOT / "aiosfstream" / "_version.py").read_text(encoding="utf-8")
_match = re.search(r'__version__ = "([^"]+)"', _version_file)
if _match is None:  # pragma: no cover - a broken checkout
    raise RuntimeError("cannot find __version__ in aiosfstream/_version.py")

# -- Project information ---------------------------------------------------------------

project = "aiosfstream"
author = "the aiosfstream authors"
copyright = "the aiosfstream authors"  # noqa: A001 - Sphinx's name
release = _match.group(1)
version = ".".join(release.split(".")[:2])

# -- General configuration -------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]

# The network is not always available where the docs are built, so intersphinx is not
# used; the few standard-library and aiohttp targets that cannot be resolved locally are
# listed in nitpick_ignore below instead.
nitpicky = True
nitpick_ignore = [
    # standard library
    ("py:class", "ssl.SSLContext"),
    ("py:class", "SSLContext"),
    ("py:class", "datetime.datetime"),
    ("py:class", "collections.abc.MutableMapping"),
    ("py:class", "collections.abc.Mapping"),
    ("py:class", "collections.abc.Callable"),
    ("py:class", "collections.abc.Iterable"),
    ("py:class", "collections.abc.Iterator"),
    ("py:class", "collections.abc.AsyncIterator"),
    ("py:class", "collections.abc.Sequence"),
    ("py:class", "collections.OrderedDict"),
    ("py:class", "collections.abc.Awaitable"),
    ("py:class", "os.PathLike"),
    ("py:class", "shelve.Shelf"),
    ("py:class", "enum.Enum"),
    ("py:class", "enum.IntEnum"),
    ("py:class", "abc.ABC"),
    ("py:class", "typing.NamedTuple"),
    ("py:class", "typing.Any"),
    ("py:class", "NoneType"),
    ("py:func", "shelve.open"),
    ("py:func", "asyncio.run"),
    ("py:func", "contextlib.contextmanager"),
    ("py:exc", "TypeError"),
    ("py:exc", "ValueError"),
    ("py:exc", "Exception"),
    ("py:exc", "StopAsyncIteration"),
    ("py:exc", "asyncio.CancelledError"),
    ("py:obj", "collections.abc.MutableMapping"),
    # aiohttp
    ("py:class", "aiohttp.Fingerprint"),
    ("py:class", "aiohttp.ClientSession"),
    # redis-py (the ``redis`` extra)
    ("py:class", "redis.asyncio.Redis"),
    # written as ``ssl_module.SSLContext`` in aiosfstream/client.py and cometd/client.py,
    # where the stdlib module is imported under that name
    ("py:class", "ssl_module.SSLContext"),
]
nitpick_ignore_regex = [
    # builtins that autodoc writes in type fields
    ("py:class", r"(str|int|float|bool|bytes|dict|list|tuple|set|frozenset|object|type)"),
    ("py:exc", r"(Base)?Exception"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {
    "show-inheritance": True,
}

templates_path: list[str] = []
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
pygments_style = "sphinx"

# -- HTML output -----------------------------------------------------------------------

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"aiosfstream {release}"
html_theme_options = {
    "description": "asyncio client for the Salesforce Streaming API",
    "fixed_sidebar": True,
    # Wide enough for 80-column code blocks.
    "page_width": "1160px",
    "sidebar_width": "240px",
    "show_powered_by": False,
}
html_sidebars = {
    "**": ["about.html", "navigation.html", "relations.html", "searchbox.html"],
}


# -- Resolving references to re-exported names ---------------------------------------
#
# Every object is documented once, in the module that defines it (aiosfstream.client,
# aiosfstream.replay, ...).  Users and docstrings also name objects by the path they are
# imported from (``aiosfstream.Client``, ``aiosfstream.cometd.ServerError``) or by a bare
# name (``ServerError`` in a method of a client).  This handler imports the object a
# reference names, finds where it is really defined, and links there.

_EXCEPTION_MODULES = ("aiosfstream.exceptions", "aiosfstream.cometd.exceptions")
# Where a bare name (``Message``, ``ReplayMarker``...) is looked up last.
_FALLBACK_MODULES = ("aiosfstream", "aiosfstream.typing")


def _lookup(path: str) -> object | None:
    """Import the object at dotted *path*, or return ``None``."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        module_name = ".".join(parts[:cut])
        if not module_name.startswith("aiosfstream"):
            return None
        try:
            obj: object = importlib.import_module(module_name)
        except ImportError:
            continue
        owner: object = obj
        for position, name in enumerate(parts[cut:], start=cut + 1):
            try:
                owner, obj = obj, getattr(obj, name)
            except AttributeError:
                if position == len(parts) and isinstance(obj, type):
                    # An instance attribute, documented with a ``#:`` comment.
                    return _Member(f"{obj.__module__}.{obj.__qualname__}.{name}")
                return None
        if cut < len(parts) and isinstance(owner, type):
            # A member: name it after the class that defines it.
            member = parts[-1]
            for klass in owner.__mro__:
                if member in vars(klass):
                    return _Member(f"{klass.__module__}.{klass.__qualname__}.{member}")
            return None
        return obj
    return None


class _Member:
    def __init__(self, canonical: str) -> None:
        self.canonical = canonical


def _canonical_name(obj: object) -> str | None:
    if isinstance(obj, _Member):
        return obj.canonical
    if isinstance(obj, types.ModuleType):
        return obj.__name__
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if isinstance(module, str) and isinstance(qualname, str):
        return f"{module}.{qualname}"
    return None


def _resolve_reexport(app: Any, env: Any, node: Any, contnode: Any) -> Any:
    if node.get("refdomain") != "py":
        return None
    # A role split over two lines leaves whitespace in the target.
    target = re.sub(r"\s+", "", node["reftarget"]).lstrip("~.")
    module = node.get("py:module") or ""
    klass = node.get("py:class") or ""
    candidates = [target]
    if module:
        candidates.insert(0, f"{module}.{target}")
        if klass:
            candidates.insert(0, f"{module}.{klass}.{target}")
    if "." not in target:
        preferred = (
            _EXCEPTION_MODULES[::-1] if module.startswith("aiosfstream.cometd") else _EXCEPTION_MODULES
        )
        candidates += [f"{name}.{target}" for name in (*_FALLBACK_MODULES, *preferred)]
    domain = env.get_domain("py")
    for candidate in candidates:
        found = _lookup(candidate)
        if found is None:
            continue
        # The name itself may be documented (a type alias, say); else its definition.
        for name in (candidate, _canonical_name(found)):
            if name is None or name == node["reftarget"]:
                continue
            new_node = node.deepcopy()
            new_node["reftarget"] = name
            new_node["refspecific"] = False
            for key in ("py:module", "py:class"):
                new_node[key] = None
            # A type alias is documented as data, which the ``class`` role cannot find.
            for role in dict.fromkeys((node["reftype"], "obj")):
                resolved = domain.resolve_xref(
                    env, node["refdoc"], app.builder, role, name, new_node, contnode
                )
                if resolved is not None:
                    return resolved
    return None


# -- A table generated from the code ---------------------------------------------------


class BayeuxTransitions(Directive):
    """Render the state table of :class:`aiosfstream.cometd.protocol.BayeuxProtocol`.

    The table is read from the protocol module itself, so the documentation cannot
    drift from the code.
    """

    has_content = False

    def run(self) -> list[nodes.Node]:
        from aiosfstream.cometd.protocol import _TRANSITIONS

        rows = [
            (state.value, event.replace("_", " "), target.value)
            for (state, event), target in _TRANSITIONS.items()
        ]
        table = nodes.table(classes=["bayeux-transitions"])
        group = nodes.tgroup(cols=3)
        table += group
        for _ in range(3):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        head += self._row(("state", "event", "next state"))
        body = nodes.tbody()
        group += body
        for row in rows:
            body += self._row(row, literal=True)
        return [table]

    @staticmethod
    def _row(cells: tuple[str, ...], *, literal: bool = False) -> nodes.row:
        row = nodes.row()
        for text in cells:
            entry = nodes.entry()
            paragraph = nodes.paragraph()
            paragraph += nodes.literal(text=text) if literal else nodes.Text(text)
            entry += paragraph
            row += entry
        return row


class RecoveryTable(Directive):
    """Render a recovery decision table: one row per outcome, one column per step.

    The argument names the table (``salesforce`` or ``bayeux``) and the phase
    (``running`` or ``opening``); like the state table, it is read from the code.
    """

    required_arguments = 2
    has_content = False

    def run(self) -> list[nodes.Node]:
        from aiosfstream.cometd.recovery import BAYEUX_TABLE, Outcome, Phase, Step
        from aiosfstream.policy import SALESFORCE_TABLE

        tables = {"salesforce": SALESFORCE_TABLE, "bayeux": BAYEUX_TABLE}
        table_rules = tables[self.arguments[0]]
        phase = Phase(self.arguments[1])
        steps = list(Step)
        table = nodes.table(classes=["recovery-table"])
        group = nodes.tgroup(cols=len(steps) + 1)
        table += group
        for _ in range(len(steps) + 1):
            group += nodes.colspec(colwidth=1)
        head = nodes.thead()
        group += head
        head += BayeuxTransitions._row(("outcome", *(step.value for step in steps)))
        body = nodes.tbody()
        group += body
        for outcome in Outcome:
            cells = [str(table_rules[phase, step, outcome]) for step in steps]
            body += BayeuxTransitions._row((outcome.value, *cells), literal=True)
        return [table]


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("bayeux-transitions", BayeuxTransitions)
    app.add_directive("recovery-table", RecoveryTable)
    app.connect("missing-reference", _resolve_reexport)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
