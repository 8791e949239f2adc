"""task-ferry executor for Django's task framework (``django.tasks`` / the ``django-tasks`` backport).

Configure it with ``TASK_FERRY = {"EXECUTOR": "django_tasks"}``; see
:mod:`task_ferry_django_tasks.executor` and the README. Nothing is imported
here, so importing the package never touches the task framework.
"""

__version__ = "1.0.0.dev0"
