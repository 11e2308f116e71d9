/**
 * The PostgreSQL schema, as an ordered list of migrations: version N is `MIGRATIONS[N - 1]`,
 * the same rule as SQLite's (`../schema.ts`). Append only: never edit or reorder a released
 * entry; a change is a new entry. Each runs in its own transaction with its
 * `schema_migrations` row, under `pg_advisory_xact_lock(MIGRATION_LOCK)`.
 *
 * The backend is new, so version 1 is SQLite's schema as it stands after its migration 4, in
 * PostgreSQL's words. Conventions (so `../rows.ts` maps rows of both backends): times are
 * BIGINT milliseconds since the epoch (exact round-trip, like SQLite's INTEGER); JSON is TEXT
 * (jsonb would reorder keys and drop duplicates: what was written is what is read); ids of
 * append-only tables are identity columns, and "append order" is id order. Text keys that are
 * listed in order use COLLATE "C", so the order is byte order, as in SQLite, whatever the
 * database's locale. Sends and acks carry no foreign key to agents, as in SQLite: an ack from
 * an agent the store does not know is evidence and must be kept.
 */
export const MIGRATIONS: readonly string[] = Object.freeze([
  // 1: the initial schema.
  `
  CREATE TABLE server_state (
    id                INTEGER PRIMARY KEY CHECK (id = 1),
    accepted          TEXT,
    generation        BIGINT NOT NULL CHECK (generation >= 0),
    refusal           TEXT,
    accepted_seen_at  BIGINT
  );
  INSERT INTO server_state (id, accepted, generation, refusal, accepted_seen_at) VALUES (1, NULL, 0, NULL, NULL);

  CREATE TABLE agents (
    id                  TEXT COLLATE "C" PRIMARY KEY,
    desired_commit      TEXT,
    desired_digest      TEXT,
    desired_generation  BIGINT,
    active_commit       TEXT,
    active_digest       TEXT,
    active_generation   BIGINT,
    active_at           BIGINT,
    state               TEXT NOT NULL CHECK (state IN ('SYNCED', 'PENDING', 'STALE', 'NACKED', 'QUARANTINED', 'DISCONNECTED')),
    cert_serial         TEXT,
    cert_expiry         BIGINT,
    last_seen           BIGINT,
    quarantine_since    BIGINT,
    quarantine_reason   TEXT,
    quarantine_by       TEXT,
    CHECK ((desired_commit IS NULL) = (desired_digest IS NULL) AND (desired_digest IS NULL) = (desired_generation IS NULL)),
    CHECK ((active_digest IS NULL) = (active_at IS NULL)),
    CHECK ((quarantine_since IS NULL) = (quarantine_by IS NULL))
  );

  CREATE TABLE sends (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    nonce       TEXT NOT NULL,
    at          BIGINT NOT NULL
  );
  CREATE INDEX sends_by_agent_digest ON sends (agent_id, digest);
  CREATE INDEX sends_by_agent ON sends (agent_id, id);

  CREATE TABLE acks (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    commit_sha  TEXT NOT NULL,
    digest      TEXT NOT NULL,
    generation  BIGINT NOT NULL,
    nonce       TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('APPLIED', 'REJECTED')),
    error       TEXT NOT NULL,
    at          BIGINT NOT NULL
  );
  CREATE INDEX acks_by_agent ON acks (agent_id, id);
  CREATE INDEX acks_applied_by_agent ON acks (agent_id, digest) WHERE status = 'APPLIED';

  CREATE TABLE rollout (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    commit_sha  TEXT NOT NULL,
    document    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    revision    BIGINT NOT NULL
  );

  CREATE TABLE tokens (
    hash        BYTEA PRIMARY KEY CHECK (length(hash) = 32),
    agent_id    TEXT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT
  );
  CREATE INDEX tokens_by_expiry ON tokens (expires_at);

  CREATE TABLE revocations (
    serial      TEXT COLLATE "C" PRIMARY KEY,
    agent_id    TEXT NOT NULL,
    at          BIGINT NOT NULL,
    revoked_by  TEXT NOT NULL
  );

  CREATE TABLE audit (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    reason      TEXT NOT NULL,
    details     TEXT NOT NULL
  );

  CREATE TABLE admin_tokens (
    name        TEXT COLLATE "C" PRIMARY KEY,
    role        TEXT NOT NULL CHECK (role IN ('viewer', 'operator')),
    hash        BYTEA NOT NULL UNIQUE CHECK (length(hash) = 32),
    created_at  BIGINT NOT NULL,
    created_by  TEXT NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
  );

  CREATE TABLE agent_certificates (
    agent_id    TEXT COLLATE "C" PRIMARY KEY,
    serial      TEXT NOT NULL,
    kind        TEXT NOT NULL CHECK (kind IN ('enroll', 'renew', 'adopted')),
    at          BIGINT NOT NULL
  );
  `,
  // 2 (replicas): signed generations as the leader signed them (statement, Sigstore bundle, leaves), the newest few.
  `
  CREATE TABLE generations (
    generation  BIGINT PRIMARY KEY CHECK (generation > 0),
    commit_sha  TEXT NOT NULL,
    statement   TEXT NOT NULL,
    bundle      TEXT NOT NULL,
    agents      TEXT NOT NULL,
    at          BIGINT NOT NULL
  );
  `,
  // 3: the ids of recorded write batches, so a batch retried after a lost answer is written once.
  `
  CREATE TABLE write_batches (
    id  TEXT COLLATE "C" PRIMARY KEY,
    at  BIGINT NOT NULL
  );
  CREATE INDEX write_batches_at ON write_batches (at);
  `,
]);

/**
 * The advisory-lock key every migration transaction holds (`pg_advisory_xact_lock`), so two
 * replicas starting at once on an empty database apply each migration once, one after the
 * other. An arbitrary constant ("meshcfg" in ASCII, as a 64-bit key); other advisory locks of
 * meshcfg (leadership) use other keys. A decimal string: it is above 2^53, passed as `$1::bigint`.
 */
export const MIGRATION_LOCK = '7882833614963369729';
