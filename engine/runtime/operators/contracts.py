"""The ``validate`` step: records checked against a data contract, once per batch.

Valid records continue as the contract's validated form (dicts with coerced values and defaults filled
in); invalid ones go to the step's dead letters with every violation (field path, rule, value), or fail
the job when no dead-letter output is attached. The whole batch goes through one compiled msgspec
validator (`engine.contracts.streams.BatchValidator`), not a Python loop of checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.batch import Batch
from engine.dead_letters import DeadLetter
from engine.runtime.operators.base import Operator, Output

__all__ = ["ValidateOperator"]


class ValidateOperator(Operator):
    def __init__(self, step: str, contract: Any) -> None:
        super().__init__(step)
        from engine.contracts.streams import BatchValidator

        self.validator = BatchValidator(contract, step=step, output="dict")

    def process(self, batch: Batch, input_index: int) -> Output:
        self.watermark = batch.watermark
        if not len(batch):
            return Output(batch)
        valid, dead = self.validator(batch.records)
        if not dead:
            return Output(batch.replace(records=valid, columns={}))
        keep = np.ones(len(batch), dtype=bool)
        keep[[letter.index for letter in dead]] = False
        errors = [
            DeadLetter(
                self.step,
                f"violates contract {letter.contract!r} {letter.version}: {letter.reason}",
                letter.record,
                letter.issues[0].path or None,
                letter.issues[0].value,
            )
            for letter in dead
        ]
        return Output(batch.take(keep).replace(records=valid, columns={}), errors=errors)
