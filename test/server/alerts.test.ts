import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AlertRing, WebhookAlerter, type Alert } from '../../src/server/alerts.js';
import { webhookReceiver } from './helpers.js';

const alert = (n: number): Alert => ({ kind: 'commit-refused', commit: String(n).padStart(40, '0'), code: 'UNSIGNED', message: `m${n}`, at: new Date(0).toISOString() });

describe('WebhookAlerter', () => {
  it('posts the alert as JSON, retrying with backoff while the receiver answers 5xx', async () => {
    const hook = await webhookReceiver(2);
    const problems: string[] = [];
    const alerter = new WebhookAlerter({ url: hook.url, baseDelayMs: 5, onProblem: (p) => problems.push(p.kind) });
    try {
      alerter.post(alert(1));
      await hook.waitFor(1);
      assert.deepEqual(hook.bodies, [alert(1)]);
      assert.equal(hook.requests(), 3);
      assert.deepEqual(problems, ['failed', 'failed']);
    } finally {
      await alerter.close();
      await hook.close();
    }
  });

  it('never blocks the caller and drops the oldest alert when its queue is full', async () => {
    const problems: Array<{ kind: string; commit: string | undefined }> = [];
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const posted: string[] = [];
    const alerter = new WebhookAlerter({
      url: 'http://127.0.0.1:1/hook',
      maxQueue: 2,
      fetch: async (_url, init) => {
        await gate;
        posted.push(String(init?.body));
        return new Response(null, { status: 204 });
      },
      onProblem: (p) => problems.push({ kind: p.kind, commit: commitOf(p.alert) }),
    });
    for (let i = 1; i <= 4; i += 1) alerter.post(alert(i)); // 1 in flight, 2–4 queued into 2 places
    assert.deepEqual(problems, [{ kind: 'dropped', commit: commitOf(alert(2)) }]);
    release();
    await alerter.close();
    assert.deepEqual(posted.map((b) => (JSON.parse(b) as Alert).message), ['m1', 'm3', 'm4']);
  });

  it('gives up on a 4xx answer without retrying', async () => {
    let calls = 0;
    const kinds: string[] = [];
    const alerter = new WebhookAlerter({
      url: 'http://user:secret@127.0.0.1:1/hook',
      baseDelayMs: 1,
      fetch: async () => {
        calls += 1;
        return new Response(null, { status: 400 });
      },
      onProblem: (p) => {
        kinds.push(p.kind);
        assert.ok(!p.webhook.includes('secret'), 'credentials in the webhook URL are never reported');
      },
    });
    alerter.post(alert(1));
    await alerter.close();
    assert.equal(calls, 1);
    assert.deepEqual(kinds, ['gave-up']);
  });
});

function commitOf(alert: Alert): string | undefined {
  return 'commit' in alert ? alert.commit : undefined;
}

describe('AlertRing', () => {
  it('keeps the most recent alerts up to its capacity, newest first, each with an increasing id', () => {
    const ring = new AlertRing(3);
    for (let i = 1; i <= 5; i += 1) ring.post(alert(i));
    assert.deepEqual(ring.recent().map((a) => [a.id, a.message]), [
      [5, 'm5'],
      [4, 'm4'],
      [3, 'm3'],
    ]);
    assert.deepEqual(ring.recent(2).map((a) => a.id), [5, 4]);
    assert.deepEqual(ring.recent(0), []);
  });
});
