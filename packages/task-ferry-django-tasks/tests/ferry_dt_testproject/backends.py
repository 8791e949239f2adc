"""A task backend that declares neither priority nor deferred runs (capability tests)."""

try:
    from django.tasks.backends.dummy import DummyBackend
except ImportError:  # Django 5.2: the django-tasks backport
    from django_tasks.backends.dummy import DummyBackend


class PlainBackend(DummyBackend):
    supports_defer = False
    supports_priority = False
