// Shared by sdk_v3.test.mjs: the clients, and calls that record what they saw.
import assert from "node:assert/strict";

import { SageMakerClient } from "@aws-sdk/client-sagemaker";
import { SageMakerA2IRuntimeClient } from "@aws-sdk/client-sagemaker-a2i-runtime";

export const URL_ = process.env.A2I_URL;
export const OUTPUT = process.env.OUTPUT_S3_URI;
const STATUS = JSON.parse(process.env.ERROR_STATUS);
export const ACCOUNT = "123456789012";
export const REGION = "us-east-1";
const config = {
  region: REGION,
  endpoint: URL_,
  credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  maxAttempts: 1, // every Throttling/5xx must reach the test, not a retry
};
export const a2i = new SageMakerA2IRuntimeClient(config);
export const sm = new SageMakerClient(config);
export const seen = new Set();
const SERVICE = { a2i: "sagemaker-a2i-runtime", sm: "sagemaker" };

const opName = (command) => command.constructor.name.replace(/Command$/, "");
const serviceOf = (client) => (client === a2i ? SERVICE.a2i : SERVICE.sm);

export async function ok(client, command) {
  const out = await client.send(command);
  seen.add(`${opName(command)}:OK`);
  assert.equal(out.$metadata.httpStatusCode, 200);
  return out;
}

export async function fails(client, command, code) {
  try {
    await client.send(command);
  } catch (err) {
    assert.equal(err.name, code, `${opName(command)}: ${err.name}: ${err.message}`);
    assert.equal(err.$metadata.httpStatusCode, STATUS[serviceOf(client)][code]);
    assert.ok(err.message.length > 0, "the error has a message");
    seen.add(`${opName(command)}:${code}`);
    return err;
  }
  assert.fail(`${opName(command)} should have failed with ${code}`);
}

export async function control(method, path, body) {
  const resp = await fetch(`${URL_}/_emulator${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = await resp.json();
  assert.ok(resp.ok, `${method} ${path}: ${resp.status} ${JSON.stringify(payload)}`);
  return payload;
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export async function until(probe, what, within = 5000) {
  const deadline = Date.now() + within;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) assert.fail(`not within ${within} ms: ${what}`);
    await sleep(20);
  }
}
