"""The Django settings module of the engine benchmarks: ``BENCH_ENGINE`` names the engine
module (``ferrybench.engines.<name>``), whose ``settings(side)`` returns them for
``BENCH_SIDE`` (raw, ours or ferry011)."""

import importlib
import os

_engine = importlib.import_module(f"ferrybench.engines.{os.environ['BENCH_ENGINE']}")
globals().update(_engine.ENGINE.settings(os.environ["BENCH_SIDE"]))
