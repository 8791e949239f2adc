"""The conformance kit for executor and progress-store plugins.

Load it explicitly. In the plugin's test settings add the app that holds the
kit's job model and types (workers need them too)::

    INSTALLED_APPS = [..., "task_ferry", "task_ferry.testing"]

and in the plugin's ``conftest.py``::

    pytest_plugins = ["task_ferry.testing.fixtures"]

then subclass ``ExecutorConformance`` / ``ProgressStoreConformance`` (see
``task_ferry.testing.executor`` and ``task_ferry.testing.store``).
"""

