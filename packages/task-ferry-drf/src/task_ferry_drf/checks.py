"""System checks of the REST API's settings.

=========================  ====================================================
``task_ferry_drf.E001``    a ``TASK_FERRY_DRF`` value has the wrong type or range
``task_ferry_drf.W001``    an unknown key in ``TASK_FERRY_DRF``
=========================  ====================================================
"""

from __future__ import annotations

import difflib

from django.core.checks import Error, Tags, Warning, register

from . import conf


@register(Tags.compatibility)
def check_settings(app_configs=None, **kwargs) -> list:
    messages: list = []
    for key in conf.user_settings():
        if key not in conf.DEFAULTS:
            close = difflib.get_close_matches(key, sorted(conf.DEFAULTS), n=1)
            messages.append(
                Warning(
                    f"TASK_FERRY_DRF has an unknown key {key!r}" + (f"; did you mean {close[0]!r}?" if close else "."),
                    hint=f"Known keys: {', '.join(sorted(conf.DEFAULTS))}.",
                    id="task_ferry_drf.W001",
                )
            )
    for key in conf.POSITIVE:
        value = conf.get(key)
        kind = int if key in conf.INTEGER else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or value <= 0:
            what = "a positive whole number" if key in conf.INTEGER else "a positive number of seconds"
            messages.append(Error(f'TASK_FERRY_DRF["{key}"] must be {what}, got {value!r}.', id="task_ferry_drf.E001"))
    token = conf.get("HEALTH_TOKEN")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        messages.append(
            Error(
                'TASK_FERRY_DRF["HEALTH_TOKEN"] must be None or a string of at least 16 characters.',
                hint="Generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                id="task_ferry_drf.E001",
            )
        )
    return messages
