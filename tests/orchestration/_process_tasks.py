"""Module-level callables for the process-pool executor tests (must be importable by worker processes)."""

import os


def pid_and_square(x):
    return [os.getpid(), x * x]


async def async_cube(x):
    return x ** 3
