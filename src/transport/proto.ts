import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { loadPackageDefinition, type GrpcObject, type ServiceClientConstructor, type ServiceDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

/**
 * The meshcfg.v1 gRPC contract, loaded at run time from proto/ (no generated code).
 * Field names keep their proto spelling (snake_case); uint64 generations arrive as
 * numbers (they stay far below 2^53); enums as their names; unset fields get defaults.
 */

/** proto/ sits two levels above this file both in src/transport and in dist/transport. */
function protoRoot(): string {
  for (const candidate of ['../../proto', '../../../proto']) {
    const path = fileURLToPath(new URL(candidate, import.meta.url));
    if (existsSync(`${path}/meshcfg/v1/distribution.proto`)) return path;
  }
  throw new Error('proto/meshcfg/v1 not found beside the meshcfg installation');
}

export const PROTO_ROOT = protoRoot();

const definition = loadSync(['meshcfg/v1/distribution.proto', 'meshcfg/v1/enrollment.proto'], {
  includeDirs: [PROTO_ROOT],
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
});

const grpcObject = loadPackageDefinition(definition);
const v1 = (grpcObject['meshcfg'] as GrpcObject)['v1'] as GrpcObject;

export const DistributionClient = v1['Distribution'] as ServiceClientConstructor;
export const EnrollmentClient = v1['Enrollment'] as ServiceClientConstructor;
export const distributionService: ServiceDefinition = DistributionClient.service;
export const enrollmentService: ServiceDefinition = EnrollmentClient.service;

// ---- Messages, as proto-loader presents them with the options above ----

export interface ActiveMsg {
  commit: string;
  digest: string;
  generation: number;
}

export interface HelloMsg {
  active: ActiveMsg | null;
  agent_version: string;
  agent_id: string;
}

export type AckStatusName = 'ACK_STATUS_UNSPECIFIED' | 'APPLIED' | 'REJECTED';

export interface AckMsg {
  commit: string;
  digest: string;
  generation: number;
  nonce: string;
  status: AckStatusName;
  error: string;
  agent_id: string;
}

/** `kind` names the oneof member that is set. */
export interface AgentMessageMsg {
  hello?: HelloMsg | null;
  ack?: AckMsg | null;
  kind?: 'hello' | 'ack';
}

export interface BundleMsg {
  commit: string;
  digest: string;
  generation: number;
  bytes: Buffer;
  /** The signed delivery, src/signing wire JSON (`encodeDelivery`). */
  signature: string;
  nonce: string;
  baseline: boolean;
}

export interface ServerMessageMsg {
  bundle?: BundleMsg;
}

export interface FetchRequestMsg {
  if_none_match: string;
  active: ActiveMsg | null;
  agent_id: string;
}

export interface FetchResponseMsg {
  not_modified?: boolean;
  bundle?: BundleMsg;
  result?: 'not_modified' | 'bundle';
}

export type ReportResponseMsg = Record<string, never>;

export interface EnrollRequestMsg {
  token: string;
  csr_pem: Buffer;
}

export interface RenewRequestMsg {
  csr_pem: Buffer;
}

export interface EnrollResponseMsg {
  certificate_pem: Buffer;
  ca_pem: Buffer;
  signing_key_pem: Buffer;
  agent_id: string;
  expires_at: string;
}
