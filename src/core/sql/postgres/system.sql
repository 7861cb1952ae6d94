-- The `system` fixture on PostgreSQL: the tenant schema and rows that Monk API 6.2 writes for a
-- new tenant (its schema `ns_tenant_<name>`), as its own dump of a fresh tenant shows them.
--
-- How it runs: inside the transaction that creates the tenant, right after
-- `CREATE SCHEMA ns_tenant_<name>` and `SET LOCAL search_path TO ns_tenant_<name>` (that schema
-- alone). Every name below is unqualified, so everything lands in the new schema; nothing here
-- sets, commits or changes owners.
--
-- No extension: the API also runs `CREATE EXTENSION IF NOT EXISTS pgcrypto`, which installs
-- pgcrypto into the schema of the first tenant ever created in the database (and a later drop
-- of that schema drops it again). Nothing needs it: every uuid default is the built-in
-- `gen_random_uuid()` of PostgreSQL 13 and later.
--
-- Timestamps are `timestamp without time zone` holding UTC wall-clock time. The seed rows set
-- them explicitly to `now() AT TIME ZONE 'UTC'` (the transaction's start, in UTC), whatever the
-- session's time zone. The column defaults are the API's plain `now()`, which gives UTC only in
-- a session whose TimeZone is UTC: rows that rely on those defaults need such a session.
--
-- Ids: the root user's is fixed (all zeros), as the API's; every other seed id is fresh
-- (`gen_random_uuid()`). The owner user, when it is not root, is added by monkctl per tenant.

CREATE TYPE field_type AS ENUM (
    'text',
    'integer',
    'bigint',
    'bigserial',
    'numeric',
    'boolean',
    'jsonb',
    'uuid',
    'timestamp',
    'date',
    'binary',
    'text[]',
    'integer[]',
    'numeric[]',
    'uuid[]'
);

CREATE TABLE models (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    model_name text NOT NULL,
    status text DEFAULT 'active' NOT NULL,
    description text,
    sudo boolean DEFAULT false NOT NULL,
    frozen boolean DEFAULT false NOT NULL,
    immutable boolean DEFAULT false NOT NULL,
    external boolean DEFAULT false NOT NULL,
    passthrough boolean DEFAULT false NOT NULL,
    CONSTRAINT model_name_unique UNIQUE (model_name)
);

CREATE TABLE fields (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    model_name text NOT NULL,
    field_name text NOT NULL,
    type field_type NOT NULL,
    required boolean DEFAULT false NOT NULL,
    default_value text,
    description text,
    relationship_type text,
    related_model text,
    related_field text,
    relationship_name text,
    cascade_delete boolean DEFAULT false,
    required_relationship boolean DEFAULT false,
    minimum numeric,
    maximum numeric,
    pattern text,
    enum_values text[],
    is_array boolean DEFAULT false,
    immutable boolean DEFAULT false NOT NULL,
    sudo boolean DEFAULT false NOT NULL,
    "unique" boolean DEFAULT false NOT NULL,
    index boolean DEFAULT false NOT NULL,
    tracked boolean DEFAULT false NOT NULL,
    searchable boolean DEFAULT false NOT NULL,
    transform text,
    CONSTRAINT fields_models_name_model_name_fk
        FOREIGN KEY (model_name) REFERENCES models (model_name)
);

CREATE UNIQUE INDEX idx_fields_model_field ON fields (model_name, field_name);

CREATE TABLE users (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    name text NOT NULL,
    auth text NOT NULL,
    access text NOT NULL CHECK (access IN ('root', 'full', 'edit', 'read', 'deny')),
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    CONSTRAINT users_auth_unique UNIQUE (auth)
);

CREATE TABLE filters (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    name text NOT NULL,
    model_name text NOT NULL,
    description text,
    "select" jsonb,
    "where" jsonb,
    "order" jsonb,
    "limit" integer,
    "offset" integer,
    CONSTRAINT filters_models_model_name_fk
        FOREIGN KEY (model_name) REFERENCES models (model_name)
        ON UPDATE CASCADE ON DELETE CASCADE
);

CREATE UNIQUE INDEX idx_filters_model_name ON filters (model_name, name);

CREATE TABLE credentials (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    type text NOT NULL CHECK (type IN ('password', 'api_key')),
    identifier text,
    secret text NOT NULL,
    algorithm text,
    permissions text,
    name text,
    expires_at timestamp,
    last_used_at timestamp
);

CREATE INDEX idx_credentials_user_type ON credentials (user_id, type, created_at DESC);
CREATE INDEX idx_credentials_identifier ON credentials (type, identifier)
    WHERE identifier IS NOT NULL;

CREATE TABLE tenant_keys (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    tenant_id uuid,
    user_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name text,
    algorithm text NOT NULL CHECK (algorithm = 'ed25519'),
    public_key text NOT NULL,
    fingerprint text NOT NULL,
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    last_used_at timestamp,
    expires_at timestamp,
    revoked_at timestamp
);

CREATE UNIQUE INDEX idx_tenant_keys_fingerprint ON tenant_keys (fingerprint);
CREATE INDEX idx_tenant_keys_user ON tenant_keys (user_id, created_at DESC);

CREATE TABLE auth_challenges (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    key_id uuid NOT NULL REFERENCES tenant_keys (id) ON DELETE CASCADE,
    nonce text NOT NULL,
    algorithm text NOT NULL CHECK (algorithm = 'ed25519'),
    issued_at timestamp DEFAULT now() NOT NULL,
    expires_at timestamp NOT NULL,
    used_at timestamp
);

CREATE INDEX idx_auth_challenges_key ON auth_challenges (key_id, issued_at DESC);

-- Unlike SQLite, the key is `id`; `change_id` orders the changes.
CREATE TABLE tracked (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    change_id bigserial,
    model_name text NOT NULL,
    record_id uuid NOT NULL,
    operation text NOT NULL,
    changes jsonb NOT NULL,
    created_by uuid,
    request_id text,
    metadata jsonb
);

CREATE INDEX idx_tracked_model_record ON tracked (model_name, record_id, change_id DESC);

CREATE TABLE fs (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    access_read uuid[] DEFAULT '{}',
    access_edit uuid[] DEFAULT '{}',
    access_full uuid[] DEFAULT '{}',
    access_deny uuid[] DEFAULT '{}',
    created_at timestamp DEFAULT now() NOT NULL,
    updated_at timestamp DEFAULT now() NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    parent_id uuid REFERENCES fs (id) ON DELETE CASCADE,
    name text NOT NULL,
    path text NOT NULL,
    node_type text NOT NULL CHECK (node_type IN ('file', 'directory', 'symlink')),
    content bytea,
    target text,
    mode integer DEFAULT 420 NOT NULL,
    size integer DEFAULT 0 NOT NULL,
    owner_id uuid REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT fs_path_unique UNIQUE (path)
);

CREATE INDEX idx_fs_parent ON fs (parent_id);
CREATE INDEX idx_fs_path ON fs (path);


-- Models: every system table but tenant_keys and auth_challenges.
INSERT INTO models (id, created_at, updated_at, model_name, status, description, sudo)
SELECT gen_random_uuid(), now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
       v.model_name, v.status, v.description, v.sudo
FROM (VALUES
    ('models', 'system', NULL, true),
    ('fields', 'system', NULL, true),
    ('users', 'system', NULL, true),
    ('filters', 'system', NULL, false),
    ('credentials', 'system', 'User authentication credentials', true),
    ('tracked', 'system', 'Change tracking and audit trail', true),
    ('fs', 'system', 'Filesystem nodes', true)
) AS v (model_name, status, description, sudo);

-- Fields: one row per column the API exposes for those models (every other column of a row
-- keeps its default).
INSERT INTO fields (id, created_at, updated_at,
                    model_name, field_name, type, required, default_value, description)
SELECT gen_random_uuid(), now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
       v.model_name, v.field_name, v.type::field_type, v.required, v.default_value, v.description
FROM (VALUES
    ('models', 'model_name', 'text', true, NULL, 'Unique name for the model'),
    ('models', 'status', 'text', false, 'active', 'Model status (active, disabled, system)'),
    ('models', 'description', 'text', false, NULL, 'Human-readable description of the model'),
    ('models', 'sudo', 'boolean', false, NULL, 'Whether model modifications require sudo access'),
    ('models', 'frozen', 'boolean', false, NULL, 'Whether all data changes are prevented on this model'),
    ('models', 'immutable', 'boolean', false, NULL, 'Whether records are write-once'),
    ('models', 'external', 'boolean', false, NULL, 'Whether model is managed externally'),
    ('fields', 'model_name', 'text', true, NULL, 'Name of the model this field belongs to'),
    ('fields', 'field_name', 'text', true, NULL, 'Name of the field'),
    ('fields', 'type', 'text', true, NULL, 'Data type of the field'),
    ('fields', 'required', 'boolean', false, NULL, 'Whether the field is required'),
    ('fields', 'default_value', 'text', false, NULL, 'Default value for the field'),
    ('fields', 'description', 'text', false, NULL, 'Human-readable description'),
    ('fields', 'relationship_type', 'text', false, NULL, 'Type of relationship'),
    ('fields', 'related_model', 'text', false, NULL, 'Related model for relationships'),
    ('fields', 'related_field', 'text', false, NULL, 'Related field for relationships'),
    ('fields', 'relationship_name', 'text', false, NULL, 'Name of the relationship'),
    ('fields', 'cascade_delete', 'boolean', false, NULL, 'Whether to cascade delete'),
    ('fields', 'required_relationship', 'boolean', false, NULL, 'Whether the relationship is required'),
    ('fields', 'minimum', 'numeric', false, NULL, 'Minimum value constraint'),
    ('fields', 'maximum', 'numeric', false, NULL, 'Maximum value constraint'),
    ('fields', 'pattern', 'text', false, NULL, 'Regular expression pattern'),
    ('fields', 'enum_values', 'text[]', false, NULL, 'Allowed enum values'),
    ('fields', 'is_array', 'boolean', false, NULL, 'Whether the field is an array'),
    ('fields', 'immutable', 'boolean', false, NULL, 'Whether the field value cannot be changed'),
    ('fields', 'sudo', 'boolean', false, NULL, 'Whether modifying requires sudo'),
    ('fields', 'unique', 'boolean', false, NULL, 'Whether values must be unique'),
    ('fields', 'index', 'boolean', false, NULL, 'Whether to create an index'),
    ('fields', 'tracked', 'boolean', false, NULL, 'Whether changes are tracked'),
    ('fields', 'searchable', 'boolean', false, NULL, 'Whether full-text search is enabled'),
    ('fields', 'transform', 'text', false, NULL, 'Auto-transform values'),
    ('users', 'name', 'text', true, NULL, 'User display name'),
    ('users', 'auth', 'text', true, NULL, 'Authentication identifier'),
    ('users', 'access', 'text', true, NULL, 'User access level'),
    ('filters', 'name', 'text', true, NULL, 'Unique name for this saved filter'),
    ('filters', 'model_name', 'text', true, NULL, 'Target model'),
    ('filters', 'description', 'text', false, NULL, 'Human-readable description'),
    ('filters', 'select', 'jsonb', false, NULL, 'Fields to return'),
    ('filters', 'where', 'jsonb', false, NULL, 'Filter conditions'),
    ('filters', 'order', 'jsonb', false, NULL, 'Sort order'),
    ('filters', 'limit', 'integer', false, NULL, 'Maximum records'),
    ('filters', 'offset', 'integer', false, NULL, 'Records to skip'),
    ('credentials', 'user_id', 'uuid', true, NULL, 'Reference to the user who owns this credential'),
    ('credentials', 'type', 'text', true, NULL, 'Credential type: password, api_key'),
    ('credentials', 'identifier', 'text', false, NULL, 'Public identifier (API key prefix)'),
    ('credentials', 'secret', 'text', true, NULL, 'Hashed secret value'),
    ('credentials', 'algorithm', 'text', false, NULL, 'Hashing algorithm used'),
    ('credentials', 'permissions', 'text', false, NULL, 'JSON permissions for API keys'),
    ('credentials', 'name', 'text', false, NULL, 'Friendly name for the credential'),
    ('credentials', 'expires_at', 'timestamp', false, NULL, 'Expiration timestamp'),
    ('credentials', 'last_used_at', 'timestamp', false, NULL, 'Last usage timestamp'),
    ('tracked', 'change_id', 'bigserial', true, NULL, 'Auto-incrementing change identifier for ordering'),
    ('tracked', 'model_name', 'text', true, NULL, 'Name of the model where the change occurred'),
    ('tracked', 'record_id', 'uuid', true, NULL, 'ID of the record that was changed'),
    ('tracked', 'operation', 'text', true, NULL, 'Operation type: create, update, or delete'),
    ('tracked', 'changes', 'jsonb', true, NULL, 'Field-level changes with old and new values'),
    ('tracked', 'created_by', 'uuid', false, NULL, 'ID of the user who made the change'),
    ('tracked', 'request_id', 'text', false, NULL, 'Request correlation ID for tracing'),
    ('tracked', 'metadata', 'jsonb', false, NULL, 'Additional context (IP address, user agent, etc.)'),
    ('fs', 'parent_id', 'uuid', false, NULL, 'Parent directory (null for root)'),
    ('fs', 'name', 'text', true, NULL, 'File or directory name'),
    ('fs', 'path', 'text', true, NULL, 'Full absolute path'),
    ('fs', 'node_type', 'text', true, NULL, 'Node type: file, directory, symlink'),
    ('fs', 'content', 'binary', false, NULL, 'File content (null for directories)'),
    ('fs', 'target', 'text', false, NULL, 'Symlink target path'),
    ('fs', 'mode', 'integer', false, NULL, 'Unix permission bits'),
    ('fs', 'size', 'integer', false, NULL, 'Content size in bytes'),
    ('fs', 'owner_id', 'uuid', false, NULL, 'Owner user ID')
) AS v (model_name, field_name, type, required, default_value, description);

-- The root user (fixed id) and the root directory, owned by root whoever owns the tenant.
INSERT INTO users (id, name, auth, access, created_at, updated_at)
VALUES ('00000000-0000-0000-0000-000000000000', 'Root User', 'root', 'root',
        now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC');

INSERT INTO fs (id, created_at, updated_at,
                parent_id, name, path, node_type, content, target, mode, size, owner_id)
VALUES (gen_random_uuid(), now() AT TIME ZONE 'UTC', now() AT TIME ZONE 'UTC',
        NULL, 'root', '/', 'directory', NULL, NULL, 448, 0,
        '00000000-0000-0000-0000-000000000000');
