"""The DFA pattern kernel: compiled vs pure-Python twin, argument checks, and the regex compiler."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import _core, _reference
from engine.contracts.patterns import compile_dfa


@st.composite
def automata(draw):
    n_states = draw(st.integers(1, 5))
    table = draw(st.lists(st.integers(0, n_states - 1), min_size=256 * n_states, max_size=256 * n_states))
    accepting = draw(st.lists(st.booleans(), min_size=n_states, max_size=n_states))
    start = draw(st.integers(0, n_states - 1))
    return np.asarray(table, dtype=np.int64), np.asarray(accepting, dtype=bool), start


@settings(max_examples=150, deadline=None)
@given(automata(), st.binary(max_size=64))
def test_compiled_kernel_matches_the_twin(automaton, buf):
    table, accepting, start = automaton
    got = _core.dfa_reject_lines(buf, table, accepting, start)
    want = _reference.dfa_reject_lines(buf, table, accepting, start)
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    assert all(0 <= i <= buf.count(b"\n") for i in got.tolist())


@pytest.mark.parametrize("impl", [_core, _reference], ids=["compiled", "twin"])
def test_kernel_refuses_bad_arguments(impl):
    table = np.zeros(256, dtype=np.int64)
    ok = np.array([True])
    with pytest.raises(ValueError, match="256 entries per state"):
        impl.dfa_reject_lines(b"a", np.zeros(10, dtype=np.int64), ok, 0)
    with pytest.raises(ValueError, match="state ids"):
        impl.dfa_reject_lines(b"a", table + 1, ok, 0)
    with pytest.raises(ValueError, match="one flag per state"):
        impl.dfa_reject_lines(b"a", table, np.array([True, False]), 0)
    with pytest.raises(ValueError, match="start=1"):
        impl.dfa_reject_lines(b"a", table, ok, 1)
    with pytest.raises(TypeError, match="uint8"):
        impl.dfa_reject_lines(np.zeros(3, dtype=np.int32), table, ok, 0)


@pytest.mark.parametrize("pattern", [
    "^o-[0-9]+$", "b", r"^\d{2,4}-\w+$", "x*y?z", "^(ab|cd)+$", "^$", "", r"[^a-c]", r"^\s*$",
    r"^[a-z0-9._%+-]+@[a-z0-9.-]+\.[a-z]{2,}$", "a.c", "a{3}", "(a|b)*abb$", r"\Aab\Z", "a*?b",
])
def test_dfa_agrees_with_re_on_many_strings(pattern):
    import random

    rnd = random.Random(6)
    print("seed 6")
    values = ["".join(rnd.choice("abcdxyz019-_.@ o\t") for _ in range(rnd.randrange(0, 12))) for _ in range(2000)]
    values += ["o-123", "a@b.co", "abb", "cdab", "", "12-x", "ab"]
    dfa = compile_dfa(pattern)
    assert dfa is not None
    expected = [i for i, v in enumerate(values) if re.search(pattern, v) is None]
    assert dfa.failures(values).tolist() == expected
    assert [i for i, v in enumerate(values[:200]) if not dfa.matches(v)] == [i for i in expected if i < 200]


@pytest.mark.parametrize("pattern", ["^a|b$", "(?i)a", r"\bx", r"(a)\1", "(?=a)a", "a{100}", "(?>a)", "a++"])
def test_unsupported_patterns_are_left_to_re(pattern):
    assert compile_dfa(pattern) is None
