"""A faithful local emulator of the Amazon Augmented AI runtime (``sagemaker-a2i-runtime``).

Start one with :class:`EmulatorServer` (or ``a2i-emulator serve``), point an unmodified
aioboto3/boto3 ``sagemaker-a2i-runtime`` client at its URL, and steer it with
:class:`EmulatorControl`.
"""

from a2i_emulator.control import ControlAPIError, EmulatorControl
from a2i_emulator.server import EmulatorConfig, EmulatorServer

__all__ = ["ControlAPIError", "EmulatorConfig", "EmulatorControl", "EmulatorServer"]
