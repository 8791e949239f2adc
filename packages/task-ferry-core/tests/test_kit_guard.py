"""The kit's rules for plugin test classes: standard tests are kept or openly
xfailed, skips come only from declared capabilities, and the kit's classes are
collected only through a plugin's ``Test`` subclass."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

from task_ferry.testing.base import (
    ConformanceBase,
    assert_not_in_transaction,
    assert_standard_tests_kept,
    requires,
    skip_unless_supported,
)
from task_ferry.testing.executor import ExecutorConformance
from task_ferry.testing.store import ProgressStoreConformance

pytest_plugins = ["pytester"]

TESTS_DIR = Path(__file__).resolve().parent


# Plugin-shaped classes, named without the Test prefix so this module does not collect them.


class KeepsEverything(ProgressStoreConformance):
    pass


class SilentOverride(ProgressStoreConformance):
    def test_clear_forgets_snapshot_and_cancel(self, progress_store, fresh_ids):
        pass


class OpenXfail(ProgressStoreConformance):
    @pytest.mark.xfail(reason="this backend keeps cancel flags after clear(); tracked in issue 12")
    def test_clear_forgets_snapshot_and_cancel(self, progress_store, fresh_ids):
        super().test_clear_forgets_snapshot_and_cancel(progress_store, fresh_ids)


class XfailWithoutReason(ProgressStoreConformance):
    @pytest.mark.xfail
    def test_clear_forgets_snapshot_and_cancel(self, progress_store, fresh_ids):
        pass


class RemovesATest(ExecutorConformance):
    test_duplicate_delivery_runs_once = None


class PluginBase(ExecutorConformance):
    """A plugin's own intermediate class: its override counts as the plugin's."""

    def test_job_runs_to_finished(self):
        pass


class PluginLeaf(PluginBase):
    pass


class NotAKitClass:
    def test_something(self):
        pass


def test_guard_accepts_a_class_that_keeps_every_standard_test():
    assert_standard_tests_kept(KeepsEverything)
    assert_standard_tests_kept(OpenXfail)


def test_guard_rejects_a_silent_override():
    with pytest.raises(
        AssertionError,
        match=r"overridden without @pytest\.mark\.xfail\(reason=\.\.\.\): "
        r"\['test_clear_forgets_snapshot_and_cancel'\]",
    ):
        assert_standard_tests_kept(SilentOverride)


def test_guard_rejects_an_xfail_without_reason():
    with pytest.raises(AssertionError, match="test_clear_forgets_snapshot_and_cancel"):
        assert_standard_tests_kept(XfailWithoutReason)


def test_guard_rejects_a_removed_test():
    with pytest.raises(AssertionError, match=r"removed: \['test_duplicate_delivery_runs_once'\]"):
        assert_standard_tests_kept(RemovesATest)


def test_guard_sees_overrides_in_a_plugins_intermediate_class():
    with pytest.raises(AssertionError, match=r"PluginLeaf \(ExecutorConformance\).*\['test_job_runs_to_finished'\]"):
        assert_standard_tests_kept(PluginLeaf)


def test_guard_needs_a_kit_class():
    with pytest.raises(AssertionError, match=r"not a subclass of a task_ferry\.testing conformance class"):
        assert_standard_tests_kept(NotAKitClass)


def test_every_kit_class_carries_the_guard():
    for kit_class in (ExecutorConformance, ProgressStoreConformance):
        assert issubclass(kit_class, ConformanceBase)
        assert kit_class.test_standard_tests_kept is ConformanceBase.test_standard_tests_kept


class _Subject:
    supports_revoke = False
    supports_delay = True
    supports_subscribe = True


def test_requires_skips_with_the_declared_flag_as_reason():
    @requires("supports_delay", "supports_revoke")
    def needs_both():
        pass

    with pytest.raises(pytest.skip.Exception, match=r"^executor declares supports_revoke = False$"):
        skip_unless_supported(needs_both, _Subject(), "executor")


def test_requires_runs_when_the_flags_hold():
    @requires("supports_delay")
    @requires(supports_revoke=False)
    def needs_delay_without_revoke():
        pass

    skip_unless_supported(needs_delay_without_revoke, _Subject(), "executor")  # no skip


def test_requires_negated_flag():
    @requires(supports_subscribe=False)
    def needs_no_subscribe():
        pass

    with pytest.raises(pytest.skip.Exception, match=r"^progress store declares supports_subscribe = True$"):
        skip_unless_supported(needs_no_subscribe, _Subject(), "progress store")


def test_requires_rejects_an_undeclared_flag():
    @requires("supports_kill")
    def needs_kill():
        pass

    with pytest.raises(AssertionError, match="does not declare 'supports_kill'"):
        skip_unless_supported(needs_kill, _Subject(), "executor")


def test_kit_refuses_to_run_inside_the_tests_transaction(db):
    """Under ``db`` the test is one transaction: workers would see nothing, so the kit stops early."""
    from django.contrib.auth import get_user_model

    get_user_model().objects.count()  # open the connection
    with pytest.raises(AssertionError, match="conformance tests need transactional_db"):
        assert_not_in_transaction()


def test_kit_runs_under_transactional_db(transactional_db):
    from django.contrib.auth import get_user_model

    get_user_model().objects.count()
    assert_not_in_transaction()


# ── Through pytest itself, as a plugin's test suite runs the kit ──────────────


@pytest.mark.integration
def test_a_plugin_conformance_file_runs_as_documented(pytester, monkeypatch):
    """A plugin's conformance file is a subclass plus a fixture. Run one through pytest:
    the kit classes imported into it are not collected on their own, skips carry
    the declared flag, an open xfail is honoured, a silent override fails the
    guard, and a missing required fixture says what to override."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]))
    pytester.makeconftest('pytest_plugins = ["task_ferry.testing.fixtures"]')
    pytester.makepyfile(
        test_plugin=textwrap.dedent(
            """
            import pytest
            from task_ferry.testing.executor import ExecutorConformance
            from task_ferry.testing.store import ProgressStoreConformance

            class TestLocMemStore(ProgressStoreConformance):
                @pytest.fixture
                def progress_store_setting(self):
                    return "cache"

                @pytest.mark.xfail(reason="demonstrates an open xfail", strict=True)
                def test_long_label_does_not_break_write(self, progress_store, fresh_ids):
                    raise AssertionError("this backend cuts labels at 10 characters")

                def test_clear_forgets_snapshot_and_cancel(self):
                    pass  # silently weakened: the guard must fail

            class TestForgotTheSetting(ExecutorConformance):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "--ds=ferry_core_testproject.settings",
        "-p",
        "no:cacheprovider",
        "-rsx",
        "-k",
        "TestLocMemStore and (write_then_read or another_process or long_label or clear_forgets or kept) "
        "or TestForgotTheSetting and runs_to_finished",
    )
    result.stdout.fnmatch_lines(["*progress store declares supports_cross_process = False*"])
    result.stdout.fnmatch_lines(["*demonstrates an open xfail*"])
    result.stdout.fnmatch_lines(["*overridden without @pytest.mark.xfail(reason=...)*test_clear_forgets*"])
    result.stdout.fnmatch_lines(["*Override the `executor_setting` fixture*"])
    # Kit classes imported into the module are not collected on their own: only the Test* classes ran.
    assert "ProgressStoreConformance::" not in result.stdout.str()
    result.assert_outcomes(passed=2, skipped=2, xfailed=1, failed=1, errors=1)
