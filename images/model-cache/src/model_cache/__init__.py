"""model-cache: cache Hugging Face model snapshots in an S3 bucket and restore them."""

__version__ = "0.1.0"
