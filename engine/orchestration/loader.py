"""Load DAG definitions from a Python file or a folder of them (``engine dags ... PATH``).

Every module-level `DAG` object of each file is collected (a ``@dag`` function must be called at module
level, e.g. ``etl_dag = etl()``). Files whose name starts with ``_`` or ``.`` are ignored. A file that
fails to import raises `DagLoadError` naming the file; an invalid DAG raises `DagDefinitionError`
naming the file, the DAG and the task.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path

from engine.orchestration.dag import DAG
from engine.orchestration.exceptions import DagDefinitionError, DagLoadError


def dag_files(path: str | Path) -> list[Path]:
    p = Path(path)
    if p.is_file():
        return [p]
    if p.is_dir():
        return sorted(f for f in p.rglob("*.py") if not f.name.startswith(("_", ".")))
    raise DagLoadError(f"no such DAG file or folder: {p}")


def load_file(path: Path) -> list[DAG]:
    digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:10]
    name = f"engine_dags_{path.stem}_{digest}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise DagLoadError(f"cannot import DAG file {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered so that pickling (process executor) and dataclasses can find the module by name.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except DagDefinitionError as exc:
        del sys.modules[name]
        raise DagDefinitionError(f"{path}: {exc}") from exc
    except Exception as exc:
        del sys.modules[name]
        raise DagLoadError(f"DAG file {path} raised {type(exc).__name__}: {exc}") from exc
    dags = []
    for value in vars(module).values():
        if isinstance(value, DAG) and value not in dags:
            try:
                value.validate()
            except DagDefinitionError as exc:
                raise DagDefinitionError(f"{path}: {exc}") from exc
            dags.append(value)
    return dags


def load_dags(path: str | Path) -> dict[str, DAG]:
    """DAG id -> DAG for every DAG defined in ``path`` (a file or a folder); duplicate ids are refused."""
    found: dict[str, DAG] = {}
    where: dict[str, Path] = {}
    for file in dag_files(path):
        for d in load_file(file):
            if d.dag_id in found:
                raise DagDefinitionError(f"DAG id {d.dag_id!r} is defined in both {where[d.dag_id]} and {file}")
            found[d.dag_id] = d
            where[d.dag_id] = file
    return found
