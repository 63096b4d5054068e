// What every echo client needs: where the topics are, how records are framed and keyed.
// The contract itself is docs/CLIENTS.md; the schemas are the .avsc files under avro/ (the
// registry holds the same ones, registered by echo's operators).

import { randomUUID } from "node:crypto";
import { parseArgs } from "node:util";
import { SchemaRegistry } from "@kafkajs/confluent-schema-registry";
import { Kafka, logLevel, Partitioners, type IHeaders, type KafkaMessage } from "kafkajs";

/** Catalogue names of the topics a client writes and reads (topics/topics.toml); a
 * deployment may put a prefix in front of each. */
export const TOPICS = {
  uploadRequests: "echo.upload.requests",
  uploadCommands: "echo.upload.commands",
  uploadEvents: "echo.upload.events",
  resourceEvents: "echo.resource.events",
} as const;

/** The flags every example takes; the defaults are the local stack's. */
export const CONNECTION_OPTIONS = {
  "bootstrap-servers": { type: "string", default: "127.0.0.1:9092" },
  "registry-url": { type: "string", default: "http://127.0.0.1:8081" },
  "topic-prefix": { type: "string", default: "" },
} as const;

/** Where to reach echo. */
export interface Connection {
  kafka: Kafka;
  registry: SchemaRegistry;
  topic: (catalogueName: string) => string;
}

export function connect(values: {
  "bootstrap-servers": string;
  "registry-url": string;
  "topic-prefix": string;
}, clientId: string): Connection {
  return {
    kafka: new Kafka({
      clientId,
      brokers: values["bootstrap-servers"].split(","),
      logLevel: logLevel.WARN,
    }),
    registry: new SchemaRegistry({ host: values["registry-url"] }),
    topic: (name) => values["topic-prefix"] + name,
  };
}

/** A producer of records echo accepts. KafkaJS's default partitioner is the Java client's
 * murmur2, which echo uses to place a resource's records (a record on another partition is
 * dead-lettered); named explicitly so an upgrade cannot change it. */
export function producer(connection: Connection) {
  return connection.kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    idempotent: true,
    maxInFlightRequests: 1,
  });
}

/** Record full names of the event types the examples use (the .avsc `namespace.name`). */
const RECORD_NAMES: Record<string, string> = {
  "upload.requested": "echo.upload.UploadRequested",
  "upload.finalize": "echo.upload.UploadFinalize",
};

/** Confluent wire format with the version of `type` echo registered. One topic carries
 * several record types, so subjects are `<topic>-<record full name>` (TopicRecordNameStrategy).
 * Clients never register schemas: the registry refuses writes from anyone but echo's
 * operators, so the latest registered version is used. */
export async function encode(
  connection: Connection,
  topic: string,
  type: string,
  value: object,
): Promise<Buffer> {
  const subject = `${topic}-${RECORD_NAMES[type]}`;
  const id = await connection.registry.getLatestSchemaId(subject);
  return connection.registry.encode(id, value);
}

/** Decodes any record of echo's topics with its writer schema (found by the schema id in
 * the record); which type it is says the `ce_type` header. */
export async function decode<T = any>(connection: Connection, message: KafkaMessage): Promise<T> {
  return connection.registry.decode(message.value!) as Promise<T>;
}

/** A header's value as text. */
export function header(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  return value === undefined ? undefined : value.toString();
}

/** `echo.common.EventMetadata` of a record this client issues. */
export interface Metadata {
  event_id: string;
  correlation_id: string;
  causation_id: string | null;
  occurred_at: number;
  producer: string;
  schema_version: number;
}

export function metadata(resource: string, producer: string, causation: string | null = null): Metadata {
  return {
    event_id: randomUUID(),
    correlation_id: resource,
    causation_id: causation,
    occurred_at: Date.now(),
    producer,
    schema_version: 1,
  };
}

/** The CloudEvents Kafka binding (binary mode) echo writes and expects. */
export function cloudEventHeaders(type: string, meta: Metadata): IHeaders {
  const headers: IHeaders = {
    ce_specversion: "1.0",
    ce_id: meta.event_id,
    ce_type: type,
    ce_source: `/clients/${meta.producer}`,
    ce_time: new Date(meta.occurred_at).toISOString(),
    ce_subject: meta.correlation_id,
    ce_correlationid: meta.correlation_id,
    "content-type": "application/avro",
  };
  if (meta.causation_id) headers.ce_causationid = meta.causation_id;
  return headers;
}

export function printJson(value: object): void {
  console.log(JSON.stringify(value, null, 2));
}

export { parseArgs };
