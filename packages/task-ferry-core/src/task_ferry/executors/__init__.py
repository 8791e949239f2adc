from .base import BaseExecutor
from .immediate import ImmediateExecutor

__all__ = ["BaseExecutor", "ImmediateExecutor"]
