"""The increment workload, shared by the job's ``run`` and the bare-Progress ceiling
so both time exactly the same calls."""

FAN = 10


def drive(progress, n: int, levels: int) -> None:
    """Make ``n`` ``increment()`` calls that take ``progress`` from 0 to 100 %.

    ``levels == 0``: on ``progress`` itself (``by = 100 / n``). Otherwise at the
    leaves of ``levels`` nested children: ``FAN`` children per inner level, each
    leaf with ``n / FAN ** (levels - 1)`` steps (3 levels, 100,000: 10 x 10 x 1,000)."""
    if levels == 0:
        step = 100 / n
        for _ in range(n):
            progress.increment(step)
    else:
        if n % FAN ** (levels - 1):
            raise ValueError(f"{n} increments do not split evenly over {levels} levels of {FAN}.")
        _nest(progress, 100, n, levels)


def _nest(parent, represents: float, n: int, levels: int) -> None:
    if levels == 1:
        leaf = parent.create_child(represents, n)
        for _ in range(n):
            leaf.increment()
        return
    node = parent.create_child(represents, FAN)
    for _ in range(FAN):
        _nest(node, 1, n // FAN, levels - 1)
