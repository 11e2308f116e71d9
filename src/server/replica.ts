import type { Logger } from 'pino';
import { errorMessage } from '../domain/errors.js';
import type { PollOptions } from '../source/index.js';
import type { Leadership, LeadershipHooks } from './leadership.js';

/** The loops only the leader runs, as the server's parts offer them. */
export interface LeaderLoops {
  readonly source: { start(options: PollOptions): void; stop(): Promise<void> };
  /** The rollout's ticks and the saves and republishes its controller decides. */
  readonly rollout: { start(): void; lead(): Promise<void>; follow(): void };
  /** The reconciler's re-signing timer (a generation refreshed at half its lifetime). */
  readonly reconciler: { start(): void; stop(): Promise<void> };
  readonly poll: PollOptions;
}

/**
 * Runs the leader's loops while `leadership` says this replica leads, and stops them the moment
 * it stops leading: polling first (no new head is judged), then the rollout (no tick, save or
 * republish), then the re-signing timer. A replica that does not lead keeps serving, taking
 * acks, enrollments and admin calls. Returns the shutdown step (stops polling, then campaigning).
 */
export function runWhileLeading(leadership: Leadership, loops: LeaderLoops, logger: Logger): () => Promise<void> {
  let leading = false;
  let transition: Promise<void> = Promise.resolve();
  const become = (leader: boolean): void => {
    transition = transition.then(async () => {
      if (leader === leading) return;
      leading = leader;
      if (leader) {
        logger.info({ event: 'leader-loops-started', replica: leadership.replica }, 'this replica leads: polling the repository and running the rollout');
        await loops.rollout.lead();
        if (!leading) return; // deposed while the rollout reloaded
        loops.reconciler.start();
        loops.source.start(loops.poll);
      } else {
        // Synchronous first: nothing ticks or republishes after this line.
        loops.rollout.follow();
        logger.warn({ event: 'leader-loops-stopped', replica: leadership.replica }, 'this replica no longer leads: polling and rollout stopped');
        await loops.source.stop();
        await loops.reconciler.stop();
      }
    }).catch((err: unknown) => {
      logger.error({ event: 'leadership-transition-failed', err: errorMessage(err) }, 'switching the leader loops failed');
    });
  };
  const unsubscribe = leadership.subscribe(become);
  // With a store only this process writes, the rollout must not wait for a transition: it is
  // the leader's from the start (the sole leader's lead() reloads nothing).
  if (leadership.kind === 'sole') {
    leading = true;
    loops.reconciler.start();
    loops.rollout.start();
    loops.source.start(loops.poll);
  } else {
    loops.rollout.follow();
    if (leadership.isLeader()) become(true);
  }
  leadership.start();
  // Shutdown: polling stops here; the rollout (detached first, then saving its last document,
  // compare-and-set) and the re-signing timer stop in their own steps.
  return async () => {
    unsubscribe();
    await transition;
    await loops.source.stop();
    await leadership.stop();
  };
}

/** Log lines for the election (never the connection string: it may hold a password). */
export function leadershipLogHooks(logger: Logger): LeadershipHooks {
  return {
    onElected: ({ replica }) => logger.info({ event: 'leader-elected', replica }, 'this replica took the leader lock'),
    onDeposed: ({ replica, reason, error }) =>
      logger.warn(
        { event: 'leader-deposed', replica, reason, ...(error === undefined ? {} : { err: errorMessage(error) }) },
        `this replica stopped leading (${reason})`,
      ),
    onCandidateError: ({ replica, error }) =>
      logger.warn({ event: 'leader-campaign-failed', replica, err: errorMessage(error) }, 'could not try the leader lock; retrying'),
  };
}
