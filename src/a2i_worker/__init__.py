"""a2i-worker: send model predictions to Amazon Augmented AI human review at volume."""

__all__ = ["__version__"]

__version__ = "0.1.0"
