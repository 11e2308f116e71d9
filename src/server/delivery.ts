import { combineHooks } from '../lib/index.js';
import { EnrollmentTokens } from '../pki/index.js';
import { GrpcServer } from '../transport/index.js';
import { ServerBackend } from './backend.js';
import { formatListenAddress } from './config.js';
import type { WiringContext } from './lifecycle.js';
import { replacedCertificateStreams, type TransportHandle } from './links.js';
import * as log from './logging.js';
import type { OpenedState } from './open-state.js';
import type { ServerProducer } from './producer.js';

/** The delivery side, listening. */
export interface ServerDelivery {
  readonly enrollmentTokens: EnrollmentTokens;
  readonly grpc: TransportHandle;
}

/**
 * The third phase: enrollment tokens, the backend (deliver and record) and the mTLS gRPC
 * transport, bound to the producer's `TransportLink`. It serves (health SERVING) once a commit
 * is published. Shutdown step pushed: the gRPC drain, within the deadline `close` was given.
 */
export async function startDelivery(context: WiringContext, opened: OpenedState, producer: ServerProducer): Promise<ServerDelivery> {
  const { config, options, logger, now, cleanups } = context;
  const { dataDir, fleet } = opened;
  const { metrics, quarantine, rollout, transport } = producer;
  const enrollmentTokens = new EnrollmentTokens({ store: opened.fleetStore.tokens, now });
  const backend = new ServerBackend({
    snapshots: opened.snapshots,
    fleet,
    inventory: producer.inventory,
    tokens: enrollmentTokens,
    ca: dataDir.ca,
    signingPublicKeyPem: dataDir.signingPublicKeyPem,
    certificateTtlMs: config.enrollment.certificateTtlMs,
    certificates: opened.certificates,
    hooks: combineHooks(
      metrics.backendHooks,
      log.backendLogHooks(logger),
      quarantine.backendHooks,
      rollout.backendHooks,
      replacedCertificateStreams(transport, options.replacedStreamGraceMs ?? 10_000),
    ),
    // What the served generation says first: a follower's rollout view may lag the leader's.
    commitOfDigest: (agentId, digest) => producer.link.bundleCommit(agentId, digest) ?? rollout.commitOf(agentId, digest),
    driftCheck: (agentId, active) => quarantine.checkActive(agentId, active),
    now,
  });
  transport.bindSessions(backend);
  const start = options.transport ?? ((o) => GrpcServer.start(o));
  const grpc = await start({
    address: formatListenAddress(config.listen.grpc),
    trustDomain: config.trustDomain,
    serverCertPem: dataDir.serverCertPem,
    serverKeyPem: dataDir.serverKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    caPem: dataDir.ca.certificatePem,
    backend,
    hooks: combineHooks(
      metrics.transportHooks,
      log.transportLogHooks(logger),
      { onUnauthorized: producer.unauthorizedAlerts.onUnauthorized },
    ),
    logger,
    now,
  });
  transport.bind(grpc);
  cleanups.push(() => grpc.shutdown(cleanups.deadlineMs));
  grpc.setServing(producer.link.ready());
  return { enrollmentTokens, grpc };
}
