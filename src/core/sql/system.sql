-- The `system` fixture: the tenant schema and rows that Monk API 6.2 writes for a new tenant.
-- Statements run in order inside one transaction. `monk_uuid()` is a function monkctl registers
-- on the connection (a fresh random UUID v4 per call). The owner user is added per tenant.

CREATE TABLE "models" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "model_name" TEXT NOT NULL,
    "status" TEXT DEFAULT 'active' NOT NULL,
    "description" TEXT,
    "sudo" INTEGER DEFAULT 0 NOT NULL,
    "frozen" INTEGER DEFAULT 0 NOT NULL,
    "immutable" INTEGER DEFAULT 0 NOT NULL,
    "external" INTEGER DEFAULT 0 NOT NULL,
    "passthrough" INTEGER DEFAULT 0 NOT NULL,
    CONSTRAINT "model_name_unique" UNIQUE("model_name")
);

CREATE TABLE "fields" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "model_name" TEXT NOT NULL,
    "field_name" TEXT NOT NULL,
    "type" TEXT NOT NULL CHECK ("type" IN (
        'text', 'integer', 'bigint', 'bigserial', 'numeric', 'boolean',
        'jsonb', 'uuid', 'timestamp', 'date', 'binary',
        'text[]', 'integer[]', 'numeric[]', 'uuid[]'
    )),
    "required" INTEGER DEFAULT 0 NOT NULL,
    "default_value" TEXT,
    "description" TEXT,
    "relationship_type" TEXT,
    "related_model" TEXT,
    "related_field" TEXT,
    "relationship_name" TEXT,
    "cascade_delete" INTEGER DEFAULT 0,
    "required_relationship" INTEGER DEFAULT 0,
    "minimum" REAL,
    "maximum" REAL,
    "pattern" TEXT,
    "enum_values" TEXT,
    "is_array" INTEGER DEFAULT 0,
    "immutable" INTEGER DEFAULT 0 NOT NULL,
    "sudo" INTEGER DEFAULT 0 NOT NULL,
    "unique" INTEGER DEFAULT 0 NOT NULL,
    "index" INTEGER DEFAULT 0 NOT NULL,
    "tracked" INTEGER DEFAULT 0 NOT NULL,
    "searchable" INTEGER DEFAULT 0 NOT NULL,
    "transform" TEXT,
    FOREIGN KEY ("model_name") REFERENCES "models"("model_name")
);

CREATE UNIQUE INDEX "idx_fields_model_field" ON "fields" ("model_name", "field_name");

CREATE TABLE "users" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "name" TEXT NOT NULL,
    "auth" TEXT NOT NULL,
    "access" TEXT CHECK ("access" IN ('root', 'full', 'edit', 'read', 'deny')) NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    CONSTRAINT "users_auth_unique" UNIQUE("auth")
);

CREATE TABLE "filters" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "name" TEXT NOT NULL,
    "model_name" TEXT NOT NULL,
    "description" TEXT,
    "select" TEXT,
    "where" TEXT,
    "order" TEXT,
    "limit" INTEGER,
    "offset" INTEGER,
    FOREIGN KEY ("model_name") REFERENCES "models"("model_name") ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE UNIQUE INDEX "idx_filters_model_name" ON "filters" ("model_name", "name");

CREATE TABLE "credentials" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "user_id" TEXT NOT NULL,
    "type" TEXT NOT NULL CHECK ("type" IN ('password', 'api_key')),
    "identifier" TEXT,
    "secret" TEXT NOT NULL,
    "algorithm" TEXT,
    "permissions" TEXT,
    "name" TEXT,
    "expires_at" TEXT,
    "last_used_at" TEXT,
    FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE
);

CREATE INDEX "idx_credentials_user_type"
    ON "credentials" ("user_id", "type", "created_at" DESC);

CREATE INDEX "idx_credentials_identifier"
    ON "credentials" ("type", "identifier");

CREATE TABLE "tenant_keys" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "tenant_id" TEXT,
    "user_id" TEXT NOT NULL,
    "name" TEXT,
    "algorithm" TEXT NOT NULL CHECK ("algorithm" IN ('ed25519')),
    "public_key" TEXT NOT NULL,
    "fingerprint" TEXT NOT NULL,
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "last_used_at" TEXT,
    "expires_at" TEXT,
    "revoked_at" TEXT,
    FOREIGN KEY ("user_id") REFERENCES "users"("id") ON DELETE CASCADE
);

CREATE UNIQUE INDEX "idx_tenant_keys_fingerprint"
    ON "tenant_keys" ("fingerprint");

CREATE INDEX "idx_tenant_keys_user"
    ON "tenant_keys" ("user_id", "created_at" DESC);

CREATE TABLE "auth_challenges" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "key_id" TEXT NOT NULL REFERENCES "tenant_keys"("id") ON DELETE CASCADE,
    "nonce" TEXT NOT NULL,
    "algorithm" TEXT NOT NULL CHECK ("algorithm" IN ('ed25519')),
    "issued_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "expires_at" TEXT NOT NULL,
    "used_at" TEXT
);

CREATE INDEX "idx_auth_challenges_key"
    ON "auth_challenges" ("key_id", "issued_at" DESC);

CREATE TABLE "tracked" (
    "change_id" INTEGER PRIMARY KEY AUTOINCREMENT,
    "id" TEXT NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "model_name" TEXT NOT NULL,
    "record_id" TEXT NOT NULL,
    "operation" TEXT NOT NULL,
    "changes" TEXT NOT NULL,
    "created_by" TEXT,
    "request_id" TEXT,
    "metadata" TEXT
);

CREATE INDEX "idx_tracked_model_record" ON "tracked" (model_name, record_id, change_id DESC);

CREATE TABLE "fs" (
    "id" TEXT PRIMARY KEY NOT NULL,
    "access_read" TEXT DEFAULT '[]',
    "access_edit" TEXT DEFAULT '[]',
    "access_full" TEXT DEFAULT '[]',
    "access_deny" TEXT DEFAULT '[]',
    "created_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "updated_at" TEXT DEFAULT CURRENT_TIMESTAMP NOT NULL,
    "trashed_at" TEXT,
    "deleted_at" TEXT,
    "parent_id" TEXT,
    "name" TEXT NOT NULL,
    "path" TEXT NOT NULL,
    "node_type" TEXT NOT NULL CHECK ("node_type" IN ('file', 'directory', 'symlink')),
    "content" BLOB,
    "target" TEXT,
    "mode" INTEGER DEFAULT 420 NOT NULL,
    "size" INTEGER DEFAULT 0 NOT NULL,
    "owner_id" TEXT,
    CONSTRAINT "fs_path_unique" UNIQUE("path"),
    FOREIGN KEY ("parent_id") REFERENCES "fs"("id") ON DELETE CASCADE,
    FOREIGN KEY ("owner_id") REFERENCES "users"("id") ON DELETE SET NULL
);

CREATE INDEX "idx_fs_parent" ON "fs" ("parent_id");

CREATE INDEX "idx_fs_path" ON "fs" ("path");


-- Models: every system table but tenant_keys and auth_challenges.
INSERT INTO "models" ("id", "model_name", "status", "description", "sudo") VALUES
    (monk_uuid(), 'models', 'system', NULL, 1),
    (monk_uuid(), 'fields', 'system', NULL, 1),
    (monk_uuid(), 'users', 'system', NULL, 1),
    (monk_uuid(), 'filters', 'system', NULL, 0),
    (monk_uuid(), 'credentials', 'system', 'User authentication credentials', 1),
    (monk_uuid(), 'tracked', 'system', 'Change tracking and audit trail', 1),
    (monk_uuid(), 'fs', 'system', 'Filesystem nodes', 1);


-- Fields: one row per column the API exposes for those models.
INSERT INTO "fields" ("id", "model_name", "field_name", "type", "required", "default_value", "description") VALUES
    (monk_uuid(), 'models', 'model_name', 'text', 1, NULL, 'Unique name for the model'),
    (monk_uuid(), 'models', 'status', 'text', 0, 'active', 'Model status'),
    (monk_uuid(), 'models', 'description', 'text', 0, NULL, 'Human-readable description'),
    (monk_uuid(), 'models', 'sudo', 'boolean', 0, NULL, 'Whether model modifications require sudo'),
    (monk_uuid(), 'models', 'frozen', 'boolean', 0, NULL, 'Whether data changes are prevented'),
    (monk_uuid(), 'models', 'immutable', 'boolean', 0, NULL, 'Whether records are write-once'),
    (monk_uuid(), 'models', 'external', 'boolean', 0, NULL, 'Whether model is managed externally'),
    (monk_uuid(), 'fields', 'model_name', 'text', 1, NULL, 'Name of the model'),
    (monk_uuid(), 'fields', 'field_name', 'text', 1, NULL, 'Name of the field'),
    (monk_uuid(), 'fields', 'type', 'text', 1, NULL, 'Data type'),
    (monk_uuid(), 'fields', 'required', 'boolean', 0, NULL, 'Whether required'),
    (monk_uuid(), 'fields', 'default_value', 'text', 0, NULL, 'Default value'),
    (monk_uuid(), 'fields', 'description', 'text', 0, NULL, 'Description'),
    (monk_uuid(), 'fields', 'relationship_type', 'text', 0, NULL, 'Relationship type'),
    (monk_uuid(), 'fields', 'related_model', 'text', 0, NULL, 'Related model'),
    (monk_uuid(), 'fields', 'related_field', 'text', 0, NULL, 'Related field'),
    (monk_uuid(), 'fields', 'relationship_name', 'text', 0, NULL, 'Relationship name'),
    (monk_uuid(), 'fields', 'cascade_delete', 'boolean', 0, NULL, 'Cascade delete'),
    (monk_uuid(), 'fields', 'required_relationship', 'boolean', 0, NULL, 'Required relationship'),
    (monk_uuid(), 'fields', 'minimum', 'numeric', 0, NULL, 'Minimum value'),
    (monk_uuid(), 'fields', 'maximum', 'numeric', 0, NULL, 'Maximum value'),
    (monk_uuid(), 'fields', 'pattern', 'text', 0, NULL, 'Regex pattern'),
    (monk_uuid(), 'fields', 'enum_values', 'text[]', 0, NULL, 'Enum values'),
    (monk_uuid(), 'fields', 'is_array', 'boolean', 0, NULL, 'Is array'),
    (monk_uuid(), 'fields', 'immutable', 'boolean', 0, NULL, 'Immutable'),
    (monk_uuid(), 'fields', 'sudo', 'boolean', 0, NULL, 'Requires sudo'),
    (monk_uuid(), 'fields', 'unique', 'boolean', 0, NULL, 'Must be unique'),
    (monk_uuid(), 'fields', 'index', 'boolean', 0, NULL, 'Create index'),
    (monk_uuid(), 'fields', 'tracked', 'boolean', 0, NULL, 'Track changes'),
    (monk_uuid(), 'fields', 'searchable', 'boolean', 0, NULL, 'Full-text search'),
    (monk_uuid(), 'fields', 'transform', 'text', 0, NULL, 'Auto-transform'),
    (monk_uuid(), 'users', 'name', 'text', 1, NULL, 'User display name'),
    (monk_uuid(), 'users', 'auth', 'text', 1, NULL, 'Authentication identifier'),
    (monk_uuid(), 'users', 'access', 'text', 1, NULL, 'User access level'),
    (monk_uuid(), 'filters', 'name', 'text', 1, NULL, 'Filter name'),
    (monk_uuid(), 'filters', 'model_name', 'text', 1, NULL, 'Target model'),
    (monk_uuid(), 'filters', 'description', 'text', 0, NULL, 'Description'),
    (monk_uuid(), 'filters', 'select', 'jsonb', 0, NULL, 'Fields to return'),
    (monk_uuid(), 'filters', 'where', 'jsonb', 0, NULL, 'Filter conditions'),
    (monk_uuid(), 'filters', 'order', 'jsonb', 0, NULL, 'Sort order'),
    (monk_uuid(), 'filters', 'limit', 'integer', 0, NULL, 'Max records'),
    (monk_uuid(), 'filters', 'offset', 'integer', 0, NULL, 'Records to skip'),
    (monk_uuid(), 'credentials', 'user_id', 'uuid', 1, NULL, 'Reference to the user'),
    (monk_uuid(), 'credentials', 'type', 'text', 1, NULL, 'Credential type: password, api_key'),
    (monk_uuid(), 'credentials', 'identifier', 'text', 0, NULL, 'Public identifier (API key prefix)'),
    (monk_uuid(), 'credentials', 'secret', 'text', 1, NULL, 'Hashed secret value'),
    (monk_uuid(), 'credentials', 'algorithm', 'text', 0, NULL, 'Hashing algorithm used'),
    (monk_uuid(), 'credentials', 'permissions', 'text', 0, NULL, 'JSON permissions for API keys'),
    (monk_uuid(), 'credentials', 'name', 'text', 0, NULL, 'Friendly name for the credential'),
    (monk_uuid(), 'credentials', 'expires_at', 'timestamp', 0, NULL, 'Expiration timestamp'),
    (monk_uuid(), 'credentials', 'last_used_at', 'timestamp', 0, NULL, 'Last usage timestamp'),
    (monk_uuid(), 'tracked', 'change_id', 'bigserial', 1, NULL, 'Auto-incrementing change identifier'),
    (monk_uuid(), 'tracked', 'model_name', 'text', 1, NULL, 'Model where the change occurred'),
    (monk_uuid(), 'tracked', 'record_id', 'uuid', 1, NULL, 'ID of the changed record'),
    (monk_uuid(), 'tracked', 'operation', 'text', 1, NULL, 'Operation type: create, update, delete'),
    (monk_uuid(), 'tracked', 'changes', 'jsonb', 1, NULL, 'Field-level changes with old/new values'),
    (monk_uuid(), 'tracked', 'created_by', 'uuid', 0, NULL, 'ID of the user who made the change'),
    (monk_uuid(), 'tracked', 'request_id', 'text', 0, NULL, 'Request correlation ID'),
    (monk_uuid(), 'tracked', 'metadata', 'jsonb', 0, NULL, 'Additional context'),
    (monk_uuid(), 'fs', 'parent_id', 'uuid', 0, NULL, 'Parent directory'),
    (monk_uuid(), 'fs', 'name', 'text', 1, NULL, 'File or directory name'),
    (monk_uuid(), 'fs', 'path', 'text', 1, NULL, 'Full absolute path'),
    (monk_uuid(), 'fs', 'node_type', 'text', 1, NULL, 'Node type: file, directory, symlink'),
    (monk_uuid(), 'fs', 'content', 'binary', 0, NULL, 'File content'),
    (monk_uuid(), 'fs', 'target', 'text', 0, NULL, 'Symlink target path'),
    (monk_uuid(), 'fs', 'mode', 'integer', 0, NULL, 'Unix permission bits'),
    (monk_uuid(), 'fs', 'size', 'integer', 0, NULL, 'Content size in bytes'),
    (monk_uuid(), 'fs', 'owner_id', 'uuid', 0, NULL, 'Owner user ID');


-- The root user (fixed id) and the root directory it owns.
INSERT INTO "users" ("id", "name", "auth", "access")
    VALUES ('00000000-0000-0000-0000-000000000000', 'Root User', 'root', 'root');
INSERT INTO "fs" ("id", "parent_id", "name", "path", "node_type", "mode", "size", "owner_id", "created_at", "updated_at")
    VALUES (monk_uuid(), NULL, 'root', '/', 'directory', 448, 0, '00000000-0000-0000-0000-000000000000',
            strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));
