"""The conformance kit for executor and progress-store plugins.

Core runs it on its own plugins; every bundled plugin and any third-party one
proves itself with the same classes. Load it explicitly. In the plugin's test
settings add the app that holds the kit's job model and type (workers need it
too)::

    INSTALLED_APPS = [..., "task_ferry", "task_ferry.testing"]

in the plugin's ``conftest.py``::

    pytest_plugins = ["task_ferry.testing.fixtures"]

and in ``tests/test_conformance.py`` subclass the kit's classes; their names
carry no ``Test`` prefix, so only your subclasses are collected::

    import pytest
    from task_ferry.testing.executor import ExecutorConformance
    from task_ferry.testing.subprocess import bootstrap_args, running

    class TestMyExecutor(ExecutorConformance):
        @pytest.fixture
        def executor_setting(self):
            return {"BACKEND": "my_engine", "OPTIONS": {...}}

        @pytest.fixture
        def ferry_worker(self):          # out-of-process engines only
            with running(bootstrap_args("my_worker_command")) as worker:
                yield worker

Modules:

``task_ferry.testing.executor``
    ``ExecutorConformance`` (fixtures ``executor_setting``, ``ferry_worker``)
    and ``wait_for_state(job_id, states, timeout)``.
``task_ferry.testing.store``
    ``ProgressStoreConformance`` (fixture ``progress_store_setting``, optional
    ``progress_store``).
``task_ferry.testing.subprocess``
    ``child_env``, ``bootstrap_args``, ``run_python``, ``running``: child
    processes (workers, readers) on the *test* database, started through
    ``python -m task_ferry.testing.bootstrap``.
``task_ferry.testing.base``
    ``requires`` (capability gating), ``assert_standard_tests_kept`` (the
    guard), ``create_pending_job``, ``dispatch_of``, ``wait_until``.

Rules the kit enforces:

* a standard test is skipped only because the plugin *declares* it lacks the
  capability (``supports_*`` / ``out_of_process`` flags, see
  :mod:`task_ferry.protocols`), with the reason "executor declares
  supports_revoke = False";
* a plugin that cannot pass a standard test overrides it marked
  ``@pytest.mark.xfail(reason=...)``; any other override, or deleting a
  standard test, fails the guard test ``test_standard_tests_kept`` that every
  subclass inherits.
"""
