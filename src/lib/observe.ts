/**
 * Observers (logs, metrics, alerts, fleet state) watch work through hooks and must never
 * break it: an observer that throws is swallowed here, in one place, so the producer loop,
 * a delivery or a write chain goes on.
 */
export function notify(call: () => void): void {
  try {
    call();
  } catch {
    // See above: an observer's failure is not the caller's.
  }
}

/** Calls every defined observer in turn; each is isolated (one that throws does not stop the others). */
export function combineHooks<H extends object>(...all: readonly H[]): H {
  const combined: Record<string, (...args: unknown[]) => void> = {};
  const names = new Set(all.flatMap((h) => Object.keys(h)));
  for (const name of names) {
    const fns = all.map((h) => (h as Record<string, unknown>)[name]).filter((f): f is (...args: unknown[]) => void => typeof f === 'function');
    combined[name] = (...args: unknown[]) => {
      for (const fn of fns) notify(() => fn(...args));
    };
  }
  return combined as H;
}
