import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import type { PkiError } from '../domain/errors.js';
import type { AgentId } from '../domain/types.js';
import type { UnauthorizedReason } from './backend.js';

/**
 * Where refusals become gRPC statuses: the one place that maps the transport's reasons and
 * the PKI layer's error codes to wire codes (map to statuses only at the boundary).
 */

/** A call refused as an unauthorized config load attempt: counted, logged, answered with `code`. */
export interface UnauthorizedRefusal {
  readonly reason: UnauthorizedReason;
  readonly message: string;
  /** Only when the certificate that names it was verified; never an id the caller merely claims. */
  readonly agentId?: AgentId;
}

/**
 * UNAUTHENTICATED when the caller did not prove who it is (no or bad credentials);
 * PERMISSION_DENIED when it did and is still refused; INVALID_ARGUMENT for a bad CSR or a
 * malformed commit echo.
 */
export function statusOfReason(reason: UnauthorizedReason): Status {
  switch (reason) {
    case 'no-client-certificate':
    case 'bad-identity':
    case 'expired-certificate':
    case 'untrusted-certificate':
    case 'bad-token':
    case 'expired-token':
    case 'reused-token':
      return Status.UNAUTHENTICATED;
    case 'unknown-agent':
    case 'revoked':
    case 'replaced-certificate':
    case 'identity-mismatch':
      return Status.PERMISSION_DENIED;
    case 'bad-csr':
    case 'malformed-commit':
      return Status.INVALID_ARGUMENT;
    default: {
      const never: never = reason;
      throw new Error(`unexpected unauthorized reason ${String(never)}`);
    }
  }
}

/** What enrollment and renewal refusals from the backend mean on the wire. */
export function refusalOfPkiError(err: PkiError): UnauthorizedRefusal | undefined {
  switch (err.code) {
    case 'TOKEN_UNKNOWN':
      return { reason: 'bad-token', message: 'enrollment token is not valid' };
    case 'TOKEN_EXPIRED':
      return { reason: 'expired-token', message: 'enrollment token has expired' };
    case 'TOKEN_USED':
      return { reason: 'reused-token', message: 'enrollment token was already used' };
    case 'CSR_INVALID':
      return { reason: 'bad-csr', message: `certificate signing request refused: ${err.message}` };
    case 'KEY_UNSUPPORTED':
      return { reason: 'bad-csr', message: `certificate signing request refused: ${err.message}` };
    default:
      return undefined;
  }
}

/** A status for a unary callback or a stream's `emit('error')`; grpc-js reads `code` and `details`. */
export function grpcError(code: Status, details: string): ServiceError {
  return Object.assign(new Error(details), { code, details, metadata: new Metadata() });
}

export { Status };
