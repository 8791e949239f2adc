"""The conformance kit of task-ferry-core, run against a real Redis (database 13)."""

import pytest
from django.conf import settings

from task_ferry.testing.store import ProgressStoreConformance


@pytest.mark.integration
class TestRedisProgressStore(ProgressStoreConformance):
    @pytest.fixture
    def progress_store_setting(self, redis_db13):
        return {"BACKEND": "redis", "OPTIONS": {"URL": settings.REDIS_TEST_URL, "KEY_PREFIX": "ferry_redis_kit:"}}
