"""A faithful local emulator of the Amazon Augmented AI runtime (``sagemaker-a2i-runtime``)."""

__all__: list[str] = []
