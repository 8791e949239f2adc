"""Django admin for jobs: a read-only view of every job, with live progress and a cancel action.

What it guarantees:

* Jobs are created through ``JobHandler`` only: the admin has no add form.
* It never writes a job's fields. Lifecycle fields change only through
  compare-and-set transitions, and the other fields (owner, queue, priority,
  type) mean nothing once a job is dispatched, so the detail page is a *view*
  page (``has_change_permission`` is False) and a form save can never race a
  transition. Cancelling goes through ``JobHandler.cancel`` (the action
  "Cancel selected jobs", for users with the ``change_job`` permission).
* The detail page shows the fields of the job's own model (``job.specific``)
  after the base fields, e.g. an ``ExportJob``'s ``table_id``; then its
  attempts (number, times, outcome, error) and the last :data:`LOG_TAIL` lines
  of its log, with a link to all of them: the "Job logs" list, read-only and
  paginated, filtered to the job.
* The progress column shows live values from the progress store for jobs that
  have not ended, read with one ``read_many`` call per changelist page (never
  one per row); ended jobs show what the database recorded. If the store cannot
  be reached the page still renders, with the database values and a warning.
"""

from __future__ import annotations

import logging

from django.contrib import admin, messages
from django.contrib.admin.utils import flatten_fieldsets
from django.forms import modelform_factory
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from .exceptions import JobDoesNotExist, JobNotCancellable
from .handler import JobHandler
from .live import live_progress
from .logs import tail
from .models import Job, JobAttempt, JobLog
from .states import JOB_STATES_ENDED

logger = logging.getLogger("task_ferry.admin")

#: Log lines shown on a job's detail page (all of them are one click away).
LOG_TAIL = 20

_BASE_FIELDSETS = (
    (None, {"fields": ("id", "type", "content_type", "user", "state", "progress", "queue", "priority", "run_after")}),
    ("Outcome", {"fields": ("error_code", "error", "human_readable_error", "result")}),
    (
        "Run",
        {
            "fields": (
                "attempts",
                "max_attempts",
                "timeout",
                "executor_task_id",
                "created_at",
                "updated_at",
                "started_at",
                "heartbeat_at",
                "finished_at",
            )
        },
    ),
    ("Attempts", {"fields": ("attempt_history",)}),
    ("Log", {"fields": ("log_tail",)}),
)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ("id", "type", "state", "progress", "user", "queue", "created_at")
    list_filter = ("state", "type", "queue", ("user", admin.RelatedOnlyFieldListFilter))
    # ``id__exact`` compares the id as text, so a search for a word does not error.
    search_fields = ("id__exact", "type", "error")
    list_select_related = ("user",)
    actions = ["cancel_jobs"]

    # ── Permissions: view and cancel, never add or edit ─────────────────────────

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_cancel_permission(self, request) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.change_{self.opts.model_name}")

    # ── Detail page: base fields plus the job's own model's fields ─────────────

    def get_object(self, request, object_id, from_field=None):
        obj = super().get_object(request, object_id, from_field)
        return obj.specific if obj is not None else None

    @staticmethod
    def _specific_fields(obj) -> list[str]:
        if obj is None or type(obj) is Job:
            return []
        base = {f.name for f in Job._meta.concrete_fields}
        return [
            f.name
            for f in type(obj)._meta.concrete_fields
            if f.name not in base and not (f.one_to_one and f.remote_field.parent_link)
        ]

    def get_fieldsets(self, request, obj=None):
        specific = self._specific_fields(obj)
        if not specific:
            return list(_BASE_FIELDSETS)
        return [*_BASE_FIELDSETS, (f"{type(obj)._meta.verbose_name.capitalize()} fields", {"fields": specific})]

    def get_readonly_fields(self, request, obj=None):
        return flatten_fieldsets(self.get_fieldsets(request, obj))

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        if obj is not None and type(obj) is not self.model:
            # Read-only fields are labelled from the form's model: make it the job's own
            # class, or its own fields (table_id, ...) cannot be found on Job.
            form = modelform_factory(type(obj), form=form, fields=form._meta.fields, exclude=form._meta.exclude)
        return form

    # ── Live progress: one store read per page ─────────────────────────────────

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        # Evaluates the page's queryset once; the template then iterates these same objects.
        self._attach_progress(request, list(cl.result_list))
        return cl

    def _attach_progress(self, request, jobs: list[Job]) -> None:
        def store_down(exc: Exception) -> None:  # a store outage must not take the admin down with it
            logger.warning("task-ferry: admin could not read live progress: %s", exc)
            if request is not None:
                messages.warning(
                    request,
                    f"Live progress is unavailable ({type(exc).__name__}: {exc}); "
                    f"showing the values last saved in the database.",
                )

        live = live_progress(jobs, on_store_error=store_down)
        for job in jobs:
            job._ferry_progress = (live[job.pk].percentage, live[job.pk].label)

    @admin.display(description="progress")
    def progress(self, obj: Job):
        if not hasattr(obj, "_ferry_progress"):  # the detail page: one job
            self._attach_progress(None, [obj])
        pct, label = obj._ferry_progress
        bar = format_html('<progress max="100" value="{}" style="width: 8em">{}%</progress> {}%', pct, pct, pct)
        if not label:
            return bar
        return format_html('{} <span title="{}">{}</span>', bar, label, Truncator(label).chars(40))

    # ── Attempts and log (detail page) ─────────────────────────────────────────

    @admin.display(description="attempts")
    def attempt_history(self, obj: Job):
        rows = list(JobAttempt.objects.filter(job_id=obj.pk).order_by("number"))
        if not rows:
            return "No attempt has ended yet."

        def when(value) -> str:
            return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else "-"

        body = format_html_join(
            "",
            '<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td title="{}">{}</td></tr>',
            (
                (a.number, when(a.started_at), when(a.ended_at), a.outcome, a.traceback, Truncator(a.error).chars(120))
                for a in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>#</th><th>started</th><th>ended</th><th>outcome</th><th>error</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="log")
    def log_tail(self, obj: Job):
        lines = tail(obj.pk, LOG_TAIL)
        if not lines:
            return "No log lines."
        url = reverse(f"{self.admin_site.name}:{JobLog._meta.app_label}_joblog_changelist")
        body = format_html_join(
            "\n",
            "{} {} [{}] {}",
            (
                (line.seq, timezone.localtime(line.created_at).strftime("%H:%M:%S"), line.level, line.message)
                for line in lines
            ),
        )
        return format_html(
            '<pre style="white-space: pre-wrap; margin: 0">{}</pre><a href="{}?job__id__exact={}">All log lines</a>',
            body,
            url,
            obj.pk,
        )

    # ── Actions ────────────────────────────────────────────────────────────────

    @admin.action(description="Cancel selected jobs", permissions=["cancel"])
    def cancel_jobs(self, request, queryset) -> None:
        cancelled = ended = 0
        for pk, state in queryset.values_list("pk", "state"):
            if state in JOB_STATES_ENDED:
                # Includes already-cancelled jobs, for which cancel() is a no-op.
                ended += 1
                continue
            try:
                JobHandler.cancel(None, pk)
            except (JobNotCancellable, JobDoesNotExist):  # ended (or was cleaned up) since the page loaded
                ended += 1
            else:
                cancelled += 1
        if cancelled:
            self.message_user(
                request,
                f"Cancelled {_plural(cancelled, 'job')}. Running jobs stop at their next progress update.",
                messages.SUCCESS,
            )
        if ended:
            self.message_user(
                request,
                f"{_plural(ended, 'job')} had already ended and {'was' if ended == 1 else 'were'} left unchanged.",
                messages.WARNING,
            )


@admin.register(JobLog)
class JobLogAdmin(admin.ModelAdmin):
    """Every job's log lines, read-only and paginated; the job page links here filtered to its job."""

    list_display = ("job_id", "seq", "created_at", "level", "logger", "short_message")
    list_filter = ("level",)
    search_fields = ("job__id__exact", "message")
    ordering = ("job_id", "seq")
    list_per_page = 100
    show_full_result_count = False  # a COUNT over every job's lines is the slow part of a big log table

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # lines go with their job (cleanup)

    @admin.display(description="message")
    def short_message(self, obj: JobLog) -> str:
        return Truncator(obj.message).chars(200)
