"""The one table: rows of every part, headed with the machine and the versions measured."""

from __future__ import annotations

COLUMNS = ("part", "measure", "ours", "peer", "ratio", "target")
HEAD = ("", "benchmark", "ours", "peer", "ratio", "target / note")


def num(value: float | int | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:,.2f}".rstrip("0").rstrip(".") if value else "0"


def markdown(rows: list[dict]) -> str:
    """A Markdown table; the part is named on its first row only."""
    lines = ["| " + " | ".join(HEAD) + " |", "|---|---|--:|--:|--:|---|"]
    last = None
    for row in rows:
        cells = [row.get(c, "") for c in COLUMNS]
        if row.get("note"):
            cells[-1] = "; ".join(x for x in (cells[-1], row["note"]) if x)
        if cells[0] == last:
            cells[0] = ""
        else:
            last = cells[0]
        cells[1] = cells[1].replace("  ", "&nbsp;&nbsp;", 1) if cells[1].startswith("  ") else cells[1]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def header(info: dict) -> str:
    m, v = info["machine"], info["versions"]
    ram = f", {m['ram_gib']:.1f} GiB RAM" if m.get("ram_gib") else ""
    before, after = (" / ".join(f"{x:.2f}" for x in info[k]) for k in ("load_before", "load_after"))
    src = info["source"]
    ours = f"task-ferry {v.get('task-ferry-core', '?')} (commit {src['commit']}"
    ours += ", plus uncommitted changes)" if src.get("modified") else ")"

    def ver(name: str, label: str | None = None) -> str:
        return f"{label or name} {v[name]}" if name in v else ""

    packages = [ours, ver("django-task-ferry"), ver("django", "Django"), ver("celery"), ver("kombu"), ver("rq"),
                ver("dramatiq"), ver("django-tasks"), ver("django-tasks-db"), ver("djangorestframework"),
                ver("redis", "redis-py"), ver("psycopg"), ver("gunicorn")]  # fmt: skip
    servers = [
        f"Redis server {info['servers'].get('redis', '?')}",
        f"PostgreSQL {info['servers'].get('postgresql', '?')}",
    ]
    return "\n".join(
        [
            f"- machine: {m['cpu']}, {m['cores']} cores{ram}; load average (1/5/15 min) before {before}, after {after}",
            f"- OS: {m['os']}; Python {v.get('python', '?')}",
            "- measured: " + ", ".join(p for p in packages if p),
            "- servers: " + ", ".join(servers),
            f"- command: `{info['command']}` ({info['minutes']:.1f} min; parts: {', '.join(info['parts'])})",
        ]
    )
