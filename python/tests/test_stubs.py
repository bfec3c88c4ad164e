"""The .pyi stubs describe exactly what the extension exports."""

from __future__ import annotations

import ast
import inspect
import pathlib

import karma

STUB = pathlib.Path(karma.__file__).with_name("__init__.pyi")


def stub_classes():
    tree = ast.parse(STUB.read_text())
    return {
        node.name: {n.name for n in node.body if isinstance(n, ast.FunctionDef)}
        | {n.target.id for n in node.body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
        for node in tree.body
        if isinstance(node, ast.ClassDef)
    }


def public(cls):
    return {n for n in vars(cls) if not n.startswith("_") or n in ("__enter__", "__exit__", "__init__")}


def test_stub_methods_match_the_runtime():
    stubs = stub_classes()
    api = stubs["_Api"]
    dunder = ("__enter__", "__exit__")
    assert public(karma._karma._Api) - {"__init__"} == {n for n in api if not n.startswith("_") or n in dunder}
    for cls in (karma.Engine, karma.Client):
        for name in api:
            assert hasattr(cls, name), (cls, name)
    ingest = {n for n in stubs["Ingest"] if not n.startswith("_")}
    assert ingest == {n for n in public(karma.Ingest) if not n.startswith("_")}


def test_stub_exports_match_the_runtime():
    tree = ast.parse(STUB.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.ClassDef) and not n.name.startswith("_")}
    assert names <= set(karma.__all__)
    assert set(karma.__all__) - {"ERROR_CLASSES"} <= names
    assert (pathlib.Path(karma.__file__).with_name("py.typed")).exists()


def test_stubs_declare_every_method_of_the_surface_table():
    """karma._karma._SURFACE is the engine's method table (karma_engine::for_each_method!):
    each row must be an _Api method in the stubs, taking at least the row's arguments."""
    tree = ast.parse(STUB.read_text())
    api = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Api")
    params = {
        f.name: {a.arg for a in f.args.args + f.args.kwonlyargs}
        for f in api.body
        if isinstance(f, ast.FunctionDef)
    }
    assert len(karma._karma._SURFACE) >= 27
    for name, args in karma._karma._SURFACE:
        assert name in params, name
        assert set(args) <= params[name], (name, set(args) - params[name])
        assert hasattr(karma.Engine, name) and hasattr(karma.Client, name), name


def test_stub_signatures_of_the_surface_match_the_runtime():
    """Most surface methods are generated from the table (python/src/api/table.rs):
    their runtime parameters (names, order, which have defaults) must be the stubs'."""
    tree = ast.parse(STUB.read_text())
    api = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "_Api")
    stubs = {f.name: f.args for f in api.body if isinstance(f, ast.FunctionDef)}
    for name, _ in karma._karma._SURFACE:
        a = stubs[name]
        positional = a.posonlyargs + a.args
        first_default = len(positional) - len(a.defaults)
        declared = [(p.arg, i >= first_default) for i, p in enumerate(positional)][1:]
        declared += [(p.arg, d is not None) for p, d in zip(a.kwonlyargs, a.kw_defaults)]
        params = inspect.signature(getattr(karma._karma._Api, name)).parameters.values()
        runtime = [(p.name, p.default is not inspect.Parameter.empty) for p in params][1:]
        assert runtime == declared, name
