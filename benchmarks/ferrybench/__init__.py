"""Shared pieces of task-ferry's benchmarks: virtualenvs, machine facts, the engine driver.

Pure standard library at import time, so the orchestrator (``benchmarks/run.py``) can use it
from any python3 >= 3.11; the parts that need Django or an engine import them inside functions
and run inside the virtualenv of the side they measure.
"""
