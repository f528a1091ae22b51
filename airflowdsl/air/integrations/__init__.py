"""AIR's ``ray.air.integrations`` import paths (``keras``: ``ReportCheckpointCallback``)."""
