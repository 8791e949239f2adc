"""0.1.1 import path, kept working: resolves to the ``celery`` executor plugin
through its entry point (install it with ``pip install task-ferry-celery``)."""


def __getattr__(name: str):
    if name == "CeleryExecutor":
        from ..plugins import EXECUTORS, PluginNotFound

        try:
            return EXECUTORS.load("celery")
        except PluginNotFound as exc:
            raise ImportError(str(exc)) from exc
    raise AttributeError(name)
