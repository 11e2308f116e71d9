import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { Windows, windowStatus, type WindowSpec } from '../../src/rollout/windows.js';

const at = (iso: string): Date => new Date(iso);
const open = (windows: readonly WindowSpec[], iso: string): boolean => windowStatus(windows, at(iso)).open;
const nextOpen = (windows: readonly WindowSpec[], iso: string): string | null => windowStatus(windows, at(iso)).nextOpen?.toISOString() ?? null;

describe('windowStatus', () => {
  describe('when there are no windows', () => {
    it('is always open', () => {
      assert.deepEqual(windowStatus([], at('2025-06-01T03:00:00Z')), { open: true, nextOpen: null });
    });
  });

  describe('with a working-hours allow window in Europe/Berlin', () => {
    const windows: WindowSpec[] = [{ kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' }];

    it('is open from the occurrence (inclusive) to occurrence + duration (exclusive)', () => {
      // Monday 2 June 2025, CEST (UTC+2): 09:00–17:00 local is 07:00–15:00Z.
      const table: [string, boolean][] = [
        ['2025-06-02T06:59:59Z', false],
        ['2025-06-02T07:00:00Z', true],
        ['2025-06-02T14:59:59Z', true],
        ['2025-06-02T15:00:00Z', false],
        ['2025-06-07T10:00:00Z', false], // Saturday
      ];
      for (const [when, expected] of table) assert.equal(open(windows, when), expected, when);
    });

    it('names the next opening when closed: Friday evening → Monday 09:00 local', () => {
      assert.equal(nextOpen(windows, '2025-06-06T16:00:00Z'), '2025-06-09T07:00:00.000Z');
    });

    it('follows the winter offset: 09:00 CET is 08:00Z', () => {
      assert.equal(nextOpen(windows, '2025-01-06T07:30:00Z'), '2025-01-06T08:00:00.000Z');
      assert.equal(open(windows, '2025-01-06T08:00:00Z'), true);
      assert.equal(open(windows, '2025-01-06T07:59:00Z'), false);
    });
  });

  describe('across the Europe/Berlin spring-forward (30 March 2025, 02:00 → 03:00)', () => {
    const windows: WindowSpec[] = [{ kind: 'allow', schedule: '30 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' }];

    it('opens the skipped 02:30 at 03:30 CEST (01:30Z), as cron does, and only then', () => {
      assert.equal(open(windows, '2025-03-30T00:45:00Z'), false);
      assert.equal(nextOpen(windows, '2025-03-30T00:45:00Z'), '2025-03-30T01:30:00.000Z');
      assert.equal(open(windows, '2025-03-30T01:30:00Z'), true);
      assert.equal(open(windows, '2025-03-30T02:29:59Z'), true);
      assert.equal(open(windows, '2025-03-30T02:30:00Z'), false);
    });

    it('keeps a daily 09:00 window at 09:00 local on both sides of the change', () => {
      const daily: WindowSpec[] = [{ kind: 'allow', schedule: '0 9 * * *', duration: '1h', timeZone: 'Europe/Berlin' }];
      assert.equal(nextOpen(daily, '2025-03-29T00:00:00Z'), '2025-03-29T08:00:00.000Z');
      assert.equal(nextOpen(daily, '2025-03-29T12:00:00Z'), '2025-03-30T07:00:00.000Z');
      assert.equal(open(daily, '2025-03-30T07:30:00Z'), true);
      assert.equal(open(daily, '2025-03-30T08:30:00Z'), false);
    });
  });

  describe('across the Europe/Berlin fall-back (26 October 2025, 03:00 → 02:00)', () => {
    const windows: WindowSpec[] = [{ kind: 'allow', schedule: '30 2 * * *', duration: '1h', timeZone: 'Europe/Berlin' }];

    it('opens the repeated 02:30 once, at the first pass (00:30Z)', () => {
      assert.equal(open(windows, '2025-10-26T00:30:00Z'), true);
      assert.equal(open(windows, '2025-10-26T01:29:59Z'), true);
      // 02:30 CET (01:30Z) is the same wall-clock time again: the window does not reopen.
      assert.equal(open(windows, '2025-10-26T01:45:00Z'), false);
      assert.equal(nextOpen(windows, '2025-10-26T01:45:00Z'), '2025-10-27T01:30:00.000Z');
    });

    it('counts duration in real time across the change: 22:00 CEST + 8h is 05:00 CET', () => {
      const night: WindowSpec[] = [{ kind: 'allow', schedule: '0 22 * * *', duration: '8h', timeZone: 'Europe/Berlin' }];
      // 25 Oct 22:00 CEST = 20:00Z; + 8h = 04:00Z = 05:00 CET.
      assert.equal(open(night, '2025-10-26T03:59:59Z'), true);
      assert.equal(open(night, '2025-10-26T04:00:00Z'), false);
    });
  });

  describe('in America/New_York across its spring-forward (9 March 2025)', () => {
    const windows: WindowSpec[] = [{ kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'America/New_York' }];

    it('opens at 09:00 EST (14:00Z) before and 09:00 EDT (13:00Z) after', () => {
      assert.equal(nextOpen(windows, '2025-03-07T12:00:00Z'), '2025-03-07T14:00:00.000Z');
      assert.equal(nextOpen(windows, '2025-03-08T12:00:00Z'), '2025-03-10T13:00:00.000Z');
      assert.equal(open(windows, '2025-03-10T13:00:00Z'), true);
      assert.equal(open(windows, '2025-03-10T20:59:59Z'), true);
      assert.equal(open(windows, '2025-03-10T21:00:00Z'), false);
    });
  });

  describe('with a window spanning midnight', () => {
    const windows: WindowSpec[] = [{ kind: 'allow', schedule: '0 22 * * *', duration: '4h' }];

    it('stays open after midnight until the duration ends', () => {
      assert.equal(open(windows, '2025-06-01T21:59:00Z'), false);
      assert.equal(open(windows, '2025-06-01T23:30:00Z'), true);
      assert.equal(open(windows, '2025-06-02T01:59:59Z'), true);
      assert.equal(open(windows, '2025-06-02T02:00:00Z'), false);
    });

    it('reads a schedule without timeZone in UTC', () => {
      assert.equal(nextOpen(windows, '2025-06-02T02:00:00Z'), '2025-06-02T22:00:00.000Z');
    });
  });

  describe('with a 72h deny window and no allow window', () => {
    const windows: WindowSpec[] = [{ kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' }];

    it('is closed for the whole 72 hours and open otherwise', () => {
      assert.equal(open(windows, '2025-12-23T23:59:59Z'), true);
      assert.equal(open(windows, '2025-12-24T00:00:00Z'), false);
      assert.equal(open(windows, '2025-12-26T23:59:59Z'), false);
      assert.equal(open(windows, '2025-12-27T00:00:00Z'), true);
    });

    it('opens again when the deny ends', () => {
      assert.equal(nextOpen(windows, '2025-12-25T12:00:00Z'), '2025-12-27T00:00:00.000Z');
    });
  });

  describe('when a deny window overlaps an allow window', () => {
    const windows: WindowSpec[] = [
      { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
      { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
    ];

    it('denies even inside the allow window', () => {
      // Wednesday 24 Dec 2025 10:00Z = 11:00 CET: inside the allow window, inside the deny.
      assert.equal(open(windows, '2025-12-24T10:00:00Z'), false);
      assert.equal(open(windows, '2025-12-23T10:00:00Z'), true);
    });

    it('names the first allow opening after the deny: Monday 29 Dec 09:00 CET', () => {
      // Sat 27 Dec is outside the deny but a weekend.
      assert.equal(nextOpen(windows, '2025-12-24T10:00:00Z'), '2025-12-29T08:00:00.000Z');
    });

    it('opens mid-window when a deny ends inside an active allow window', () => {
      const mixed: WindowSpec[] = [
        { kind: 'allow', schedule: '0 8 * * *', duration: '8h' },
        { kind: 'deny', schedule: '0 9 * * *', duration: '2h' },
      ];
      assert.equal(open(mixed, '2025-06-02T10:00:00Z'), false);
      assert.equal(nextOpen(mixed, '2025-06-02T10:00:00Z'), '2025-06-02T11:00:00.000Z');
    });
  });

  describe('when no opening exists within the horizon', () => {
    it('reports nextOpen null', () => {
      const leapDay: WindowSpec[] = [{ kind: 'allow', schedule: '0 9 29 2 *', duration: '1h' }];
      assert.deepEqual(windowStatus(leapDay, at('2025-03-01T00:00:00Z')), { open: false, nextOpen: null });
      assert.equal(nextOpen(leapDay, '2027-06-01T00:00:00Z'), '2028-02-29T09:00:00.000Z');
    });
  });

  describe('with a schedule or duration that does not parse', () => {
    it('throws when the windows are built', () => {
      assert.throws(() => new Windows([{ kind: 'allow', schedule: '0 9 31 2-13 *', duration: '1h' }]));
      assert.throws(() => new Windows([{ kind: 'allow', schedule: '0 9 * * *', duration: 'soon' }]));
    });
  });
});

describe('Windows', () => {
  it('answers the same for one instance asked out of order (its cache never changes an answer)', () => {
    const windows: WindowSpec[] = [
      { kind: 'allow', schedule: '0 9 * * 1-5', duration: '8h', timeZone: 'Europe/Berlin' },
      { kind: 'deny', schedule: '0 0 24 12 *', duration: '72h' },
    ];
    const shared = new Windows(windows);
    const start = Date.parse('2025-03-25T00:00:00Z');
    const instants = Array.from({ length: 200 }, (_, i) => start + ((i * 7919) % 200) * 3_600_000 * 7);
    for (const t of instants) {
      assert.deepEqual(shared.status(new Date(t)), windowStatus(windows, new Date(t)), new Date(t).toISOString());
    }
  });
});
