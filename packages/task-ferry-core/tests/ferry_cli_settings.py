"""Settings for running ``manage.py ferry`` in a subprocess during the tests.

The test project's settings, pointed at the test database the pytest session
created: its name comes in ``FERRY_CLI_DB_NAME`` (the parent reads it from
``connection.settings_dict["NAME"]``). ``FERRY_TEST_DB`` is inherited, so the
engine matches the parent's.
"""

import os

from ferry_core_testproject.settings import *  # noqa: F403
from ferry_core_testproject.settings import DATABASES

DATABASES["default"]["NAME"] = os.environ["FERRY_CLI_DB_NAME"]
