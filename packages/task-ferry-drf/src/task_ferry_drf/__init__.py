"""task-ferry-drf: the REST API of task-ferry (Django REST framework).

Add ``"rest_framework"`` and ``"task_ferry_drf"`` to ``INSTALLED_APPS`` and mount
the URLs::

    path("api/jobs/", include("task_ferry_drf.urls"))

See the distribution's README for every endpoint and setting.
"""

__version__ = "1.0.0.dev0"
