import { Compiler } from '../compile/index.js';
import { errorMessage } from '../domain/errors.js';
import { combineHooks } from '../lib/index.js';
import { certificateExpiry } from '../pki/index.js';
import { GitSource } from '../source/index.js';
import { openAlerting, refusedCommitAlerts, type Alerting } from './alerting.js';
import { UnauthorizedAlerts } from './fleet-alerts.js';
import type { WiringContext } from './lifecycle.js';
import { ReconcilerLink, TransportLink } from './links.js';
import * as log from './logging.js';
import { ServerMetrics } from './metrics.js';
import { disconnectedAfter, type OpenedState } from './open-state.js';
import { PublishedInventory, publishedHooks } from './published.js';
import { QuarantineController } from './quarantine.js';
import { Reconciler, type AcceptedCompiler, type ReconcileHooks } from './reconcile.js';
import type { Compilation } from '../compile/index.js';
import type { Leadership } from './leadership.js';
import type { CommitSha } from '../domain/types.js';
import { RolloutService } from './rollout.js';
import { serverTrust } from './trust.js';

/** The producer side, built and restored: what delivery, the admin API and the start-up need. */
export interface ServerProducer {
  /** The reconciler as the parts built before it see it (bound here). */
  readonly link: ReconcilerLink;
  /** The gRPC transport as the parts built before it see it (bound by the delivery phase). */
  readonly transport: TransportLink;
  readonly inventory: PublishedInventory;
  readonly source: GitSource;
  readonly alerting: Alerting;
  readonly unauthorizedAlerts: UnauthorizedAlerts;
  readonly rollout: RolloutService;
  readonly metrics: ServerMetrics;
  readonly quarantine: QuarantineController;
  readonly reconciler: Reconciler;
  /** Verifies (as accepted: no fast-forward rule), reads and compiles a commit, fetching once when it is not here yet. */
  readonly compileAccepted: AcceptedCompiler;
}

/**
 * The second phase: source → trust gate → compiler → rollout and quarantine → reconciler, with
 * alerting and metrics observing them. The accepted commit of the previous run is republished
 * here, before the delivery side listens. Nothing polls or ticks yet (`startServer` starts them).
 * Shutdown steps pushed: source, alerting, unauthorized alerts, rollout (before the store
 * closes: the last acks are saved), reconciler.
 */
export async function buildProducer(context: WiringContext, opened: OpenedState, leadership: Pick<Leadership, 'kind'>): Promise<ServerProducer> {
  const { config, options, logger, now, cleanups } = context;
  const { dataDir, fleetStore, fleet, snapshots } = opened;
  const link = new ReconcilerLink();
  const transport = new TransportLink();
  const inventory = new PublishedInventory();
  const logFetch = log.fetchLogHook(logger);
  const source = await GitSource.open({
    repository: config.repo.url,
    branch: config.repo.branch,
    dataDir: config.dataDir,
    now,
    hooks: { onFetch: (event) => (logFetch(event), link.onFetch(event)) },
  });
  cleanups.push(() => source.close());
  const { gate, reverify } = serverTrust({
    reader: source,
    allowedSigners: opened.allowedSigners,
    keyValidityAt: config.trust.keyValidity,
    seenAt: (commit) => link.seenAt(commit),
    now,
  });
  const alerting = openAlerting({
    webhook: config.alerts.webhook,
    onProblem: ({ kind, alert, detail, webhook }) =>
      logger.warn({ event: 'alert-delivery', kind, alert: alert.kind, webhook }, `alert webhook: ${detail}`),
  });
  cleanups.push(() => alerting.close());
  const windowMs = options.unauthorizedAlertWindowMs;
  const unauthorizedAlerts = new UnauthorizedAlerts({ sink: alerting.sink, now, ...(windowMs === undefined ? {} : { windowMs }) });
  cleanups.push(() => unauthorizedAlerts.close());
  const compiler = new Compiler();
  const compileHere = async (commit: CommitSha): Promise<Compilation> => compiler.compile(await source.readTree(await reverify(commit)));
  // A follower learns of commits from the leader's generations: fetch when one is not here yet.
  const compileAccepted: AcceptedCompiler = (commit) => compileHere(commit).catch(async () => (await source.fetch(), compileHere(commit)));
  const rollout = await RolloutService.load({
    store: fleetStore,
    knownAgents: () => fleet.list().map((a) => a.id),
    compile: compileAccepted,
    present: (id) => fleet.get(id)?.state !== undefined && fleet.get(id)?.state !== 'DISCONNECTED',
    local: (id) => fleet.get(id)?.connected === true,
    republish: () => link.republish(),
    alerts: alerting.sink,
    now,
    ...(options.rolloutTickMs === undefined ? {} : { tickMs: options.rolloutTickMs }),
    hooks: log.rolloutLogHooks(logger),
  });
  cleanups.push(() => rollout.stop()); // before the store closes: the last acks are saved
  const metrics = new ServerMetrics({
    fleet,
    connectedAgents: () => transport.connectedCount(),
    rollout: () => rollout.status(),
    source: () => ({ accepted: link.status()?.serving ?? null, refused: link.status()?.refused?.commit ?? null }),
    certificates: { server: certificateExpiry(dataDir.serverCertPem), ca: dataDir.ca.notAfter },
    acceptedAt: (commit) => link.seenAt(commit),
    now,
    ...disconnectedAfter(options),
  });
  const quarantine = new QuarantineController({
    fleet,
    store: fleetStore,
    deliveries: snapshots,
    republish: () => link.republish(),
    servingCommit: () => link.servingCommit(),
    alerts: alerting.sink,
    now,
    hooks: log.quarantineLogHooks(logger),
  });
  const onPublished = publishedHooks({ inventory, fleet, quarantine, rollout, serving: transport });
  const reconciler = new Reconciler({
    verifier: gate,
    trees: source,
    compiler,
    signer: opened.signer,
    snapshots,
    store: opened.stateStore,
    initialState: opened.state,
    trustDomain: config.trustDomain,
    bundleTtlMs: config.bundles.ttlMs,
    now,
    hooks: combineHooks<ReconcileHooks>(
      onPublished,
      metrics.reconcileHooks,
      log.reconcileLogHooks(logger),
      refusedCommitAlerts(alerting.sink),
    ),
    policy: quarantine.policy(options.policy ?? rollout.policy),
    // Replicas sharing the store: every signed generation is kept there for the others to serve.
    generations: fleetStore.changes === null ? null : fleetStore,
    // Every replica reports the leader's refusal from the store (a restarted server judges again).
    refusals: {
      saveRefusal: (refusal) =>
        fleetStore.saveRefusal(refusal).catch((err: unknown) => {
          logger.warn({ event: 'refusal-save-failed', commit: refusal?.commit, err: errorMessage(err) }, 'could not record the refusal in the fleet store');
        }),
    },
    ...(options.refreshCheckMs === undefined ? {} : { refreshCheckMs: options.refreshCheckMs }),
  });
  link.bind(reconciler);
  cleanups.push(() => reconciler.stop());
  const { state } = opened;
  // An elected replica signs nothing before it leads: it serves the leader's stored generation.
  if (state.accepted !== null && leadership.kind !== 'elected') {
    const fields = { event: 'restore', commit: state.accepted, generation: state.generation };
    logger.info(fields, 'republishing the accepted commit of the previous run');
    await reconciler.restore();
  }
  return { link, transport, inventory, source, alerting, unauthorizedAlerts, rollout, metrics, quarantine, reconciler, compileAccepted };
}
