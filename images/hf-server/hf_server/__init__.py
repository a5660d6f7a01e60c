"""hf-server: a small OpenAI-compatible server for one causal LM loaded with transformers.

The model is read from a local directory (the snapshot model-cache restored), optionally
quantised to 4-bit with bitsandbytes on a GPU, and loaded in a background thread so that
/health answers while it loads. torch and transformers are imported lazily by the engine:
the HTTP layer (and /health's error report) works even where they are missing.
"""

from .settings import Settings, SettingsError

__all__ = ["Settings", "SettingsError", "create_app"]
__version__ = "0.1.0"


def create_app(settings: Settings | None = None, engine=None):
    """Build the FastAPI app (see hf_server.app.create_app)."""
    from .app import create_app as _create_app

    return _create_app(settings, engine=engine)
