"""The task the benchmarks run: it does nothing, so what is measured is the engine's overhead."""

from celery import shared_task


@shared_task(name="bench.noop")
def noop(n: int) -> int:
    return n
