"""The botocore service models the emulator serves, and what follows from them.

Two services share one HTTP port: A2I runtime (``sagemaker-a2i-runtime``, REST-JSON, routed
by method and path) and the A2I subset of the SageMaker control plane (``sagemaker``,
JSON 1.1, routed by ``X-Amz-Target``). Everything the wire depends on (protocols, error
codes and their HTTP status, which errors an operation may answer, member shapes) is read
from the models installed with botocore, loaded once per process; nothing here is typed in
by hand except the list of operations served and the few *common* errors every AWS service
may answer without declaring them in its model.
"""

from __future__ import annotations

import functools
from typing import Final

import botocore.loaders
import botocore.model

__all__ = [
    "A2I_OPERATIONS",
    "A2I_RUNTIME",
    "ALL_OPERATIONS",
    "API_VERSIONS",
    "COMMON_ERRORS",
    "SAGEMAKER",
    "SAGEMAKER_OPERATIONS",
    "declared_errors",
    "error_status",
    "operation_model",
    "service_model",
    "service_of",
]

A2I_RUNTIME: Final = "sagemaker-a2i-runtime"
SAGEMAKER: Final = "sagemaker"
API_VERSIONS: Final = {A2I_RUNTIME: "2019-11-07", SAGEMAKER: "2017-07-24"}

A2I_OPERATIONS: tuple[str, ...] = (
    "StartHumanLoop",
    "DescribeHumanLoop",
    "DeleteHumanLoop",
    "StopHumanLoop",
    "ListHumanLoops",
)
"""Every operation of ``sagemaker-a2i-runtime`` (the conformance test checks the model)."""

SAGEMAKER_OPERATIONS: tuple[str, ...] = (
    "CreateFlowDefinition",
    "DescribeFlowDefinition",
    "ListFlowDefinitions",
    "DeleteFlowDefinition",
    "CreateHumanTaskUi",
    "DescribeHumanTaskUi",
    "ListHumanTaskUis",
    "DeleteHumanTaskUi",
)
"""The SageMaker operations a user of A2I needs (flow definitions and worker task UIs)."""

ALL_OPERATIONS: tuple[str, ...] = A2I_OPERATIONS + SAGEMAKER_OPERATIONS

COMMON_ERRORS: Final = {
    # Errors every AWS service may answer without declaring them in its model
    # ("Common Errors" of the API references); the status codes are the documented ones.
    "AccessDeniedException": 400,
    "ValidationException": 400,
    "ThrottlingException": 400,
    "UnknownOperationException": 400,
    "InternalFailure": 500,
    "ServiceUnavailable": 503,
}

_SERVICE_OF: Final = {
    **dict.fromkeys(A2I_OPERATIONS, A2I_RUNTIME),
    **dict.fromkeys(SAGEMAKER_OPERATIONS, SAGEMAKER),
}


@functools.cache
def service_model(service: str) -> botocore.model.ServiceModel:
    """The installed botocore model of ``service`` (loaded once per process)."""
    loader = botocore.loaders.create_loader()
    data = loader.load_service_model(service, "service-2", API_VERSIONS[service])
    return botocore.model.ServiceModel(data, service_name=service)


def service_of(operation: str) -> str:
    """The service an operation served here belongs to (``KeyError`` if not served)."""
    return _SERVICE_OF[operation]


@functools.cache
def operation_model(operation: str) -> botocore.model.OperationModel:
    return service_model(service_of(operation)).operation_model(operation)


@functools.cache
def declared_errors(operation: str) -> frozenset[str]:
    """Error codes the model lets ``operation`` answer (its own plus the common ones)."""
    own = {shape.name for shape in operation_model(operation).error_shapes}
    return frozenset(own | set(COMMON_ERRORS))


@functools.cache
def error_status(service: str, code: str) -> int:
    """HTTP status of error ``code`` of ``service``: the model's ``httpStatusCode``, 400 for a
    modeled error without one (the JSON protocols' default), else the common error's."""
    model = service_model(service)
    if code in model.shape_names:
        shape = model.shape_for(code)
        if shape.metadata.get("exception"):
            return int(shape.metadata.get("error", {}).get("httpStatusCode", 400))
    if code in COMMON_ERRORS:
        return COMMON_ERRORS[code]
    raise KeyError(f"{code} is not an error of {service}")
