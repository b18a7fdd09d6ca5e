// The AWS SDK for JavaScript v3, unmodified, against the local A2I emulator.
//
// Run by tests/clients/test_js_sdk.py (which starts the emulator and passes):
//   A2I_URL         the emulator (A2I runtime and SageMaker on one port)
//   OUTPUT_S3_URI   an existing bucket/prefix for Completed loops' output.json
//   ERROR_STATUS    {"<service>": {"<Code>": status}} from the botocore models
//   COVERAGE_FILE   where to write the ["<Operation>:<Code|OK>", ...] this suite saw
// Every call goes through `ok()` or `fails()`, which record what was seen; the Python side
// checks that every operation and every error the models declare was exercised.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { after, before, test } from "node:test";

import {
  CreateFlowDefinitionCommand,
  CreateHumanTaskUiCommand,
  DeleteFlowDefinitionCommand,
  DeleteHumanTaskUiCommand,
  DescribeFlowDefinitionCommand,
  DescribeHumanTaskUiCommand,
  ListFlowDefinitionsCommand,
  ListHumanTaskUisCommand,
  paginateListFlowDefinitions,
  paginateListHumanTaskUis,
} from "@aws-sdk/client-sagemaker";
import {
  DeleteHumanLoopCommand,
  DescribeHumanLoopCommand,
  ListHumanLoopsCommand,
  StartHumanLoopCommand,
  StopHumanLoopCommand,
  paginateListHumanLoops,
} from "@aws-sdk/client-sagemaker-a2i-runtime";

import { ACCOUNT, OUTPUT, REGION, a2i, control, fails, ok, seen, sm, until } from "./harness.mjs";

const input = (n) => ({ InputContent: JSON.stringify({ invoice: n, confidence: 0.42 }) });
let uiArn;
let flowArn;

const flowCommand = (name) =>
  new CreateFlowDefinitionCommand({
      FlowDefinitionName: name,
      RoleArn: `arn:aws:iam::${ACCOUNT}:role/a2i-js`,
      OutputConfig: { S3OutputPath: OUTPUT },
      HumanLoopConfig: {
        WorkteamArn: `arn:aws:sagemaker:${REGION}:${ACCOUNT}:workteam/private-crowd/js`,
        HumanTaskUiArn: uiArn,
        TaskTitle: "Check an invoice",
        TaskDescription: "Is the total right?",
        TaskCount: 1,
      },
  });

async function newFlow(name) {
  return (await ok(sm, flowCommand(name))).FlowDefinitionArn;
}

async function active(name) {
  await until(async () => {
    const d = await ok(sm, new DescribeFlowDefinitionCommand({ FlowDefinitionName: name }));
    return d.FlowDefinitionStatus === "Active";
  }, `${name} Active`);
}

before(async () => {
  await control("POST", "/reset", { all: true });
  const ui = await ok(
    sm,
    new CreateHumanTaskUiCommand({
      HumanTaskUiName: "js-ui",
      UiTemplate: { Content: "<crowd-form><crowd-input name='total'></crowd-input></crowd-form>" },
    }),
  );
  uiArn = ui.HumanTaskUiArn;
  flowArn = await newFlow("js-flow");
});

after(() => {
  writeFileSync(process.env.COVERAGE_FILE, JSON.stringify([...seen].sort()));
});

test("flow definitions: Initializing -> Active, Describe echoes what was created", async () => {
  const d = await ok(sm, new DescribeFlowDefinitionCommand({ FlowDefinitionName: "js-flow" }));
  assert.equal(d.FlowDefinitionStatus, "Initializing");
  assert.ok(d.CreationTime instanceof Date, "CreationTime parses to a Date");
  assert.ok(Math.abs(Date.now() - d.CreationTime.getTime()) < 60_000);
  assert.equal(d.HumanLoopConfig.HumanTaskUiArn, uiArn);
  assert.equal(d.OutputConfig.S3OutputPath, OUTPUT);
  assert.equal(d.FailureReason, undefined);
  await active("js-flow");
  await control("PUT", "/flow-definitions/js-flow/reviewers", { mode: "manual", stop_delay: 0 });
});

test("task UIs: describe, list with pagination", async () => {
  const d = await ok(sm, new DescribeHumanTaskUiCommand({ HumanTaskUiName: "js-ui" }));
  assert.equal(d.HumanTaskUiStatus, "Active");
  assert.ok(d.CreationTime instanceof Date);
  assert.match(d.UiTemplate.ContentSha256, /^[0-9a-f]{64}$/);
  for (const name of ["js-ui-2", "js-ui-3"]) {
    await ok(
      sm,
      new CreateHumanTaskUiCommand({ HumanTaskUiName: name, UiTemplate: { Content: "<p/>" } }),
    );
  }
  const names = [];
  for await (const page of paginateListHumanTaskUis(
    { client: sm, pageSize: 2 },
    { SortOrder: "Ascending" },
  )) {
    seen.add("ListHumanTaskUis:OK");
    assert.ok(page.HumanTaskUiSummaries.length <= 2);
    names.push(...page.HumanTaskUiSummaries.map((s) => s.HumanTaskUiName));
  }
  assert.deepEqual(names, ["js-ui", "js-ui-2", "js-ui-3"]);
  await ok(sm, new DeleteHumanTaskUiCommand({ HumanTaskUiName: "js-ui-3" }));
  await until(
    async () => {
      const page = await ok(sm, new ListHumanTaskUisCommand({}));
      return !page.HumanTaskUiSummaries.some((s) => s.HumanTaskUiName === "js-ui-3");
    },
    "js-ui-3 gone",
  );
});

test("start, idempotent repeat, describe", async () => {
  const started = await ok(
    a2i,
    new StartHumanLoopCommand({
      HumanLoopName: "js-0",
      FlowDefinitionArn: flowArn,
      HumanLoopInput: input(0),
      DataAttributes: { ContentClassifiers: ["FreeOfPersonallyIdentifiableInformation"] },
    }),
  );
  assert.equal(started.HumanLoopArn, `arn:aws:sagemaker:${REGION}:${ACCOUNT}:human-loop/js-0`);
  const again = await ok(
    a2i,
    new StartHumanLoopCommand({
      HumanLoopName: "js-0",
      FlowDefinitionArn: flowArn,
      HumanLoopInput: input(0),
      DataAttributes: { ContentClassifiers: ["FreeOfPersonallyIdentifiableInformation"] },
    }),
  );
  assert.equal(again.HumanLoopArn, started.HumanLoopArn);
  const d = await ok(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-0" }));
  assert.equal(d.HumanLoopStatus, "InProgress");
  assert.equal(d.FlowDefinitionArn, flowArn);
  assert.ok(d.CreationTime instanceof Date, "CreationTime parses to a Date");
  assert.ok(Math.abs(Date.now() - d.CreationTime.getTime()) < 60_000);
  assert.equal(d.FailureReason, undefined);
  assert.equal(d.HumanLoopOutput, undefined);
});

test("list: pagination, both sort orders, creation-time filters", async () => {
  for (let i = 1; i < 7; i++) {
    await ok(
      a2i,
      new StartHumanLoopCommand({
        HumanLoopName: `js-${i}`,
        FlowDefinitionArn: flowArn,
        HumanLoopInput: input(i),
      }),
    );
  }
  const collect = async (order) => {
    const names = [];
    for await (const page of paginateListHumanLoops(
      { client: a2i, pageSize: 3 },
      { FlowDefinitionArn: flowArn, SortOrder: order },
    )) {
      seen.add("ListHumanLoops:OK");
      assert.ok(page.HumanLoopSummaries.length <= 3);
      for (const s of page.HumanLoopSummaries) {
        assert.ok(s.CreationTime instanceof Date);
        assert.equal(s.FlowDefinitionArn, flowArn);
      }
      names.push(...page.HumanLoopSummaries.map((s) => s.HumanLoopName));
    }
    return names;
  };
  const asc = await collect("Ascending");
  assert.deepEqual(asc, ["js-0", "js-1", "js-2", "js-3", "js-4", "js-5", "js-6"]);
  assert.deepEqual(await collect("Descending"), [...asc].reverse());
  const first = await ok(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-3" }));
  const after_ = await ok(
    a2i,
    new ListHumanLoopsCommand({
      FlowDefinitionArn: flowArn,
      CreationTimeAfter: first.CreationTime,
      SortOrder: "Ascending",
    }),
  );
  assert.deepEqual(
    after_.HumanLoopSummaries.map((s) => s.HumanLoopName),
    ["js-3", "js-4", "js-5", "js-6"],
  );
  const before_ = await ok(
    a2i,
    new ListHumanLoopsCommand({
      FlowDefinitionArn: flowArn,
      CreationTimeBefore: new Date(first.CreationTime.getTime() - 86_400_000),
    }),
  );
  assert.deepEqual(before_.HumanLoopSummaries, []);
  assert.equal(before_.NextToken, undefined);
});

test("stop, delete, and a Completed loop's output", async () => {
  await ok(a2i, new StopHumanLoopCommand({ HumanLoopName: "js-1" }));
  const stopped = await ok(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-1" }));
  assert.equal(stopped.HumanLoopStatus, "Stopped");
  await ok(a2i, new DeleteHumanLoopCommand({ HumanLoopName: "js-1" }));
  await fails(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-1" }), "ResourceNotFoundException");

  await control("POST", "/human-loops/js-2/finish", { outcome: "Completed" });
  const done = await ok(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-2" }));
  assert.equal(done.HumanLoopStatus, "Completed");
  assert.match(done.HumanLoopOutput.OutputS3Uri, /^s3:\/\/.+\/js-flow\/\d{4}\/\d{2}\/\d{2}\/.+\/js-2\/output\.json$/);
  await control("POST", "/human-loops/js-3/finish", { outcome: "Expired" });
  const expired = await ok(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "js-3" }));
  assert.equal(expired.HumanLoopStatus, "Failed");
  assert.equal(expired.FailureCode, "Expired");
  assert.ok(expired.FailureReason.length > 0);
});

test("A2I runtime: every modeled error", async () => {
  const bad = "Not_A_Valid_Name";
  const start = (name, n = 0, arn = flowArn) =>
    new StartHumanLoopCommand({ HumanLoopName: name, FlowDefinitionArn: arn, HumanLoopInput: input(n) });
  await fails(a2i, start(bad), "ValidationException");
  await fails(a2i, start("js-0", 99), "ConflictException");
  await fails(a2i, new DescribeHumanLoopCommand({ HumanLoopName: bad }), "ValidationException");
  await fails(a2i, new StopHumanLoopCommand({ HumanLoopName: bad }), "ValidationException");
  await fails(a2i, new DeleteHumanLoopCommand({ HumanLoopName: "js-0" }), "ValidationException");
  await fails(
    a2i,
    new ListHumanLoopsCommand({ FlowDefinitionArn: flowArn, NextToken: "not-a-token" }),
    "ValidationException",
  );
  await fails(a2i, new DescribeHumanLoopCommand({ HumanLoopName: "nope" }), "ResourceNotFoundException");
  await fails(a2i, new StopHumanLoopCommand({ HumanLoopName: "nope" }), "ResourceNotFoundException");
  await fails(a2i, new DeleteHumanLoopCommand({ HumanLoopName: "nope" }), "ResourceNotFoundException");
  await fails(
    a2i,
    new ListHumanLoopsCommand({ FlowDefinitionArn: `${flowArn}-missing` }),
    "ResourceNotFoundException",
  );

  const counters = await control("GET", "/counters");
  const open = counters.loops_by_status.InProgress + counters.loops_by_status.Stopping;
  await control("PUT", "/quotas", { max_in_progress: open });
  await fails(a2i, start("js-over-cap"), "ServiceQuotaExceededException");
  await control("PUT", "/quotas", { max_in_progress: null });

  const calls = {
    StartHumanLoop: () => start("js-fault"),
    DescribeHumanLoop: () => new DescribeHumanLoopCommand({ HumanLoopName: "js-0" }),
    StopHumanLoop: () => new StopHumanLoopCommand({ HumanLoopName: "js-0" }),
    DeleteHumanLoop: () => new DeleteHumanLoopCommand({ HumanLoopName: "js-0" }),
    ListHumanLoops: () => new ListHumanLoopsCommand({ FlowDefinitionArn: flowArn }),
  };
  for (const [op, make] of Object.entries(calls)) {
    await control("PUT", "/faults", { operations: { [op]: { error_rate: 1 } } });
    await fails(a2i, make(), "InternalServerException");
    await control("PUT", "/faults", { operations: { [op]: null } });
    await control("PUT", "/quotas", { rates: { [op]: { rate: 0.001, burst: 1 } } });
    try {
      await a2i.send(make()); // takes the bucket's only token, whatever it answers
    } catch {}
    await fails(a2i, make(), "ThrottlingException");
    await control("PUT", "/quotas", { rates: { [op]: null } });
  }
});

test("SageMaker: every modeled error, list pagination, delete lifecycle", async () => {
  await fails(
    sm,
    new CreateHumanTaskUiCommand({ HumanTaskUiName: "js-ui", UiTemplate: { Content: "<p/>" } }),
    "ResourceInUse",
  );
  await fails(sm, new DescribeHumanTaskUiCommand({ HumanTaskUiName: "nope" }), "ResourceNotFound");
  await fails(sm, new DeleteHumanTaskUiCommand({ HumanTaskUiName: "nope" }), "ResourceNotFound");
  await fails(sm, new DescribeFlowDefinitionCommand({ FlowDefinitionName: "nope" }), "ResourceNotFound");
  await fails(sm, new DeleteFlowDefinitionCommand({ FlowDefinitionName: "nope" }), "ResourceNotFound");
  await fails(sm, flowCommand("js-flow"), "ResourceInUse");
  // js-flow still has loops in progress
  await fails(sm, new DeleteFlowDefinitionCommand({ FlowDefinitionName: "js-flow" }), "ResourceInUse");
  await fails(
    sm,
    new CreateFlowDefinitionCommand({
      FlowDefinitionName: "js-bad",
      RoleArn: "not-a-role",
      OutputConfig: { S3OutputPath: OUTPUT },
    }),
    "ValidationException",
  );

  const counters = await control("GET", "/counters");
  await control("PUT", "/quotas", {
    max_flow_definitions: counters.flow_definitions,
    max_human_task_uis: counters.human_task_uis,
  });
  await fails(sm, flowCommand("js-over"), "ResourceLimitExceeded");
  await fails(
    sm,
    new CreateHumanTaskUiCommand({ HumanTaskUiName: "js-ui-over", UiTemplate: { Content: "<p/>" } }),
    "ResourceLimitExceeded",
  );
  await control("PUT", "/quotas", { max_flow_definitions: null, max_human_task_uis: null });

  for (const name of ["js-b", "js-c", "js-d"]) await newFlow(name);
  const names = [];
  for await (const page of paginateListFlowDefinitions(
    { client: sm, pageSize: 2 },
    { SortOrder: "Ascending" },
  )) {
    seen.add("ListFlowDefinitions:OK");
    assert.ok(page.FlowDefinitionSummaries.length <= 2);
    for (const s of page.FlowDefinitionSummaries) assert.ok(s.CreationTime instanceof Date);
    names.push(...page.FlowDefinitionSummaries.map((s) => s.FlowDefinitionName));
  }
  assert.deepEqual(names, ["js-flow", "js-b", "js-c", "js-d"]);
  const desc = await ok(sm, new ListFlowDefinitionsCommand({ SortOrder: "Descending", MaxResults: 1 }));
  assert.equal(desc.FlowDefinitionSummaries[0].FlowDefinitionName, "js-d");
  assert.ok(desc.NextToken);

  await ok(sm, new DeleteFlowDefinitionCommand({ FlowDefinitionName: "js-d" }));
  const deleting = await ok(sm, new DescribeFlowDefinitionCommand({ FlowDefinitionName: "js-d" }));
  assert.equal(deleting.FlowDefinitionStatus, "Deleting");
  await until(async () => {
    try {
      await sm.send(new DescribeFlowDefinitionCommand({ FlowDefinitionName: "js-d" }));
      return false;
    } catch (err) {
      return err.name === "ResourceNotFound";
    }
  }, "js-d gone");
  // a UI still used by a flow cannot go (not a modeled error of DeleteHumanTaskUi)
  await fails(sm, new DeleteHumanTaskUiCommand({ HumanTaskUiName: "js-ui" }), "ValidationException");
});
