"""Progress stores bundled with core: ``cache`` and ``database``."""
