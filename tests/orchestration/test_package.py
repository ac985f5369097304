"""The orchestration package's public surface and exception tree."""

import engine.orchestration as orchestration
from engine.errors import OrchestrationError
from engine.orchestration import exceptions


def test_all_is_sorted_and_complete():
    assert orchestration.__all__ == sorted(orchestration.__all__)
    public = {n for n in vars(orchestration) if not n.startswith("_") and type(getattr(orchestration, n)).__name__ != "module"}
    assert public == set(orchestration.__all__)


def test_every_exception_derives_from_orchestration_error_and_is_documented():
    classes = [v for v in vars(exceptions).values() if isinstance(v, type) and issubclass(v, Exception)]
    own = [c for c in classes if c.__module__ == exceptions.__name__]
    assert own
    for cls in own:
        assert issubclass(cls, OrchestrationError), cls
        assert cls.__name__.endswith("Error"), cls
        assert cls.__name__ in exceptions.__doc__, cls


def test_engine_cli_picks_up_the_dags_command():
    from engine.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["dags", "list", "somewhere"])
    assert args.dags_command == "list" and callable(args.handler)
