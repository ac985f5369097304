"""Compiling a `Dataflow` into an execution plan: wiring, key domains and fused chains.

The plan is data: which step feeds which (main output, late output, dead letters), which key_by steps
must share one key domain (both inputs of a join), and how steps fuse into chains. A chain is a run of
single-input steps, each the only consumer of the one before; inside a chain batches move by plain
function calls, with no queue or task switch. A chain starts at a source, at a multi-input step
(union, join), at a side output (late records, dead letters) and wherever a stream fans out.
`Plan.describe` renders it as text (``flow.describe()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine import kernels
from engine.errors import FlowDefinitionError

if TYPE_CHECKING:
    from engine.dataflow import Dataflow, Step

__all__ = ["Plan", "compile_flow"]

SIDE_KINDS = ("late", "dead_letters")


@dataclass
class Plan:
    flow_name: str
    steps: dict[str, Step]  # topological order
    consumers: dict[str, list[tuple[str, int]]]  # main output -> (step, input index)
    late_output: dict[str, str]  # window step -> its late step
    dead_letter_output: dict[str, str]  # step -> the dead-letter step its bad records go to
    key_domain: dict[str, int]  # key_by / window / join step -> key domain id
    origins: dict[str, list[str]] = field(default_factory=dict)  # step -> the source steps upstream of it
    chains: list[list[str]] = field(default_factory=list)

    def describe(self) -> str:
        chain_of = {name: i for i, chain in enumerate(self.chains) for name in chain}
        lines = [f"Dataflow {self.flow_name!r}: {len(self.steps)} steps in {len(self.chains)} chains "
                 f"(kernels: {kernels.IMPLEMENTATION})"]
        for i, chain in enumerate(self.chains):
            lines.append(f"chain {i + 1}:")
            for name in chain:
                lines.append(f"  {_describe_step(self.steps[name])}")
            last = chain[-1]
            targets = []
            for consumer, _ in self.consumers.get(last, []):
                if chain_of[consumer] != i:
                    targets.append(f"chain {chain_of[consumer] + 1}")
            for name in chain:
                if name in self.late_output:
                    targets.append(f"late records -> chain {chain_of[self.late_output[name]] + 1}")
            if targets:
                lines.append("  -> " + ", ".join(targets))
        routed = sorted({(s, d) for s, d in self.dead_letter_output.items()})
        if routed:
            lines.append("dead letters: " + ", ".join(f"{s} -> {d}" for s, d in routed))
        else:
            lines.append("dead letters: none attached (a bad record fails the job)")
        return "\n".join(lines)


def _ref(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    return str(getattr(value, "__qualname__", None) or type(value).__name__)


def _describe_step(step: Step) -> str:
    p = step.params
    head = f"{step.kind} {step.name!r}"
    if step.kind == "source":
        return f"{head}: {p['source'].describe()}, timestamp={_ref(p['timestamp']) if p['timestamp'] is not None else 'from the source'}, watermark={p['watermark']}"
    if step.kind in ("map", "flat_map", "filter"):
        return f"{head}: {_ref(p['fn'])}"
    if step.kind == "key_by":
        return f"{head}: key={_ref(p['key'])}"
    if step.kind == "validate":
        return f"{head}: contract {p['contract'].name!r} {p['contract'].version}"
    if step.kind == "union":
        return f"{head}: inputs {', '.join(map(repr, step.inputs))}"
    if step.kind == "window":
        what = (
            "aggregate " + ", ".join(f"{n}={a}" for n, a in p["aggregations"].items())
            if p["aggregations"] is not None
            else f"reduce {_ref(p['reducer'][0])} into {p['reducer'][2]!r}"
        )
        return f"{head}: {p['spec']}, allowed_lateness={p['allowed_lateness']}ms, {what}"
    if step.kind == "interval_join":
        lo = "(" if p["lower_exclusive"] else "["
        hi = ")" if p["upper_exclusive"] else "]"
        combine = f", combine={_ref(p['combine'])}" if p["combine"] else ", emits (left, right)"
        return (f"{head}: {step.inputs[0]!r} with {step.inputs[1]!r}, right.ts in left.ts + "
                f"{lo}{p['lower']}, {p['upper']}{hi}ms{combine}")
    if step.kind == "late":
        return f"{head}: late records of {step.inputs[0]!r}"
    if step.kind == "dead_letters":
        return f"{head}: dead letters of {step.inputs[0]!r}" if step.inputs else f"{head}: dead letters of every other step"
    if step.kind == "sink":
        return f"{head}: {p['sink'].describe()}"
    return head


def _topological(steps: dict[str, Step]) -> list[str]:
    order: list[str] = []
    seen: set[str] = set()

    def visit(name: str) -> None:
        if name in seen:
            return
        seen.add(name)
        for upstream in steps[name].inputs:
            visit(upstream)
        order.append(name)

    for name in steps:
        visit(name)
    return order


def _key_root(steps: dict[str, Step], name: str, consumer: str) -> str:
    """The key_by step whose keys reach ``consumer`` through ``name`` (key-preserving steps only)."""
    current = name
    while steps[current].kind == "filter":
        current = steps[current].inputs[0]
    if steps[current].kind != "key_by":
        raise FlowDefinitionError(f"step {consumer!r} needs a keyed input, but {name!r} is not keyed; add .key_by(...)")
    return current


def compile_flow(flow: Dataflow) -> Plan:
    """Validate ``flow`` and compile it into a `Plan`."""
    flow.validate()
    raw = dict(flow._steps)
    order = _topological(raw)
    steps = {name: raw[name] for name in order}

    consumers: dict[str, list[tuple[str, int]]] = {name: [] for name in steps}
    late_output: dict[str, str] = {}
    own_dead: dict[str, str] = {}
    flow_dead = None
    for step in steps.values():
        if step.kind == "late":
            late_output[step.inputs[0]] = step.name
        elif step.kind == "dead_letters":
            if step.inputs:
                own_dead[step.inputs[0]] = step.name
            else:
                flow_dead = step.name
        else:
            for index, upstream in enumerate(step.inputs):
                consumers[upstream].append((step.name, index))

    dead_letter_output: dict[str, str] = {}
    for step in steps.values():
        if step.kind == "dead_letters":
            continue  # a dead-letter stream's own steps never produce dead letters
        target = own_dead.get(step.name, flow_dead)
        if target is not None:
            dead_letter_output[step.name] = target

    # Key domains: every key_by has one; an interval join merges the domains of its two inputs.
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for step in steps.values():
        if step.kind == "key_by":
            find(step.name)
        elif step.kind == "interval_join":
            left = _key_root(steps, step.inputs[0], step.name)
            right = _key_root(steps, step.inputs[1], step.name)
            parent[find(left)] = find(right)
    domain_ids: dict[str, int] = {}
    key_domain: dict[str, int] = {}
    for step in steps.values():
        if step.kind == "key_by":
            key_domain[step.name] = domain_ids.setdefault(find(step.name), len(domain_ids))
        elif step.kind == "window":
            key_domain[step.name] = key_domain[_key_root(steps, step.inputs[0], step.name)]
        elif step.kind == "interval_join":
            key_domain[step.name] = key_domain[_key_root(steps, step.inputs[0], step.name)]

    origins: dict[str, list[str]] = {}
    for step in steps.values():
        if step.kind == "source":
            origins[step.name] = [step.name]
        elif step.kind == "dead_letters":
            origins[step.name] = []  # dead letters carry no event time
        else:
            found: list[str] = []
            for upstream in step.inputs:
                found += [o for o in origins[upstream] if o not in found]
            origins[step.name] = found

    plan = Plan(flow.name, steps, consumers, late_output, dead_letter_output, key_domain, origins)
    plan.chains = _chains(plan)
    return plan


def _chains(plan: Plan) -> list[list[str]]:
    fan_out = {name: len(c) for name, c in plan.consumers.items()}
    chains: list[list[str]] = []
    chain_of: dict[str, int] = {}
    for name, step in plan.steps.items():
        fused = (
            len(step.inputs) == 1
            and step.kind not in SIDE_KINDS
            and fan_out[step.inputs[0]] == 1
            and step.inputs[0] in chain_of
        )
        if fused:
            index = chain_of[step.inputs[0]]
            if chains[index][-1] == step.inputs[0]:
                chains[index].append(name)
                chain_of[name] = index
                continue
        chain_of[name] = len(chains)
        chains.append([name])
    return chains
