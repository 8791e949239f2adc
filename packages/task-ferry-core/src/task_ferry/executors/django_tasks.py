"""0.1.1 import path, kept working: resolves to the ``django_tasks`` executor plugin
through its entry point (install it with ``pip install task-ferry-django-tasks``)."""


def __getattr__(name: str):
    if name == "DjangoTasksExecutor":
        from ..plugins import EXECUTORS, PluginNotFound

        try:
            return EXECUTORS.load("django_tasks")
        except PluginNotFound as exc:
            raise ImportError(str(exc)) from exc
    raise AttributeError(name)
