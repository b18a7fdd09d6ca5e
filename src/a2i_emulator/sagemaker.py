"""The SageMaker control-plane subset of A2I: flow definitions and human task UIs.

Operations take the input validated against the ``sagemaker`` model
(:mod:`a2i_emulator.validation`) and return the output as a plain ``dict`` for
:func:`a2i_emulator.wire.serialize_output`, or raise :class:`ApiError` with a code the
model declares for the operation (ResourceNotFound, ResourceInUse, ResourceLimitExceeded)
or a common one (ValidationException).

Semantics beyond the model, as documented for SageMaker or decided here (docs/INTERNALS.md):
- ``HumanLoopConfig.HumanTaskUiArn`` must name an existing task UI (ValidationException).
- ``HumanLoopActivationConfig`` needs ``HumanLoopRequestSource`` (built-in task types only)
  and ``HumanLoopActivationConditions`` must be a JSON object (ValidationException).
- DeleteFlowDefinition of a flow with open loops (InProgress/Stopping) is ResourceInUse
  (decision); DeleteHumanTaskUi of a UI that an existing flow uses is ValidationException
  (decision: the model declares only ResourceNotFound for it).
- ResourceLimitExceeded when a quota (``max_flow_definitions``, ``max_human_task_uis``,
  control API ``/_emulator/quotas``) would be exceeded.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Mapping
from typing import Any

from a2i_emulator.errors import ApiError
from a2i_emulator.flows import (
    FlowDefinition,
    FlowRegistry,
    HumanTaskUi,
    InUseError,
    NotFoundError,
    Registry,
)
from a2i_emulator.publisher import split_s3_uri
from a2i_emulator.quotas import Quotas
from a2i_emulator.reviewers import ReviewerSpec
from a2i_emulator.tokens import TokenCodec, TokenError

__all__ = ["SageMakerOps"]

_ECHOED = (
    "HumanLoopRequestSource",
    "HumanLoopActivationConfig",
    "HumanLoopConfig",
)


def _epoch(value: dt.datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.timestamp()


class SageMakerOps:
    """Flow definitions and task UIs of one emulated account and region."""

    def __init__(
        self,
        *,
        region: str,
        account_id: str,
        quotas: Callable[[], Quotas],
        open_loops_of: Callable[[str], int],
        clock: Callable[[], float],
        tokens: TokenCodec,
        activation_seconds: float = 0.2,
        deletion_seconds: float = 0.2,
    ) -> None:
        self._arn = f"arn:aws:sagemaker:{region}:{account_id}:"
        self._quotas = quotas
        self._open_loops_of = open_loops_of
        self._clock = clock
        self.activation_seconds = activation_seconds
        self.flows = FlowRegistry("Flow definition", tokens, clock, deletion_seconds)
        self.task_uis: Registry[HumanTaskUi] = Registry(
            "Human task UI", tokens, clock, deletion_seconds
        )

    # -- flow definitions ------------------------------------------------------------------

    def add_flow(
        self,
        name: str,
        output_s3_uri: str,
        role_arn: str,
        *,
        request: Mapping[str, Any] | None = None,
        reviewers: ReviewerSpec | None = None,
        active_now: bool = False,
    ) -> FlowDefinition:
        """Create a flow definition (the path of CreateFlowDefinition and of ``serve --flow``)."""
        cap = self._quotas().max_flow_definitions
        if cap is not None and len(self.flows) >= cap:
            raise ApiError(
                "ResourceLimitExceeded",
                f"The account-level limit of {cap} flow definitions has been reached.",
            )
        try:
            bucket, prefix = split_s3_uri(output_s3_uri)
        except ValueError:
            raise ApiError(
                "ValidationException",
                "OutputConfig.S3OutputPath must be an s3://bucket/prefix URI.",
            ) from None
        now = self._clock()
        flow = FlowDefinition(
            name=name,
            arn=f"{self._arn}flow-definition/{name}",
            output_s3_uri=output_s3_uri,
            bucket=bucket,
            prefix=prefix,
            role_arn=role_arn,
            creation_time=now,
            request=dict(request or {}),
            reviewers=reviewers,
            active_after=now if active_now else now + self.activation_seconds,
        )
        try:
            return self.flows.add(flow)
        except InUseError as exc:
            raise ApiError("ResourceInUse", str(exc)) from None

    def create_flow_definition(self, params: Mapping[str, Any]) -> dict[str, Any]:
        config = params.get("HumanLoopConfig")
        if config is not None:
            ui_name = config["HumanTaskUiArn"].rpartition("/")[2]
            ui = self.task_uis.find(ui_name)
            if ui is None or ui.arn != config["HumanTaskUiArn"]:
                raise ApiError(
                    "ValidationException",
                    f"Human task UI {config['HumanTaskUiArn']} does not exist.",
                )
        activation = params.get("HumanLoopActivationConfig")
        if activation is not None:
            if "HumanLoopRequestSource" not in params:
                raise ApiError(
                    "ValidationException",
                    "HumanLoopActivationConfig is only supported together with "
                    "HumanLoopRequestSource (built-in task types).",
                )
            text = activation["HumanLoopActivationConditionsConfig"][
                "HumanLoopActivationConditions"
            ]
            try:
                conditions = json.loads(text)
            except ValueError:
                conditions = None
            if not isinstance(conditions, dict):
                raise ApiError(
                    "ValidationException",
                    "HumanLoopActivationConditions must be a JSON object.",
                )
        flow = self.add_flow(
            params["FlowDefinitionName"],
            params["OutputConfig"]["S3OutputPath"],
            params["RoleArn"],
            request={k: params[k] for k in (*_ECHOED, "OutputConfig") if k in params},
        )
        return {"FlowDefinitionArn": flow.arn}

    def _flow(self, name: str) -> FlowDefinition:
        try:
            return self.flows.get(name)
        except NotFoundError as exc:
            raise ApiError("ResourceNotFound", str(exc)) from None

    def describe_flow_definition(self, params: Mapping[str, Any]) -> dict[str, Any]:
        flow = self._flow(params["FlowDefinitionName"])
        out: dict[str, Any] = {
            "FlowDefinitionArn": flow.arn,
            "FlowDefinitionName": flow.name,
            "FlowDefinitionStatus": self.flows.status(flow),
            "CreationTime": flow.creation_time,
            "OutputConfig": flow.request.get("OutputConfig")
            or {"S3OutputPath": flow.output_s3_uri},
            "RoleArn": flow.role_arn,
        }
        for key in _ECHOED:
            if key in flow.request:
                out[key] = flow.request[key]
        return out

    def list_flow_definitions(self, params: Mapping[str, Any]) -> dict[str, Any]:
        page = self._page(self.flows, params)
        summaries = [
            {
                "FlowDefinitionName": f.name,
                "FlowDefinitionArn": f.arn,
                "FlowDefinitionStatus": self.flows.status(f),
                "CreationTime": f.creation_time,
            }
            for f in page.items
        ]
        out: dict[str, Any] = {"FlowDefinitionSummaries": summaries}
        if page.next_token is not None:
            out["NextToken"] = page.next_token
        return out

    def delete_flow_definition(self, params: Mapping[str, Any]) -> dict[str, Any]:
        flow = self._flow(params["FlowDefinitionName"])
        open_loops = self._open_loops_of(flow.arn)
        if open_loops:
            raise ApiError(
                "ResourceInUse",
                f"Flow definition {flow.name} has {open_loops} human loops in progress; "
                "stop them before deleting it.",
            )
        self.flows.delete(flow.name)
        return {}

    # -- human task UIs --------------------------------------------------------------------

    def create_human_task_ui(self, params: Mapping[str, Any]) -> dict[str, Any]:
        cap = self._quotas().max_human_task_uis
        if cap is not None and len(self.task_uis) >= cap:
            raise ApiError(
                "ResourceLimitExceeded",
                f"The account-level limit of {cap} human task UIs has been reached.",
            )
        name = params["HumanTaskUiName"]
        ui = HumanTaskUi(
            name=name,
            arn=f"{self._arn}human-task-ui/{name}",
            template=params["UiTemplate"]["Content"],
            creation_time=self._clock(),
        )
        try:
            self.task_uis.add(ui)
        except InUseError as exc:
            raise ApiError("ResourceInUse", str(exc)) from None
        return {"HumanTaskUiArn": ui.arn}

    def _ui(self, name: str) -> HumanTaskUi:
        try:
            return self.task_uis.get(name)
        except NotFoundError as exc:
            raise ApiError("ResourceNotFound", str(exc)) from None

    def describe_human_task_ui(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ui = self._ui(params["HumanTaskUiName"])
        return {
            "HumanTaskUiArn": ui.arn,
            "HumanTaskUiName": ui.name,
            "HumanTaskUiStatus": self.task_uis.status(ui),
            "CreationTime": ui.creation_time,
            "UiTemplate": {"ContentSha256": ui.content_sha256},
        }

    def list_human_task_uis(self, params: Mapping[str, Any]) -> dict[str, Any]:
        page = self._page(self.task_uis, params)
        out: dict[str, Any] = {
            "HumanTaskUiSummaries": [
                {
                    "HumanTaskUiName": u.name,
                    "HumanTaskUiArn": u.arn,
                    "CreationTime": u.creation_time,
                }
                for u in page.items
            ]
        }
        if page.next_token is not None:
            out["NextToken"] = page.next_token
        return out

    def delete_human_task_ui(self, params: Mapping[str, Any]) -> dict[str, Any]:
        ui = self._ui(params["HumanTaskUiName"])
        users = [
            f.name
            for f in self.flows
            if f.request.get("HumanLoopConfig", {}).get("HumanTaskUiArn") == ui.arn
        ]
        if users:
            raise ApiError(
                "ValidationException",
                f"Human task UI {ui.name} is used by flow definitions: {', '.join(users)}.",
            )
        self.task_uis.delete(ui.name)
        return {}

    # -- shared ------------------------------------------------------------------------------

    def _page(self, registry: Registry[Any], params: Mapping[str, Any]) -> Any:
        try:
            return registry.list(
                after=_epoch(params.get("CreationTimeAfter")),
                before=_epoch(params.get("CreationTimeBefore")),
                sort_order=params.get("SortOrder", "Descending"),
                max_results=params.get("MaxResults", 10),
                next_token=params.get("NextToken"),
            )
        except TokenError as exc:
            raise ApiError("ValidationException", exc.message) from None

    def handlers(self) -> dict[str, Callable[[Mapping[str, Any]], dict[str, Any]]]:
        """Operation name -> handler, for the call pipeline."""
        return {
            "CreateFlowDefinition": self.create_flow_definition,
            "DescribeFlowDefinition": self.describe_flow_definition,
            "ListFlowDefinitions": self.list_flow_definitions,
            "DeleteFlowDefinition": self.delete_flow_definition,
            "CreateHumanTaskUi": self.create_human_task_ui,
            "DescribeHumanTaskUi": self.describe_human_task_ui,
            "ListHumanTaskUis": self.list_human_task_uis,
            "DeleteHumanTaskUi": self.delete_human_task_ui,
        }
