"""``engine dags list|tasks|run|trigger|status|backfill|scheduler PATH ...``.

PATH is a DAG file or a folder of them. Run metadata lives in the SQLite file given by ``--db``
(default: ``$ENGINE_ORCHESTRATION_DB`` or ``engine-orchestration.db`` in the current directory), so
``trigger`` then ``scheduler --until-idle``, or ``status`` after ``run``, see the same runs.
Exit status: 0 on success, 1 when a run failed, 2 for bad input (unknown DAG, invalid definition).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import datetime
from typing import Any

from engine.orchestration.exceptions import OrchestrationError


def _default_db() -> str:
    return os.environ.get("ENGINE_ORCHESTRATION_DB", "engine-orchestration.db")


def register(subparsers: argparse._SubParsersAction) -> None:
    dags = subparsers.add_parser("dags", help="DAGs: list, inspect, run, trigger, backfill, status")
    sub = dags.add_subparsers(dest="dags_command", metavar="ACTION")
    sub.required = True

    def add(name: str, help_text: str, needs_dag: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text)
        p.add_argument("path", help="a DAG file or a folder of DAG files")
        if needs_dag:
            p.add_argument("dag_id")
        p.add_argument("--db", default=None, help="metadata database (default: engine-orchestration.db)")
        return p

    add("list", "list the DAGs defined in PATH", needs_dag=False).set_defaults(handler=_list)
    add("tasks", "list a DAG's tasks in dependency order").set_defaults(handler=_tasks)
    for name, help_text, handler in (("run", "run a DAG now and wait for the result", _run),
                                     ("trigger", "queue a run (executed by `engine dags scheduler`)", _trigger)):
        p = add(name, help_text)
        p.add_argument("--logical-date", default=None, help="ISO date/time (default: now)")
        p.add_argument("--conf", default=None, help="JSON object passed to the run")
        p.add_argument("--run-id", default=None)
        p.set_defaults(handler=handler)
    p = add("status", "show a DAG's runs and the task states of one run")
    p.add_argument("--run-id", default=None, help="the run to detail (default: the latest)")
    p.set_defaults(handler=_status)
    p = add("backfill", "run a DAG for every interval of a date range")
    p.add_argument("--start", required=True, help="ISO date/time (DAG timezone if naive)")
    p.add_argument("--end", required=True, help="ISO date/time, inclusive")
    p.add_argument("--reprocess", choices=("none", "failed", "all"), default="none")
    p.add_argument("--max-active-runs", type=int, default=None)
    p.add_argument("--backwards", action="store_true")
    p.set_defaults(handler=_backfill)
    p = add("scheduler", "run the scheduler (resumes interrupted runs, runs schedules)", needs_dag=False)
    p.add_argument("--until-idle", action="store_true", help="exit once no run is queued or running")
    p.set_defaults(handler=_scheduler)


def _load(args: argparse.Namespace) -> dict[str, Any]:
    from engine.orchestration.loader import load_dags

    return load_dags(args.path)


def _scheduler_for(args: argparse.Namespace, dags: dict[str, Any]) -> Any:
    from engine.orchestration.scheduler import Scheduler

    return Scheduler(dags.values(), store=args.db or _default_db())


def _guard(fn: Any) -> Any:
    def wrapped(args: argparse.Namespace) -> int:
        try:
            return int(fn(args) or 0)
        except OrchestrationError as exc:
            print(f"engine dags {args.dags_command}: {exc}", file=sys.stderr)
            return 2

    return wrapped


def _pick(dags: dict[str, Any], dag_id: str) -> Any:
    from engine.orchestration.exceptions import UnknownDagError

    if dag_id not in dags:
        raise UnknownDagError(f"no DAG {dag_id!r} in the given path; found: {', '.join(sorted(dags)) or 'none'}")
    return dags[dag_id]


@_guard
def _list(args: argparse.Namespace) -> int:
    dags = _load(args)
    for dag_id, d in sorted(dags.items()):
        print(f"{dag_id}\t{len(d.task_dict)} tasks\tschedule: {d.timetable.description}\t{d.description or ''}".rstrip())
    return 0


@_guard
def _tasks(args: argparse.Namespace) -> int:
    d = _pick(_load(args), args.dag_id)
    for tid in d.topological_order():
        t = d.task_dict[tid]
        ups = ", ".join(sorted(t.upstream_task_ids)) or "-"
        extra = " mapped" if t.is_mapped else ""
        extra += " branch" if t.is_branch else ""
        extra += " sensor" if t.is_sensor else ""
        print(f"{tid}\tupstream: {ups}\trule: {t.trigger_rule}\tpool: {t.pool}{extra}")
    return 0


def _parse_date(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise OrchestrationError(f"invalid date {text!r}: use ISO format, e.g. 2024-01-31 or 2024-01-31T02:30") from None


def _parse_conf(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        conf = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrchestrationError(f"--conf is not valid JSON: {exc}") from None
    if not isinstance(conf, dict):
        raise OrchestrationError("--conf must be a JSON object")
    return conf


def _print_result(result: Any) -> None:
    print(f"run {result.run_id}: {result.state}")
    for key, state in result.states.items():
        line = f"  {key}: {state}"
        if key in result.errors:
            line += f"  ({result.errors[key].splitlines()[0]})"
        print(line)


@_guard
def _run(args: argparse.Namespace) -> int:
    dags = _load(args)
    _pick(dags, args.dag_id)

    async def go() -> Any:
        s = _scheduler_for(args, dags)
        try:
            return await s.run_dag(args.dag_id, logical_date=_parse_date(args.logical_date),
                                   conf=_parse_conf(args.conf), run_id=args.run_id)
        finally:
            await s.close()

    result = asyncio.run(go())
    _print_result(result)
    return 0 if result.state.value == "success" else 1


@_guard
def _trigger(args: argparse.Namespace) -> int:
    dags = _load(args)
    _pick(dags, args.dag_id)

    async def go() -> str:
        s = _scheduler_for(args, dags)
        try:
            return await s.trigger(args.dag_id, logical_date=_parse_date(args.logical_date),
                                   conf=_parse_conf(args.conf), run_id=args.run_id)
        finally:
            await s.close()

    print(asyncio.run(go()))
    return 0


@_guard
def _status(args: argparse.Namespace) -> int:
    from engine.orchestration.store import MetadataStore

    _pick(_load(args), args.dag_id)
    store = MetadataStore(args.db or _default_db())
    try:
        runs = store.list_runs(args.dag_id)
        if not runs:
            print(f"DAG {args.dag_id} has no runs")
            return 0
        for r in runs:
            print(f"{r.run_id}\t{r.run_type}\t{r.state}\tlogical date {r.logical_date.isoformat()}")
        chosen = next((r for r in runs if r.run_id == args.run_id), None) if args.run_id else max(
            runs, key=lambda r: r.created_at or r.logical_date)
        if chosen is None:
            raise OrchestrationError(f"DAG {args.dag_id!r} has no run {args.run_id!r}")
        print(f"\ntasks of {chosen.run_id} ({chosen.state}):")
        for ti in store.task_instances(args.dag_id, chosen.run_id):
            key = ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]"
            line = f"  {key}: {ti.state} (tries: {ti.try_number})"
            if ti.error and ti.state in ("failed", "up_for_retry"):
                line += f"  {ti.error.splitlines()[0]}"
            print(line)
    finally:
        store.close()
    return 0


@_guard
def _backfill(args: argparse.Namespace) -> int:
    from engine.orchestration.backfill import backfill

    dags = _load(args)
    _pick(dags, args.dag_id)
    start, end = _parse_date(args.start), _parse_date(args.end)

    async def go() -> Any:
        s = _scheduler_for(args, dags)
        try:
            return await backfill(s, args.dag_id, start, end, reprocess=args.reprocess,  # type: ignore[arg-type]
                                  max_active_runs=args.max_active_runs, backwards=args.backwards,
                                  on_progress=lambda p: print(p, flush=True))
        finally:
            await s.close()

    progress = asyncio.run(go())
    return 0 if progress.failed == 0 else 1


@_guard
def _scheduler(args: argparse.Namespace) -> int:
    dags = _load(args)

    async def go() -> None:
        s = _scheduler_for(args, dags)
        try:
            if args.until_idle:
                await s.run_until_idle()
            else:
                await s.serve()
        finally:
            await s.close()

    try:
        asyncio.run(go())
    except KeyboardInterrupt:
        return 0
    return 0
