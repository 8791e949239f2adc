"""A client given to the store by dotted path (``OPTIONS["CLIENT"]``) in the tests."""

import redis
from django.conf import settings

# Building a client does not connect; the store imports this module on first use.
test_client = redis.Redis.from_url(settings.REDIS_TEST_URL)
