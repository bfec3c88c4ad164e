"""The option lists the stubs spell out are the tables', not copies that drift:
Engine.__init__'s keywords are the engine's table of options
(karma_engine::ENGINE_OPTIONS) and Client.__init__'s the client's
(karma_client::CLIENT_OPTIONS), in the tables' order, as the extension
reports them (Engine._OPTIONS, Client._OPTIONS: (name, default) rows).
An option added to a table without its keyword in __init__.pyi fails here."""

from __future__ import annotations

import ast
import pathlib

import pytest

import karma

STUB = pathlib.Path(karma.__file__).with_name("__init__.pyi")


def stub_keywords(class_name):
    tree = ast.parse(STUB.read_text())
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name)
    init = next(f for f in cls.body if isinstance(f, ast.FunctionDef) and f.name == "__init__")
    return [a.arg for a in init.args.kwonlyargs]


def test_engine_keywords_are_the_engine_options_table():
    table = [name for name, _default in karma.Engine._OPTIONS]
    assert "wal_fsync" in table and "recovery_max_sources" in table
    assert stub_keywords("Engine") == table


def test_client_keywords_are_the_client_options_table():
    table = [name for name, _default in karma.Client._OPTIONS]
    assert table[:2] == ["token", "pool_size"]
    assert stub_keywords("Client") == table
    assert dict(karma.Client._OPTIONS)["pool_size"] == "5"


def test_a_keyword_outside_the_client_table_is_refused():
    with pytest.raises(TypeError, match="unexpected keyword argument 'pool_sise'"):
        karma.Client("karma://127.0.0.1:1", pool_sise=2)
