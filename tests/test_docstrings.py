r"""The API reference is complete and of one style (docstrings, readable with help()).

Every public function and class of the package (the names in a module's
``__all__``; without ``__all__``, the functions and classes the module defines
whose names do not start with ``_``) and every public method or property
defined on those classes must have its own docstring, and no docstring may use
the NumPy section underline (``Parameters`` / ``----------``): the package
writes Google style (``Args:``, ``Returns:``, ``Raises:``). Every source file
compiles without warnings (no invalid escape sequence such as ``\m`` in a
non-raw string) and no docstring holds a control character (``\theta`` in a
non-raw string is a tab followed by ``heta``): LaTeX goes in raw strings.
"""
import ast
import importlib
import inspect
import pkgutil
import re
import warnings
from pathlib import Path

import pytest

import ecnn_pyg

#: modules not imported: ``python -m ecnn_pyg.cli`` runs the CLI on import
SKIP_MODULES = {"ecnn_pyg.cli.__main__"}

#: qualified names allowed to lack a docstring for now
ALLOW_MISSING = set()


def _modules():
    mods = [ecnn_pyg]
    for info in pkgutil.walk_packages(ecnn_pyg.__path__, prefix="ecnn_pyg."):
        if info.name not in SKIP_MODULES:
            mods.append(importlib.import_module(info.name))
    return mods


def _public_objects(mod):
    """Public functions and classes of ``mod``, defined in the package."""
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n, v in vars(mod).items() if not n.startswith("_")
                 and getattr(v, "__module__", None) == mod.__name__]
    for name in names:
        obj = getattr(mod, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) \
                and getattr(obj, "__module__", "").startswith("ecnn_pyg"):
            yield obj


def _own_members(cls):
    """``(name, function)`` of the public methods and properties defined on ``cls`` itself."""
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (staticmethod, classmethod)):
            attr = attr.__func__
        elif isinstance(attr, property):
            attr = attr.fget
        if inspect.isfunction(attr):
            yield name, attr


def _api():
    """``{qualified name: object}`` of every documented-API function, class and method."""
    out = {}
    for mod in _modules():
        for obj in _public_objects(mod):
            out[f"{obj.__module__}.{obj.__qualname__}"] = obj
            if inspect.isclass(obj):
                for name, fn in _own_members(obj):
                    out[f"{obj.__module__}.{obj.__qualname__}.{name}"] = fn
    return out


API = _api()


def test_api_found():
    # a sanity check that the walk sees the package (and the excluded names exist)
    assert "ecnn_pyg.lattice.Lattice" in API
    assert "ecnn_pyg.nn._model.ECNN.forward" in API
    assert "ecnn_pyg.cli.main" in API
    assert ALLOW_MISSING <= set(API), sorted(ALLOW_MISSING - set(API))


def test_every_public_name_has_a_docstring():
    missing = sorted(name for name, obj in API.items()
                     if not (obj.__doc__ or "").strip() and name not in ALLOW_MISSING)
    assert not missing, "public names without a docstring: " + ", ".join(missing)


def test_allow_list_is_current():
    # once a name gets its docstring, drop it from ALLOW_MISSING
    stale = sorted(name for name in ALLOW_MISSING if (API[name].__doc__ or "").strip())
    assert not stale, "documented now, remove from ALLOW_MISSING: " + ", ".join(stale)


def _all_docstrings():
    """Module docstrings plus those of every class, function and method defined in the package."""
    for mod in _modules():
        yield mod.__name__, mod.__doc__
        for name, obj in vars(mod).items():
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) \
                    or getattr(obj, "__module__", None) != mod.__name__:
                continue
            yield f"{mod.__name__}.{name}", obj.__doc__
            if inspect.isclass(obj):
                for attr, value in vars(obj).items():
                    if isinstance(value, (staticmethod, classmethod)):
                        value = value.__func__
                    elif isinstance(value, property):
                        value = value.fget
                    if inspect.isfunction(value):
                        yield f"{mod.__name__}.{name}.{attr}", value.__doc__


#: a NumPy-style section: a heading underlined with dashes
NUMPY_SECTION = re.compile(r"^[ \t]*[A-Z][A-Za-z ]*\n[ \t]*-{3,}[ \t]*$", re.MULTILINE)


def test_google_style_only():
    docs = list(_all_docstrings())
    underline = sorted(name for name, doc in docs if doc and "----------" in doc)
    assert not underline, "NumPy '----------' underline in the docstrings of: " \
        + ", ".join(underline)
    numpy = sorted(name for name, doc in docs if doc and NUMPY_SECTION.search(doc))
    assert not numpy, "NumPy-style sections (use Args:/Returns:/Raises:) in: " + ", ".join(numpy)


def test_readable_with_help():
    # help() renders through pydoc; it must not fail on any public object
    import pydoc
    for name, obj in API.items():
        assert pydoc.render_doc(obj, renderer=pydoc.plaintext), name


PACKAGE_DIR = Path(ecnn_pyg.__file__).resolve().parent
SOURCES = sorted(PACKAGE_DIR.rglob("*.py"))


def test_sources_found():
    names = {p.relative_to(PACKAGE_DIR).as_posix() for p in SOURCES}
    assert {"__init__.py", "lattice.py", "ed.py", "nn/__init__.py"} <= names


def test_every_source_compiles_without_warnings():
    # invalid escape sequences warn at compile time (DeprecationWarning up to
    # Python 3.11, SyntaxWarning from 3.12); a cached .pyc hides them on import
    bad = []
    for path in SOURCES:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                compile(path.read_text(encoding="utf-8"), str(path), "exec", dont_inherit=True)
            except (SyntaxError, SyntaxWarning, DeprecationWarning) as err:
                bad.append(f"{path.relative_to(PACKAGE_DIR)}:{getattr(err, 'lineno', '?')}: {err}")
    assert not bad, "use raw strings (r\"\"\"...\"\"\") for backslashes:\n" + "\n".join(bad)


#: characters that a LaTeX command becomes in a non-raw string: \a \b \f \r \t \v
CONTROL = re.compile("[\x07\x08\x0b\x0c\r\t]")


def test_no_control_characters_in_docstrings():
    bad = []
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef,
                                 ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node, clean=False)
                if doc and CONTROL.search(doc):
                    line = getattr(node, "lineno", 1)
                    bad.append(f"{path.relative_to(PACKAGE_DIR)}:{line} "
                               f"({getattr(node, 'name', 'module')}): {CONTROL.search(doc)!r}")
    assert not bad, ("docstrings with control characters (a LaTeX \\theta, \\tau, \\frac ... "
                     "in a non-raw string):\n" + "\n".join(bad))


def test_own_deprecations_are_errors_in_the_test_run():
    # setup.cfg's filterwarnings: a DeprecationWarning raised from package code
    # fails the test run, a third-party one does not
    with pytest.raises(DeprecationWarning):
        warnings.warn_explicit("old name", DeprecationWarning, "x.py", 1, module="ecnn_pyg.simulate")
    with pytest.raises(SyntaxWarning):
        warnings.warn_explicit("bad escape", SyntaxWarning, "x.py", 1, module="ecnn_pyg.ed")
    warnings.warn_explicit("old torch API", DeprecationWarning, "x.py", 1, module="torch.jit")
