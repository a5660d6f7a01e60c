"""hub-gateway: the in-cluster Hugging Face Hub API proxy and Hub mirror of the model-cache bucket."""

__version__ = "0.1.0"
