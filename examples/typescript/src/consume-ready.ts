// A downstream consumer of echo's results, in TypeScript: reads `resource.ready` from
// `echo.resource.events` in its own consumer group and fetches each resource's transcript
// report (the JSON artifact: text, segments, timings) from the object store.
//
//   npm run consume-ready -- [--group my-team] [--resource-id ID] [--s3-endpoint URL]
//
// S3 credentials come from the usual AWS variables (AWS_ACCESS_KEY_ID,
// AWS_SECRET_ACCESS_KEY): echo's operators grant a consumer read access to the bucket. The
// consumer commits an offset only after its record is handled, so a restarted consumer
// resumes where it stopped. With --resource-id it prints that resource's report as JSON and
// exits (0 ready, 1 rejected); without, it prints one line per resource until interrupted.

import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3";
import * as echo from "./contract.js";

const { values } = echo.parseArgs({
  options: {
    ...echo.CONNECTION_OPTIONS,
    group: { type: "string", default: "typescript-example-reports" },
    "resource-id": { type: "string" },
    timeout: { type: "string", default: "300" },
    "s3-endpoint": { type: "string", default: "http://127.0.0.1:9000" },
    bucket: { type: "string", default: "echo" },
  },
});

const connection = echo.connect(values, "typescript-example-reports");
const s3 = new S3Client({
  endpoint: values["s3-endpoint"],
  region: "us-east-1",
  forcePathStyle: true,
});

interface Outcome {
  metadata: echo.Metadata;
  // A file the upload's `options.formats` left out has no key (schema version 2).
  artifacts?: {
    txt_key: string | null;
    srt_key: string | null;
    vtt_key: string | null;
    json_key: string;
  };
  reason_code?: string;
  message?: string;
}

/** What a consumer takes away from one outcome event. */
async function handle(type: string, event: Outcome): Promise<object> {
  if (type === "resource.rejected") {
    return { reason_code: event.reason_code, message: event.message };
  }
  const object = await s3.send(
    new GetObjectCommand({ Bucket: values.bucket, Key: event.artifacts!.json_key }),
  );
  const report = JSON.parse(await object.Body!.transformToString());
  const text = report.segments.map((s: { text: string }) => s.text.trim()).join(" ");
  return { artifacts: event.artifacts, report, text };
}

const consumer = connection.kafka.consumer({ groupId: values.group });
await consumer.connect();
await consumer.subscribe({ topic: connection.topic(echo.TOPICS.resourceEvents), fromBeginning: true });

// With --resource-id, the awaited resource's outcome event settles this; the consumer is
// stopped outside `eachMessage`, since kafkajs waits for a running handler before it disconnects.
let found: (type: string) => void = () => {};
const awaited = new Promise<string>((resolve) => (found = resolve));

await consumer.run({
  // The offset is committed after eachMessage returns: a report is never skipped.
  eachMessage: async ({ topic, partition, message }) => {
    const type = echo.header(message, "ce_type");
    if (type !== "resource.ready" && type !== "resource.rejected") return;
    const event = await echo.decode<Outcome>(connection, message);
    const resource = event.metadata.correlation_id;
    const outcome = await handle(type, event);
    if (!values["resource-id"]) {
      console.log(resource, type, JSON.stringify((outcome as { text?: string }).text ?? event.reason_code));
    } else if (resource === values["resource-id"]) {
      echo.printJson({ resource_id: resource, status: type, ...outcome });
      const next = (BigInt(message.offset) + 1n).toString();
      await consumer.commitOffsets([{ topic, partition, offset: next }]);
      found(type);
    }
  },
});

if (values["resource-id"]) {
  const timer = setTimeout(() => {
    console.error(`no outcome for ${values["resource-id"]} within ${values.timeout} s`);
    process.exit(2);
  }, Number(values.timeout) * 1000);
  const type = await awaited;
  clearTimeout(timer);
  await consumer.disconnect();
  process.exitCode = type === "resource.ready" ? 0 : 1;
}
