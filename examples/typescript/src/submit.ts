// Submits an audio file to echo from TypeScript, the way any team's producer would.
//
//   npm run submit -- FILE [--resource-id ID] [--content-type audio/wav]
//
// 1. publishes `upload.requested` (keyed by the resource id) with a fresh X25519 public key;
// 2. reads `echo.upload.events` until echo answers for that resource: `upload.url.generated`
//    carries the pre-signed PUT URL sealed to that key (only this client can open it), or
//    `upload.failed` says why not;
// 3. PUTs the file, then sends the `upload.finalize` command;
// 4. waits for `upload.completed` (or `upload.failed`) and prints one JSON object.
//
// Exit code 0 when the upload completed, 1 when echo refused it.

import { randomUUID } from "node:crypto";
import { readFile } from "node:fs/promises";
import { basename } from "node:path";
import sodium from "libsodium-wrappers";
import type { KafkaMessage } from "kafkajs";
import * as echo from "./contract.js";

const PRODUCER = "typescript-example";

const { values, positionals } = echo.parseArgs({
  allowPositionals: true,
  options: {
    ...echo.CONNECTION_OPTIONS,
    "resource-id": { type: "string", default: randomUUID() },
    "content-type": { type: "string", default: "audio/wav" },
    timeout: { type: "string", default: "60" },
  },
});
if (positionals.length !== 1) throw new Error("usage: submit FILE [--resource-id ID]");
const file = positionals[0];
const resource = values["resource-id"];
const timeoutMs = Number(values.timeout) * 1000;

await sodium.ready;
const connection = echo.connect(values, PRODUCER);
const producer = echo.producer(connection);
await producer.connect();

// Answers about this resource, in order. Subscribed from the end of the topic before the
// request is sent, so the answer cannot be missed.
const answers: { type: string; message: KafkaMessage }[] = [];
const consumer = connection.kafka.consumer({ groupId: `${PRODUCER}-${randomUUID()}` });
await consumer.connect();
await consumer.subscribe({ topic: connection.topic(echo.TOPICS.uploadEvents), fromBeginning: false });
const assigned = new Promise<void>((resolve) =>
  consumer.on(consumer.events.GROUP_JOIN, () => resolve()),
);
await consumer.run({
  eachMessage: async ({ message }) => {
    if (message.key?.toString() === resource) {
      answers.push({ type: echo.header(message, "ce_type") ?? "", message });
    }
  },
});
await assigned;

async function nextAnswer<T>(): Promise<[string, T]> {
  const deadline = Date.now() + timeoutMs;
  while (answers.length === 0) {
    if (Date.now() > deadline) throw new Error(`no answer for ${resource} within ${values.timeout} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const { type, message } = answers.shift()!;
  return [type, await echo.decode<T>(connection, message)];
}

async function send(catalogueTopic: string, type: string, value: { metadata: echo.Metadata }) {
  const topic = connection.topic(catalogueTopic);
  await producer.send({
    topic,
    messages: [
      {
        key: resource,
        value: await echo.encode(connection, topic, type, value),
        headers: echo.cloudEventHeaders(type, value.metadata),
      },
    ],
  });
}

async function finish(code: number, report: object): Promise<never> {
  echo.printJson({ resource_id: resource, ...report });
  await Promise.all([consumer.disconnect(), producer.disconnect()]);
  process.exit(code);
}

const body = await readFile(file);
const replyKey = sodium.crypto_box_keypair();
await send(echo.TOPICS.uploadRequests, "upload.requested", {
  metadata: echo.metadata(resource, PRODUCER),
  filename: basename(file),
  content_type: values["content-type"],
  declared_size_bytes: body.length,
  reply_key: sodium.to_base64(replyKey.publicKey, sodium.base64_variants.ORIGINAL),
  // Who the upload is charged to: the token the deployment issued this team, kept out of the
  // command line; none on a deployment that admits anonymous requests.
  tenant_token: process.env.ECHO_TENANT_TOKEN ?? null,
} as { metadata: echo.Metadata });

interface Answer {
  metadata: echo.Metadata;
  sealed_upload_url?: string | null;
  sealed_owner_token?: string | null;
  object_key?: string;
  reason_code?: string;
  message?: string;
}

let [type, answer] = await nextAnswer<Answer>();
if (type === "upload.failed") {
  await finish(1, { status: "upload_failed", reason_code: answer.reason_code, message: answer.message });
}
if (type !== "upload.url.generated") throw new Error(`unexpected answer ${type}`);
const open = (sealed: string) =>
  sodium.to_string(
    sodium.crypto_box_seal_open(
      sodium.from_base64(sealed, sodium.base64_variants.ORIGINAL),
      replyKey.publicKey,
      replyKey.privateKey,
    ),
  );
const url = open(answer.sealed_upload_url!);
// Proof that the finalize comes from this client: every client can read the resource id.
const ownerToken = open(answer.sealed_owner_token!);
const put = await fetch(url, {
  method: "PUT",
  body,
  headers: { "Content-Type": values["content-type"] },
});
if (!put.ok) throw new Error(`the object store refused the upload: ${put.status}`);

await send(echo.TOPICS.uploadCommands, "upload.finalize", {
  metadata: echo.metadata(resource, PRODUCER, answer.metadata.event_id),
  etag: put.headers.get("ETag"),
  owner_token: ownerToken,
} as { metadata: echo.Metadata });

[type, answer] = await nextAnswer<Answer>();
if (type === "upload.failed") {
  await finish(1, { status: "upload_failed", reason_code: answer.reason_code, message: answer.message });
}
await finish(0, { status: "uploaded", object_key: answer.object_key });
