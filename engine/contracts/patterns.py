"""Column-wise regular-expression checks: a pattern compiled to a DFA, run over a whole column with numpy.

Python's ``re`` engine spends a few hundred nanoseconds per value even on a short identifier, which made a
single ``pattern`` constraint cost as much as decoding the rest of a record. For a batch, the values of a
string column are checked together instead: the pattern is compiled once into a deterministic automaton
over ASCII (`compile_dfa`), and `Dfa.failures` runs it over the newline-joined column in one pass of the
compiled kernel `engine.kernels.dfa_reject_lines` (a table lookup per character).

Semantics are exactly ``re.search(pattern, value) is not None``: an unanchored side gets an implicit
``.*``; ``^``/``\\A`` and ``$``/``\\Z`` are accepted only at the very start/end of the pattern. Values that
are not ASCII or contain a newline (where ``$`` and ``.`` need care) are checked with ``re`` itself. A
pattern using anything beyond literals, classes, ``.``, groups, alternation and greedy/lazy repetition
(flags, lookaround, backreferences, possessive or atomic groups, inner anchors, word boundaries) is not
compiled (`compile_dfa` returns ``None``) and callers keep using ``re`` for it.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

try:  # Python 3.11+
    from re import _constants as _c
    from re import _parser as _p
except ImportError:  # pragma: no cover - Python 3.10
    import sre_constants as _c  # type: ignore[no-redef]
    import sre_parse as _p  # type: ignore[no-redef]

ALPHABET = 128  # ASCII; the kernel's table has 256 columns, bytes >= 128 lead to the dead state
WIDTH = 256
MAX_STATES = 2048
_ALL = (1 << ALPHABET) - 1
_ANY = _ALL & ~(1 << 10)  # `.` matches everything but a newline


class _Unsupported(Exception):
    pass


def _category_mask(code: Any) -> int:
    """The ASCII members of a ``\\d``/``\\w``/``\\s`` style category, as ``re`` itself decides them."""
    names = {"DIGIT": r"\d", "NOT_DIGIT": r"\D", "WORD": r"\w", "NOT_WORD": r"\W", "SPACE": r"\s",
             "NOT_SPACE": r"\S"}
    name = str(code).removeprefix("CATEGORY_").removeprefix("UNI_")
    if name not in names:
        raise _Unsupported(str(code))
    rx = re.compile(names[name])
    return sum(1 << c for c in range(ALPHABET) if rx.fullmatch(chr(c)))


def _set_mask(items: list) -> int:
    mask = 0
    negate = False
    for op, arg in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            if arg < ALPHABET:
                mask |= 1 << arg
        elif op is _c.RANGE:
            lo, hi = arg
            for c in range(lo, min(hi, ALPHABET - 1) + 1):
                mask |= 1 << c
        elif op is _c.CATEGORY:
            mask |= _category_mask(arg)
        else:
            raise _Unsupported(str(op))
    return (_ALL & ~mask) if negate else mask


class _Nfa:
    """Thompson NFA: ``edges[s]`` holds (mask, target) pairs; ``eps[s]`` the epsilon targets."""

    def __init__(self):
        self.edges: list[list[tuple[int, int]]] = []
        self.eps: list[list[int]] = []

    def state(self) -> int:
        self.edges.append([])
        self.eps.append([])
        if len(self.edges) > 20 * MAX_STATES:
            raise _Unsupported("pattern too large")
        return len(self.edges) - 1

    def seq(self, items: list, start: int) -> int:
        """Add ``items`` after ``start``; return the end state."""
        cur = start
        for op, arg in items:
            cur = self.item(op, arg, cur)
        return cur

    def item(self, op: Any, arg: Any, start: int) -> int:
        if op is _c.LITERAL or op is _c.NOT_LITERAL or op is _c.ANY or op is _c.IN:
            if op is _c.LITERAL:
                mask = (1 << arg) if arg < ALPHABET else 0
            elif op is _c.NOT_LITERAL:
                mask = _ALL & ~((1 << arg) if arg < ALPHABET else 0)
            elif op is _c.ANY:
                mask = _ANY
            else:
                mask = _set_mask(arg)
            end = self.state()
            self.edges[start].append((mask, end))
            return end
        if op is _c.SUBPATTERN:
            _group, add_flags, del_flags, sub = arg
            if add_flags or del_flags:
                raise _Unsupported("inline flags")
            return self.seq(list(sub), start)
        if op is _c.BRANCH:
            _, alternatives = arg
            end = self.state()
            for alt in alternatives:
                s = self.state()
                self.eps[start].append(s)
                self.eps[self.seq(list(alt), s)].append(end)
            return end
        if op is _c.MAX_REPEAT or op is _c.MIN_REPEAT:  # greedy or lazy: same language
            lo, hi, sub = arg
            sub = list(sub)
            if lo > 64 or (hi is not _c.MAXREPEAT and hi > 64):
                raise _Unsupported("large repeat count")
            cur = start
            for _ in range(lo):
                cur = self.seq(sub, cur)
            if hi is _c.MAXREPEAT:
                loop = self.state()
                self.eps[cur].append(loop)
                self.eps[self.seq(sub, loop)].append(loop)
                return loop
            end = self.state()
            self.eps[cur].append(end)
            for _ in range(hi - lo):
                cur = self.seq(sub, cur)
                self.eps[cur].append(end)
            return end
        raise _Unsupported(str(op))


class Dfa:
    """A DFA over bytes: ``table[state * 256 + byte]`` is the next state (non-ASCII bytes lead to a
    dead, rejecting state; callers send ASCII only, so this only keeps the kernel in bounds)."""

    def __init__(self, table: np.ndarray, accepting: np.ndarray, start: int):
        self.table = table
        self.accepting = accepting
        self.start = start

    def matches(self, value: str) -> bool:
        """One ASCII value without newlines (slow; for tests and single records)."""
        s = self.start
        for ch in value.encode("ascii"):
            s = int(self.table[s * WIDTH + ch])
        return bool(self.accepting[s])

    def failures(self, values: list[str]) -> np.ndarray:
        """Positions (ascending int64) of ``values`` the automaton rejects. Every value must be an ASCII
        ``str`` without a newline; the caller checks that (`column_failures` does)."""
        from engine.kernels import dfa_reject_lines

        if not values:
            return np.empty(0, dtype=np.int64)
        return dfa_reject_lines("\n".join(values).encode("ascii"), self.table, self.accepting, self.start)


def column_failures(values: list[Any], dfa: Dfa | None, search) -> list[int]:
    """Positions of the string ``values`` that ``search`` (a compiled ``re`` search) rejects; values that
    are not strings are skipped. Uses ``dfa`` when every value is an ASCII string without a newline."""
    if dfa is not None and values:
        try:
            joined = "\n".join(values)  # raises TypeError when a value is not a string
        except TypeError:
            joined = None
        if joined is not None and joined.isascii() and joined.count("\n") == len(values) - 1:
            from engine.kernels import dfa_reject_lines

            return dfa_reject_lines(joined.encode("ascii"), dfa.table, dfa.accepting, dfa.start).tolist()
    return [i for i, v in enumerate(values) if isinstance(v, str) and search(v) is None]


def compile_dfa(pattern: str) -> Dfa | None:
    """The DFA deciding ``re.search(pattern, v)`` for ASCII ``v`` without newlines, or ``None`` when the
    pattern uses a construct this compiler does not handle (the caller then uses ``re``)."""
    try:
        parsed = _p.parse(pattern)
        state = getattr(parsed, "state", None) or getattr(parsed, "pattern", None)
        flags = getattr(state, "flags", 0) & ~re.UNICODE
        if flags:
            return None
        return _build(list(parsed))
    except (_Unsupported, re.error, RecursionError):
        return None


def _build(items: list) -> Dfa:
    begin = {_c.AT_BEGINNING, _c.AT_BEGINNING_STRING}
    end = {_c.AT_END, _c.AT_END_STRING}
    anchored_start = bool(items) and items[0][0] is _c.AT and items[0][1] in begin
    if anchored_start:
        items = items[1:]
    anchored_end = bool(items) and items[-1][0] is _c.AT and items[-1][1] in end
    if anchored_end:
        items = items[:-1]
    nfa = _Nfa()
    start = nfa.state()
    cur = start
    if not anchored_start:  # search: the match may begin anywhere
        nfa.edges[start].append((_ANY, start))
    cur = nfa.seq(items, cur)
    final = nfa.state()
    nfa.eps[cur].append(final)
    if not anchored_end:  # ... and end anywhere
        nfa.edges[final].append((_ANY, final))
    return _determinize(nfa, start, final)


def _closure(nfa: _Nfa, states: frozenset[int]) -> frozenset[int]:
    stack = list(states)
    seen = set(states)
    while stack:
        s = stack.pop()
        for t in nfa.eps[s]:
            if t not in seen:
                seen.add(t)
                stack.append(t)
    return frozenset(seen)


def _determinize(nfa: _Nfa, start: int, final: int) -> Dfa:
    # symbols that no mask tells apart behave the same: compute classes once
    masks = sorted({m for edges in nfa.edges for m, _ in edges})
    signature: dict[tuple, list[int]] = {}
    for c in range(ALPHABET):
        signature.setdefault(tuple((m >> c) & 1 for m in masks), []).append(c)
    classes = list(signature.values())
    first = _closure(nfa, frozenset([start]))
    dead: frozenset[int] = frozenset()
    ids = {first: 0}
    if first != dead:
        ids[dead] = 1  # bytes outside ASCII go here
    queue = [first] + ([dead] if first != dead else [])
    rows: list[list[int]] = []
    while queue:
        current = queue.pop(0)
        row = [ids[dead]] * WIDTH
        for members in classes:
            c = members[0]
            nxt = frozenset(t for s in current for m, t in nfa.edges[s] if (m >> c) & 1)
            nxt = _closure(nfa, nxt) if nxt else nxt
            if nxt not in ids:
                if len(ids) >= MAX_STATES:
                    raise _Unsupported("too many DFA states")
                ids[nxt] = len(ids)
                queue.append(nxt)
            for member in members:
                row[member] = ids[nxt]
        rows.append(row)
    accepting = np.zeros(len(ids), dtype=bool)
    for states, i in ids.items():
        accepting[i] = final in states
    table = np.asarray(rows, dtype=np.int64).reshape(-1)
    return Dfa(table, accepting, 0)
