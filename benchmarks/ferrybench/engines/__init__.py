"""One module per engine: an :class:`ferrybench.engine.Engine` subclass as ``ENGINE``."""
