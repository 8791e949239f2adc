"""drf-spectacular annotations when the ``schema`` extra is installed, inert stand-ins otherwise."""

from __future__ import annotations

try:
    from drf_spectacular.types import OpenApiTypes
    from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
except ImportError:  # the schema extra is optional

    class OpenApiTypes:  # type: ignore[no-redef]
        OBJECT = STR = None

    class _Inert:
        def __init__(self, *args, **kwargs) -> None:
            pass

    class OpenApiParameter(_Inert):  # type: ignore[no-redef]
        QUERY, PATH, HEADER, COOKIE = "query", "path", "header", "cookie"

    class OpenApiResponse(_Inert):  # type: ignore[no-redef]
        pass

    class OpenApiExample(_Inert):  # type: ignore[no-redef]
        pass

    def extend_schema(*args, **kwargs):  # type: ignore[no-redef]
        return lambda view: view


__all__ = ["OpenApiExample", "OpenApiParameter", "OpenApiResponse", "OpenApiTypes", "extend_schema"]
