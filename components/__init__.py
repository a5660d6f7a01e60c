"""gpu-platform component resources: one concern per module."""
