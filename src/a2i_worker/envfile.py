"""The ``AWS_*`` lines of the ``A2I_WORKER_ENV_FILE`` file, for botocore.

Settings read the file's ``A2I_WORKER_*`` lines themselves (:mod:`a2i_worker.settings`);
botocore reads only the real environment, so the CLI exports the file's ``AWS_*`` lines into
it first (real variables win). One file written by ``a2i-worker local`` then configures a
worker completely: ``A2I_WORKER_ENV_FILE=<file> a2i-worker run``.
"""

from __future__ import annotations

import os
from pathlib import Path

from dotenv import dotenv_values

from a2i_worker.settings import ENV_FILE_VARIABLE

__all__ = ["export_env_file_aws_variables"]


def export_env_file_aws_variables(environ: dict[str, str] | None = None) -> list[str]:
    """Copy the ``AWS_*`` lines of the ``A2I_WORKER_ENV_FILE`` file into ``environ``
    (``os.environ`` by default) where not already set; returns the names copied.

    botocore reads only the real environment, so without this a file that points every
    endpoint at the local stack would leave the worker talking to the default ones.
    """
    target = os.environ if environ is None else environ
    path = target.get(ENV_FILE_VARIABLE)
    if not path or not Path(path).is_file():
        return []
    copied: list[str] = []
    for key, value in dotenv_values(path).items():
        if key.upper().startswith("AWS_") and value is not None and key not in target:
            target[key] = value
            copied.append(key)
    return copied
