"""The root tests' Django project: cross-package failure tests with real workers."""
