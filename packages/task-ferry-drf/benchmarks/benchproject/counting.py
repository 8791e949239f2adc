"""Counts each request's database queries and Redis round trips into response headers
(``X-Bench-Queries``, ``X-Bench-Store-Trips``). Both sides carry it, so its small cost is
the same on both.

A Redis round trip is one ``send_packed_command`` of redis-py's connection: one per
command, one per pipeline. Django's RedisCache and the ``redis`` store both use redis-py.
The benchmark serves with one synchronous gunicorn worker, so plain counters suffice.
"""

from django.db import connection
from redis.connection import Connection

_trips = [0]
_send = Connection.send_packed_command


def _counted_send(self, command, check_health=True):
    _trips[0] += 1
    return _send(self, command, check_health)


Connection.send_packed_command = _counted_send


class CountingMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        queries = [0]

        def count(execute, sql, params, many, context):
            queries[0] += 1
            return execute(sql, params, many, context)

        _trips[0] = 0
        with connection.execute_wrapper(count):
            response = self.get_response(request)
        response["X-Bench-Queries"] = str(queries[0])
        response["X-Bench-Store-Trips"] = str(_trips[0])
        return response
