/**
 * The schema, as an ordered list of migrations: version N is `MIGRATIONS[N - 1]`. Append only:
 * never edit or reorder a released entry (databases in the field already ran it); a change
 * is a new entry. Each runs in its own transaction together with its `schema_migrations` row.
 *
 * Conventions: times are INTEGER milliseconds since the epoch; JSON is TEXT; ids of
 * append-only tables are INTEGER PRIMARY KEY (the rowid, so appends are B-tree appends).
 * Sends and acks carry no foreign key to agents on purpose: an ack from an agent the store
 * does not know (yet, or any more) is evidence and must be kept, not refused.
 */
export const MIGRATIONS: readonly string[] = Object.freeze([
  // 1: the initial schema.
  `
  CREATE TABLE server_state (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    accepted    TEXT,
    generation  INTEGER NOT NULL CHECK (generation >= 0),
    refusal     TEXT
  ) STRICT;
  INSERT INTO server_state (id, accepted, generation, refusal) VALUES (1, NULL, 0, NULL);

  CREATE TABLE agents (
    id                  TEXT PRIMARY KEY,
    desired_commit      TEXT,
    desired_digest      TEXT,
    desired_generation  INTEGER,
    active_commit       TEXT,
    active_digest       TEXT,
    active_generation   INTEGER,
    active_at           INTEGER,
    state               TEXT NOT NULL CHECK (state IN ('SYNCED', 'PENDING', 'STALE', 'NACKED', 'QUARANTINED', 'DISCONNECTED')),
    cert_serial         TEXT,
    cert_expiry         INTEGER,
    last_seen           INTEGER,
    quarantine_since    INTEGER,
    quarantine_reason   TEXT,
    quarantine_by       TEXT,
    CHECK ((desired_commit IS NULL) = (desired_digest IS NULL) AND (desired_digest IS NULL) = (desired_generation IS NULL)),
    CHECK ((active_digest IS NULL) = (active_at IS NULL)),
    CHECK ((quarantine_since IS NULL) = (quarantine_by IS NULL))
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE sends (
    id          INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    nonce       TEXT NOT NULL,
    at          INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX sends_by_agent_digest ON sends (agent_id, digest);
  CREATE INDEX sends_by_agent ON sends (agent_id, id);

  CREATE TABLE acks (
    id          INTEGER PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    generation  INTEGER NOT NULL,
    nonce       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('APPLIED', 'REJECTED')),
    error       TEXT NOT NULL,
    at          INTEGER NOT NULL
  ) STRICT;
  CREATE INDEX acks_by_agent ON acks (agent_id, id);
  CREATE INDEX acks_applied_by_agent ON acks (agent_id, digest) WHERE status = 'APPLIED';

  CREATE TABLE rollout (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    commit_sha  TEXT NOT NULL,
    document    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    revision    INTEGER NOT NULL
  ) STRICT;

  CREATE TABLE tokens (
    hash        BLOB PRIMARY KEY CHECK (length(hash) = 32),
    agent_id    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    used_at     INTEGER
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX tokens_by_expiry ON tokens (expires_at);

  CREATE TABLE revocations (
    serial      TEXT PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    at          INTEGER NOT NULL,
    revoked_by  TEXT NOT NULL
  ) STRICT, WITHOUT ROWID;

  CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    details     TEXT NOT NULL
  ) STRICT;
  `,
  // 2: named admin API tokens (viewer / operator); only the sha256 of each secret is kept.
  `
  CREATE TABLE admin_tokens (
    name        TEXT PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator')),
    hash        BLOB NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at  INTEGER NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
  ) STRICT, WITHOUT ROWID;
  `,
  // 3: the current certificate of each agent identity: only it is accepted (a renewal replaces
  // it, an enrollment with a new token too). Seeded for agents enrolled before: the last
  // certificate recorded for the agent, else (an agent revoked and since forgotten) its last
  // revoked serial, so an identity revoked before stays revoked.
  `
  CREATE TABLE agent_certificates (
    agent_id    TEXT PRIMARY KEY,
    serial      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'renew', 'adopted')),
    at          INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  INSERT INTO agent_certificates (agent_id, serial, kind, at)
    SELECT id, cert_serial, 'adopted', coalesce(last_seen, 0) FROM agents WHERE cert_serial IS NOT NULL;
  INSERT INTO agent_certificates (agent_id, serial, kind, at)
    SELECT r.agent_id, r.serial, 'adopted', r.at FROM revocations r
    WHERE r.at = (SELECT max(at) FROM revocations WHERE agent_id = r.agent_id)
    ON CONFLICT (agent_id) DO NOTHING;
  `,
  // 4: when the server first saw its accepted commit (trust.keyValidity: now re-verifies it at that moment after a restart).
  `
  ALTER TABLE server_state ADD COLUMN accepted_seen_at INTEGER;
  `,
  // 5 (replicas): signed generations as the leader signed them (statement, Sigstore bundle, leaves), the newest few.
  `
  CREATE TABLE generations (
    generation  INTEGER PRIMARY KEY CHECK (generation > 0),
    commit_sha  TEXT NOT NULL,
    statement   TEXT NOT NULL,
    bundle      TEXT NOT NULL,
    agents      TEXT NOT NULL,
    at          INTEGER NOT NULL
  ) STRICT;
  `,
  // 6: the ids of recorded write batches, so a batch retried after a lost answer is written once.
  `
  CREATE TABLE write_batches (
    id  TEXT PRIMARY KEY,
    at  INTEGER NOT NULL
  ) STRICT, WITHOUT ROWID;
  CREATE INDEX write_batches_at ON write_batches (at);
  `,
]);
