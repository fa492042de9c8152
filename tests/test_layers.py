"""The house's layout, checked: arrows point down, the daemon never loads the sandbox, and the
engine's vocabulary is spelt in one module (engine/model.py).

These are about the code a maintainer will extend, so they read the source (AST) as well as
import it in a fresh interpreter: an import hidden inside a function counts too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from bookings_sync.engine import model

PACKAGE = Path(__file__).resolve().parents[1] / "daemon" / "bookings_sync"


def imported_modules(path: Path) -> set[str]:
    """Every bookings_sync module ``path`` imports, at any depth of the file."""
    names = set()
    package = "bookings_sync." + ".".join(path.relative_to(PACKAGE).parent.parts)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against the file's package
                base = package.rstrip(".").split(".")
                base = base[:len(base) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return {n for n in names if n.startswith("bookings_sync")}


def fresh_import(*modules: str) -> set[str]:
    """The bookings_sync modules loaded by importing ``modules`` in a new interpreter."""
    code = ("import sys\n" + "".join(f"import {m}\n" for m in modules)
            + "print('\\n'.join(m for m in sys.modules if m.startswith('bookings_sync')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    return set(out.split())


@pytest.mark.parametrize("upper", ["cli", "ops", "config", "checks", "onboard", "scopes",
                                   "service", "runtime",
                                   "demo", "sandbox"])
def test_the_engine_imports_nothing_from_the_layers_above_it(upper):
    for path in (PACKAGE / "engine").glob("*.py"):
        bad = {m for m in imported_modules(path)
               if m == f"bookings_sync.{upper}" or m.startswith(f"bookings_sync.{upper}.")}
        assert not bad, f"{path.name} imports {bad}"


def test_the_zoho_clients_and_the_store_import_no_engine():
    for path in [*(PACKAGE / "zoho").glob("*.py"), PACKAGE / "store.py", PACKAGE / "mailbox.py"]:
        bad = {m for m in imported_modules(path)
               if m.split(".")[1] in ("engine", "cli", "ops", "config", "runtime", "sandbox")}
        assert not bad, f"{path.name} imports {bad}"


def test_importing_the_daemon_path_never_loads_the_sandbox():
    loaded = fresh_import("bookings_sync.cli", "bookings_sync.service", "bookings_sync.runtime",
                          "bookings_sync.checks", "bookings_sync.ops", "bookings_sync.onboard")
    assert "bookings_sync.runtime" in loaded          # the probe itself works
    assert not {m for m in loaded if m.startswith("bookings_sync.sandbox")}


def test_the_sandbox_never_imports_the_daemons_zoho_clients_or_engine():
    for path in (PACKAGE / "sandbox").glob("*.py"):
        bad = {m for m in imported_modules(path)
               if m.split(".")[1] in ("zoho", "engine", "store", "runtime", "config")}
        assert not bad, f"sandbox/{path.name} imports {bad}"


def command_names() -> set[str]:
    """The CLI's subcommands: ``retry`` is a command there and a result here, on purpose."""
    from bookings_sync.cli import build_parser
    actions = build_parser()._subparsers._group_actions
    return {name for action in actions for name in action.choices}


def config_tables() -> set[str]:
    """The configuration's table names: ``[book]`` is a table there and an action here."""
    from bookings_sync.config import _KNOWN_KEYS
    return set(_KNOWN_KEYS)


# The action vocabulary: kinds, results, holds, request states. (The policy choices of the
# configuration — on_delete, on_refused, on_booked — are words like "delete" and "keep" that
# Zoho's scope names and HTTP use too; their enums are in the model, but a test cannot tell
# their every use apart.)
VOCABULARY = {member.value for enum in (model.Kind, model.Result, model.Hold, model.RequestState)
              for member in enum} - command_names() - config_tables()


def string_constants(path: Path) -> list[tuple[int, str]]:
    """Non-docstring string literals of ``path`` (f-string pieces included)."""
    tree = ast.parse(path.read_text())
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef,
                                       ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr)
                  and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str)
            and id(node) not in docstrings]


def test_the_action_vocabulary_is_spelt_only_in_the_model():
    spelt = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "model.py" or "sandbox" in path.parts:
            continue   # the sandbox is an independent implementation of Zoho, by design
        spelt += [f"{path.relative_to(PACKAGE)}:{line} {text!r}"
                  for line, text in string_constants(path) if text in VOCABULARY]
    assert not spelt, "spell these through engine.model instead:\n" + "\n".join(spelt)


def test_the_vocabulary_test_can_fail(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text('"""docstring: cancel"""\nkind = "cancel"\n')
    assert [text for _, text in string_constants(sample) if text in VOCABULARY] == ["cancel"]
