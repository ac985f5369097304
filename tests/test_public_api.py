import importlib
import subprocess
import sys

import pytest

import engine


def test_all_is_sorted_and_complete():
    assert engine.__all__ == sorted(engine.__all__)
    public = {name for name in vars(engine) if not name.startswith("_") and name not in {"annotations"}}
    modules = {name for name in public if type(getattr(engine, name)).__name__ == "module"}
    assert public - modules - set(engine.__all__) == set(), "public names missing from __all__"
    for name in engine.__all__:
        assert hasattr(engine, name), name


def test_error_tree_has_one_root_and_error_suffixes():
    from engine import errors

    classes = [v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    for cls in classes:
        if cls.__module__ != "engine.errors":
            continue
        assert cls.__name__.endswith("Error"), cls
        assert issubclass(cls, errors.EngineError), cls
        assert cls.__name__ in errors.__doc__, f"{cls.__name__} missing from the tree in the docstring"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("0", "engine._core"), ("false", "engine._core"), ("", "engine._core"), ("1", "engine._reference"), ("yes", "engine._reference")],
)
def test_engine_no_extensions_is_parsed_as_a_boolean(value, expected):
    code = "from engine import kernels; print(kernels.IMPLEMENTATION)"
    out = subprocess.run(
        [sys.executable, "-c", code], env={"ENGINE_NO_EXTENSIONS": value, "PATH": ""}, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == expected


def test_engine_no_extensions_rejects_garbage():
    code = "import engine.kernels"
    out = subprocess.run([sys.executable, "-c", code], env={"ENGINE_NO_EXTENSIONS": "maybe"}, capture_output=True, text=True)
    assert out.returncode != 0
    assert "ENGINE_NO_EXTENSIONS" in out.stderr


def test_reference_twin_exports_the_same_names_as_the_compiled_module():
    core = importlib.import_module("engine._core")
    ref = importlib.import_module("engine._reference")
    from engine import kernels

    for name in kernels.__all__:
        if name in {"IMPLEMENTATION", "USING_EXTENSIONS"}:
            continue
        assert hasattr(core, name), f"engine._core lacks {name}"
        assert hasattr(ref, name), f"engine._reference lacks {name}"
