"""``manage.py ferry``: inspect and steer task-ferry jobs from a terminal or a script.

Subcommands::

    ferry list [--state S[,S]] [--type T] [--queue Q] [--user USERNAME_OR_ID] [--limit N] [--json]
    ferry show ID [--logs N] [--json]
    ferry watch ID [--interval SECONDS] [--no-logs]
    ferry cancel ID
    ferry reap [--every SECONDS] [--json]
    ferry cleanup [--days N] [--dry-run]
    ferry stats [--json]
    ferry plugins [--json]

Options of ``manage.py`` itself (``--settings``, ``--verbosity``, ...) go before
the subcommand: ``manage.py ferry --settings=mysite.settings list``.

Exit codes (stable; scripts may rely on them):

====  ===========================================================================
0     success (for ``watch``: the job finished)
1     unexpected error (including a misconfigured executor or progress store)
2     bad usage: unknown subcommand or option, a malformed value, an unknown --user
3     the job does not exist
4     the job cannot be cancelled because it has already ended (``cancel``)
5     ``watch``: the job failed (or ended any other way than finished or cancelled)
6     ``watch``: the job was cancelled
130   ``watch``: interrupted with Ctrl-C (the job itself keeps running)
====  ===========================================================================

``--json`` prints one JSON document on stdout and nothing else there.

``show`` ends with the job's attempts and the last ``--logs`` lines of its log
(default 20). ``watch`` prints the log lines written while it watches, with one
query per check for lines after the last one shown.

``reap`` runs one reaper pass (see :mod:`task_ferry.reaper`): jobs whose
worker stopped beating for ``HEARTBEAT_TIMEOUT`` end failed ("worker lost") or
are retried, jobs past their timeout are ended (and killed where the executor
can), due retries are dispatched. Safe from cron and with several instances at
once; ``--every SECONDS`` keeps it running.

Live progress: for jobs that have not ended, percentage and label come from the
configured progress store, read once per command with ``read_many`` (never once
per job); ended jobs show what the database recorded. A store that cannot be
reached is reported on stderr and the database values are shown instead.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DatabaseError
from django.db.models import Count
from django.utils import timezone

from ... import conf
from ...exceptions import (
    ExecutorNotConfigured,
    JobDoesNotExist,
    JobNotCancellable,
    ProgressStoreNotConfigured,
)
from ...handler import JobHandler
from ...live import live_progress
from ...logs import tail
from ...models import Job, JobAttempt, JobLog
from ...plugins import EXECUTORS, PROGRESS_STORES
from ...states import ALL_STATES, JOB_CANCELLED, JOB_FINISHED, JOB_STATES_ENDED

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_NOT_CANCELLABLE = 4
EXIT_FAILED = 5
EXIT_CANCELLED = 6
EXIT_INTERRUPTED = 130

_BAR_WIDTH = 30


class _HelpFormatter(DjangoHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Keeps the exit-code table in ``--help`` as written."""


# ── argparse value types (their errors are usage errors: exit code 2) ──────────


def _number(parse: type, kind: str, ok: Callable[[float], bool], rule: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``parse`` the text, then require ``ok(value)`` (else "must be <rule>")."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {rule}, got {value}")
        return value

    return convert


_positive_int = _number(int, "a whole number", lambda v: v >= 1, "at least 1")
_non_negative_int = _number(int, "a whole number", lambda v: v >= 0, "0 or more")
_positive_float = _number(float, "a number", lambda v: v > 0, "more than 0")


def _states(text: str) -> list[str]:
    states = [s.strip() for s in text.split(",") if s.strip()]
    unknown = [s for s in states if s not in ALL_STATES]
    if unknown or not states:
        raise argparse.ArgumentTypeError(
            f"unknown state(s) {', '.join(unknown) or repr(text)}; use one or more of {', '.join(ALL_STATES)}, "
            f"separated by commas"
        )
    return states


# ── Live progress ──────────────────────────────────────────────────────────────


def _live(jobs: list[Job], stderr=None) -> dict:
    """Live values of ``jobs`` (one store read); the database values, with a note
    on ``stderr``, if the store cannot be reached."""
    store = _store()

    def note(exc: Exception) -> None:
        if stderr is not None:
            stderr.write(
                f"Live progress unavailable ({type(store).__name__}: {type(exc).__name__}: {exc}); "
                f"showing the values last saved in the database."
            )

    return live_progress(jobs, on_store_error=note)


def _store():
    try:
        return conf.get_progress_store()
    except ProgressStoreNotConfigured as exc:
        raise CommandError(f"{exc} Run `manage.py check` for details.", returncode=EXIT_ERROR) from exc


# ── Output helpers ─────────────────────────────────────────────────────────────


def _owner(job: Job) -> str | None:
    return job.user.get_username() if job.user_id is not None and job.user is not None else None


def _time(value) -> str:
    return timezone.localtime(value).strftime("%Y-%m-%d %H:%M:%S") if value else ""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in headers]] + [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells)


def _short(text: str, width: int = 40) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _log_text(line: JobLog) -> str:
    when = timezone.localtime(line.created_at).strftime("%H:%M:%S")
    return f"  {line.seq:>4} {when} [{line.level}] {line.message}"


def _bar(pct: int) -> str:
    filled = round(_BAR_WIDTH * pct / 100)
    return "[" + "#" * filled + "-" * (_BAR_WIDTH - filled) + "]"


class _JSONEncoder(DjangoJSONEncoder):
    # DjangoJSONEncoder cuts datetimes to milliseconds; scripts get them exact.
    def default(self, o: Any) -> Any:
        if isinstance(o, datetime):
            return o.isoformat()
        return super().default(o)


class Command(BaseCommand):
    help = "Inspect and steer task-ferry jobs.\n\n" + (
        __doc__[__doc__.index("Exit codes") : __doc__.index("``--json``")] if __doc__ else ""
    )
    # The command must work when the configured plugins do not (``ferry plugins`` is how
    # you find out what is installed), so Django's checks do not gate it.
    requires_system_checks: list[str] = []

    def create_parser(self, prog_name, subcommand, **kwargs):
        kwargs.setdefault("formatter_class", _HelpFormatter)
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

        p = sub.add_parser("list", help="List jobs, newest first.")
        p.add_argument("--state", type=_states, help="Only jobs in these states, comma-separated.")
        p.add_argument("--type", dest="job_type", help="Only jobs of this registered type.")
        p.add_argument("--queue", help="Only jobs dispatched to this queue.")
        p.add_argument("--user", help="Only jobs owned by this user (username or id).")
        p.add_argument("--limit", type=_positive_int, default=20, help="At most this many jobs (default 20).")
        p.add_argument("--json", action="store_true", help="Print JSON instead of a table.")

        p = sub.add_parser("show", help="Every field of one job, including its type's own fields, attempts and log.")
        p.add_argument("job_id", type=int, metavar="ID")
        p.add_argument(
            "--logs", type=_non_negative_int, default=20, metavar="N", help="Show the last N log lines (default 20)."
        )
        p.add_argument("--json", action="store_true", help="Print JSON.")

        p = sub.add_parser(
            "watch",
            help="Show a live progress bar until the job ends.",
            description="Show a live progress bar until the job ends. "
            "Exit code 0 if it finished, 5 if it failed, 6 if it was cancelled.",
        )
        p.add_argument("job_id", type=int, metavar="ID")
        p.add_argument(
            "--interval", type=_positive_float, default=0.5, help="Seconds between two checks (default 0.5)."
        )
        p.add_argument("--no-logs", action="store_true", help="Do not print the job's log lines.")

        p = sub.add_parser(
            "reap",
            help="End jobs whose worker died or that overran their timeout; dispatch due retries.",
            description="One reaper pass (safe from cron and with several instances at once).",
        )
        p.add_argument("--every", type=_positive_float, metavar="SECONDS", help="Keep running: one pass every SECONDS.")
        p.add_argument("--json", action="store_true", help="Print what the pass did as JSON.")

        p = sub.add_parser("cancel", help="Cancel a pending or running job (exit code 4 if it has already ended).")
        p.add_argument("job_id", type=int, metavar="ID")

        p = sub.add_parser("cleanup", help="Delete ended jobs older than --days (default JOB_EXPIRY_DAYS).")
        p.add_argument("--days", type=_non_negative_int, help="Age in days; default the JOB_EXPIRY_DAYS setting.")
        p.add_argument("--dry-run", action="store_true", help="Only print how many jobs would be deleted.")

        p = sub.add_parser("stats", help="Job counts by state, type and queue, and pending jobs per queue.")
        p.add_argument("--json", action="store_true", help="Print JSON.")

        p = sub.add_parser("plugins", help="Installed executors and progress stores, and which are configured.")
        p.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        action = options["action"]
        try:
            getattr(self, f"do_{action}")(options)
        except JobDoesNotExist:
            raise CommandError(
                f"Job {options['job_id']} does not exist. Run `manage.py ferry list` to see job ids.",
                returncode=EXIT_NOT_FOUND,
            ) from None
        except ExecutorNotConfigured as exc:
            raise CommandError(f"{exc} Run `manage.py check` for details.", returncode=EXIT_ERROR) from exc
        except DatabaseError as exc:
            raise CommandError(
                f"Database error: {exc}. Check that the database is reachable and migrated (`manage.py migrate`).",
                returncode=EXIT_ERROR,
            ) from exc

    def _json(self, data: Any) -> None:
        self.stdout.write(json.dumps(data, cls=_JSONEncoder, indent=2))

    # ── list ───────────────────────────────────────────────────────────────────

    def do_list(self, options: dict) -> None:
        qs = Job._base_manager.select_related("user").order_by("-created_at", "-pk")
        if options["state"]:
            qs = qs.filter(state__in=options["state"])
        if options["job_type"]:
            qs = qs.filter(type=options["job_type"])
        if options["queue"]:
            qs = qs.filter(queue=options["queue"])
        if options["user"]:
            qs = qs.filter(user=self._user(options["user"]))
        jobs = list(qs[: options["limit"]])
        live = _live(jobs, self.stderr)
        rows = []
        for job in jobs:
            pct, label = live[job.pk].percentage, live[job.pk].label
            rows.append(
                {
                    "id": job.pk,
                    "type": job.type,
                    "state": job.state,
                    "progress": pct,
                    "label": label,
                    "queue": job.queue,
                    "owner": _owner(job),
                    "created_at": job.created_at,
                }
            )
        if options["json"]:
            self._json(rows)
            return
        if not rows:
            self.stdout.write("No jobs match.")
            return
        self.stdout.write(
            _table(
                ["ID", "TYPE", "STATE", "PROGRESS", "LABEL", "QUEUE", "OWNER", "CREATED"],
                [
                    [
                        r["id"],
                        r["type"],
                        r["state"],
                        f"{r['progress']}%",
                        _short(r["label"]),
                        r["queue"],
                        r["owner"] or "-",
                        _time(r["created_at"]),
                    ]
                    for r in rows
                ],
            )
        )

    def _user(self, value: str):
        User = get_user_model()
        user = User._default_manager.filter(**{User.USERNAME_FIELD: value}).first()
        if user is None and value.isdigit():
            user = User._default_manager.filter(pk=int(value)).first()
        if user is None:
            raise CommandError(
                f"No user with username or id {value!r}. Pass an existing username or numeric user id to --user.",
                returncode=EXIT_USAGE,
            )
        return user

    # ── show ───────────────────────────────────────────────────────────────────

    def do_show(self, options: dict) -> None:
        job = JobHandler.get_job(None, options["job_id"]).specific
        view = _live([job], self.stderr)[job.pk]
        pct, label, source = view.percentage, view.label, view.source
        base = {}
        for field in Job._meta.concrete_fields:
            base[field.name] = getattr(job, field.attname)
        base["content_type"] = f"{job.content_type.app_label}.{job.content_type.model}"
        base["user"] = _owner(job)
        base["user_id"] = job.user_id
        base["progress_percentage"], base["progress_state"] = pct, label
        base["progress_source"] = source
        own_names = {f.name for f in Job._meta.concrete_fields}
        specific = {
            f.attname if f.is_relation else f.name: getattr(job, f.attname)
            for f in type(job)._meta.concrete_fields
            if f.name not in own_names and not (f.one_to_one and f.remote_field.parent_link)
        }
        attempts = list(
            JobAttempt.objects.filter(job_id=job.pk)
            .order_by("number")
            .values("number", "started_at", "ended_at", "outcome", "error")
        )
        lines = tail(job.pk, options["logs"]) if options["logs"] else []
        if options["json"]:
            log = [
                {"seq": x.seq, "created_at": x.created_at, "level": x.level, "logger": x.logger, "message": x.message}
                for x in lines
            ]
            self._json(
                {
                    **base,
                    "model": type(job)._meta.label,
                    "specific": specific,
                    "attempt_history": attempts,
                    "log_tail": log,
                }
            )
            return
        width = max(len(k) for k in [*base, *specific])
        for key, value in base.items():
            self.stdout.write(f"{key.ljust(width)}  {self._text(value)}")
        if specific:
            self.stdout.write(f"\n{type(job)._meta.label} fields:")
            for key, value in specific.items():
                self.stdout.write(f"{key.ljust(width)}  {self._text(value)}")
        if attempts:
            self.stdout.write("\nAttempts:")
            self.stdout.write(
                "  "
                + _table(
                    ["#", "STARTED", "ENDED", "OUTCOME", "ERROR"],
                    [
                        [
                            a["number"],
                            _time(a["started_at"]),
                            _time(a["ended_at"]),
                            a["outcome"],
                            _short(a["error"], 60),
                        ]
                        for a in attempts
                    ],
                ).replace("\n", "\n  ")
            )
        if lines:
            self.stdout.write(f"\nLog (last {len(lines)} line(s)):")
            for line in lines:
                self.stdout.write(_log_text(line))

    @staticmethod
    def _text(value: Any) -> str:
        if value is None:
            return "-"
        if hasattr(value, "tzinfo") and hasattr(value, "hour"):
            return timezone.localtime(value).isoformat(sep=" ", timespec="seconds")
        if isinstance(value, dict | list):
            return json.dumps(value, cls=DjangoJSONEncoder)
        return str(value)

    # ── watch ──────────────────────────────────────────────────────────────────

    def do_watch(self, options: dict) -> None:
        job_id, interval = options["job_id"], options["interval"]
        tty = self.stdout.isatty()
        state = {"last": None, "width": 0}
        logs = {"after": None}

        def print_logs() -> None:
            # One query per check: the lines after the last one shown (the last 10 on the first check).
            if options["no_logs"]:
                return
            if logs["after"] is None:
                new = tail(job_id, 10)
            else:
                new = list(JobLog.objects.filter(job_id=job_id, seq__gt=logs["after"]).order_by("seq")[:500])
            if not new:
                if logs["after"] is None:
                    logs["after"] = 0
                return
            logs["after"] = new[-1].seq
            if tty and state["width"]:
                self.stdout.write("\r" + " " * state["width"] + "\r", ending="")  # the bar is drawn again below
                state["last"], state["width"] = None, 0
            for line in new:
                self.stdout.write(_log_text(line))

        def draw(job_state: str, pct: int, label: str) -> None:
            shown = (job_state, pct, label)
            if shown == state["last"]:
                return
            state["last"] = shown
            if tty:
                line = f"{_bar(pct)} {pct:3d}%  {job_state}  {_short(label, 50)}".rstrip()
                # Pad over the previous, possibly longer, line.
                self.stdout.write("\r" + line.ljust(state["width"]), ending="")
                state["width"] = len(line)
                self.stdout.flush()
            else:
                self.stdout.write(f"job {job_id}: {job_state} {pct}% {label}".rstrip())

        store = _store()
        subscribe = getattr(store, "supports_subscribe", False)
        warned = False
        try:
            while True:
                row = self._row(job_id)
                if row.state in JOB_STATES_ENDED:
                    break
                store_ok = True

                def store_down(exc: Exception) -> None:  # keep watching the database while the store is away
                    nonlocal store_ok, warned
                    store_ok = False
                    warned = warned or self._warn_store(exc)

                view = live_progress([row], on_store_error=store_down)[job_id]
                pct, label = view.percentage, view.label
                print_logs()
                draw(row.state, pct, label)
                if subscribe and store_ok:
                    # Ends when the job ends or ``interval`` passes without an update; the
                    # database check above then catches ends the store never announces
                    # (a pending job cancelled, a job deleted).
                    started, heard = time.monotonic(), False
                    try:
                        for snap in store.subscribe(job_id, interval):
                            heard = True
                            if snap.state in JOB_STATES_ENDED:
                                break
                            draw(snap.state, snap.percentage, snap.label or row.progress_state)
                    except Exception as exc:
                        warned = warned or self._warn_store(exc)
                    if not heard:
                        # A subscription that ends at once with nothing to say must not spin.
                        time.sleep(max(0.0, interval - (time.monotonic() - started)))
                else:
                    time.sleep(interval)
        except KeyboardInterrupt:
            raise CommandError(
                f"Stopped watching; job {job_id} is unaffected. Cancel it with `manage.py ferry cancel {job_id}`.",
                returncode=EXIT_INTERRUPTED,
            ) from None
        print_logs()
        draw(row.state, row.progress_percentage, row.progress_state)
        if tty:
            self.stdout.write("")
        self.stdout.write(f"Job {job_id} {row.state}.")
        if row.state != JOB_FINISHED:
            reason = f": {row.error}" if row.error else ""
            raise CommandError(
                f"Job {job_id} {row.state}{reason}. See `manage.py ferry show {job_id}` for details.",
                # Any other unsuccessful end (a future timed-out state, say) reads as failed.
                returncode=EXIT_CANCELLED if row.state == JOB_CANCELLED else EXIT_FAILED,
            )

    def _warn_store(self, exc: Exception) -> bool:
        self.stderr.write(f"Live progress unavailable ({type(exc).__name__}: {exc}); showing database values.")
        return True

    @staticmethod
    def _row(job_id: int) -> Job:
        # Only the columns watch needs: it runs every ``interval`` seconds.
        job = (
            Job._base_manager.only("state", "progress_percentage", "progress_state", "error").filter(pk=job_id).first()
        )
        if job is None:
            raise JobDoesNotExist(job_id)
        return job

    # ── reap ───────────────────────────────────────────────────────────────────

    def do_reap(self, options: dict) -> None:
        from ...reaper import reap, reap_forever

        def report(result) -> None:
            if options["json"]:
                self._json(
                    {
                        "lost": result.lost,
                        "timed_out": result.timed_out,
                        "retried": result.retried,
                        "killed": result.killed,
                        "dispatched": result.dispatched,
                        "recovered": result.recovered,
                    }
                )
                return
            self.stdout.write(
                f"Reaped {len(result.lost)} job(s) with a lost worker and {len(result.timed_out)} timed-out "
                f"job(s) ({len(result.killed)} killed); {len(result.retried)} of them retried; "
                f"{len(result.dispatched)} due retr{'y' if len(result.dispatched) == 1 else 'ies'} dispatched; "
                f"{len(result.recovered)} lost deliver{'y' if len(result.recovered) == 1 else 'ies'} dispatched again."
            )

        if options["every"] is None:
            report(reap())
            return
        try:
            reap_forever(options["every"], on_pass=lambda result: report(result) if result else None)
        except KeyboardInterrupt:
            return

    # ── cancel ─────────────────────────────────────────────────────────────────

    def do_cancel(self, options: dict) -> None:
        job_id = options["job_id"]
        try:
            job = JobHandler.cancel(None, job_id)
        except JobNotCancellable as exc:
            raise CommandError(
                f"{exc} Only pending or running jobs can be cancelled; see `manage.py ferry show {job_id}`.",
                returncode=EXIT_NOT_CANCELLABLE,
            ) from None
        self.stdout.write(f"Job {job.pk} is {job.state}.")

    # ── cleanup ────────────────────────────────────────────────────────────────

    def do_cleanup(self, options: dict) -> None:
        days = options["days"]
        if days is None:
            days = conf.get_setting("JOB_EXPIRY_DAYS")
        if options["dry_run"]:
            count = JobHandler.old_jobs(days).count()
            self.stdout.write(f"Would delete {count} ended job(s) older than {days} day(s). Nothing was deleted.")
            return
        count = JobHandler.cleanup_old_jobs(days)
        self.stdout.write(f"Deleted {count} ended job(s) older than {days} day(s).")

    # ── stats ──────────────────────────────────────────────────────────────────

    def do_stats(self, options: dict) -> None:
        by_state = dict.fromkeys(ALL_STATES, 0)
        by_type: dict[str, int] = {}
        by_queue: dict[str, int] = {}
        rows = Job._base_manager.values_list("state", "type", "queue").annotate(n=Count("pk")).order_by()
        for state, job_type, queue, n in rows:
            by_state[state] = by_state.get(state, 0) + n
            by_type[job_type] = by_type.get(job_type, 0) + n
            by_queue[queue] = by_queue.get(queue, 0) + n
        data = {
            "total": sum(by_state.values()),
            "by_state": by_state,
            "by_type": dict(sorted(by_type.items())),
            "by_queue": dict(sorted(by_queue.items())),
            "queue_depths": dict(sorted(JobHandler.queue_depths().items())),
        }
        if options["json"]:
            self._json(data)
            return
        self.stdout.write(f"Jobs: {data['total']}")
        for title, key in (
            ("By state", "by_state"),
            ("By type", "by_type"),
            ("By queue", "by_queue"),
            ("Pending per queue", "queue_depths"),
        ):
            self.stdout.write(f"\n{title}:")
            if not data[key]:
                self.stdout.write("  (none)")
                continue
            width = max(len(k or "(none)") for k in data[key])
            for name, n in data[key].items():
                self.stdout.write(f"  {(name or '(none)').ljust(width)}  {n}")

    # ── plugins ────────────────────────────────────────────────────────────────

    def do_plugins(self, options: dict) -> None:
        data = {
            "executors": self._plugins(EXECUTORS, "EXECUTOR"),
            "progress_stores": self._plugins(PROGRESS_STORES, "PROGRESS_STORE"),
        }
        if options["json"]:
            self._json(data)
            return
        for title, key in (("Executors", "executors"), ("Progress stores", "progress_stores")):
            group = EXECUTORS if key == "executors" else PROGRESS_STORES
            self.stdout.write(f"{title} (entry-point group {group.group}):")
            rows = [
                ["*" if p["configured"] else "", p["name"], p["distribution"] or "-", p["version"] or "-", p["value"]]
                for p in data[key]
            ]
            self.stdout.write(
                "  " + _table(["", "NAME", "DISTRIBUTION", "VERSION", "CLASS"], rows).replace("\n", "\n  ")
            )
            self.stdout.write("")
        self.stdout.write('* = configured in settings.TASK_FERRY ("EXECUTOR" / "PROGRESS_STORE").')
        for key, group in (("executors", "EXECUTOR"), ("progress_stores", "PROGRESS_STORE")):
            if not any(p["configured"] for p in data[key]):
                self.stderr.write(
                    f'TASK_FERRY["{group}"] names no installed plugin ({self._configured_text(group)}). '
                    f"Run `manage.py check` for the fix."
                )

    @staticmethod
    def _configured_text(key: str) -> str:
        try:
            return repr(conf.parse_plugin_setting(key).backend)
        except ValueError as exc:
            return str(exc)

    @staticmethod
    def _plugins(group, key: str) -> list[dict]:
        """Installed plugins of ``group``; the configured one is marked. A setting given
        as a dotted path that no entry point names is listed as its own row."""
        try:
            configured = group.resolve_name(conf.parse_plugin_setting(key).backend)
        except ValueError:
            configured = None
        out = []
        for info in group.installed():
            is_configured = configured in (info.name, info.value, info.value.replace(":", "."))
            out.append(
                {
                    "name": info.name,
                    "value": info.value,
                    "distribution": info.distribution,
                    "version": info.version,
                    "configured": is_configured,
                }
            )
        if configured and "." in configured and not any(p["configured"] for p in out):
            out.append(
                {"name": configured, "value": configured, "distribution": None, "version": None, "configured": True}
            )
        return out
