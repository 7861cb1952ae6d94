-- The tenant registry as Monk API 6.2 defines it on PostgreSQL (schema `public`). Every
-- statement is IF NOT EXISTS so that a registry the API created (same tables, no migration
-- history) is adopted without any change. The API's other registry tables (`processes`,
-- `auth0_identity_mappings`) are the API's own business and not created here.
CREATE TABLE IF NOT EXISTS tenants (
    id uuid DEFAULT gen_random_uuid() NOT NULL PRIMARY KEY,
    name varchar(255) NOT NULL UNIQUE,
    db_type varchar(20) DEFAULT 'postgresql' NOT NULL CHECK (db_type IN ('postgresql', 'sqlite')),
    database varchar(255) NOT NULL,
    schema varchar(255) NOT NULL,
    status varchar(20) DEFAULT 'active' NOT NULL
        CHECK (status IN ('pending', 'active', 'suspended', 'dissolving', 'deleted')),
    template_version integer DEFAULT 1 NOT NULL,
    description text,
    source_template varchar(255),
    owner_id uuid NOT NULL,
    is_active boolean DEFAULT true NOT NULL,
    created_at timestamp DEFAULT CURRENT_TIMESTAMP NOT NULL,
    updated_at timestamp DEFAULT CURRENT_TIMESTAMP NOT NULL,
    trashed_at timestamp,
    deleted_at timestamp,
    CONSTRAINT tenants_database_schema_unique UNIQUE (database, schema)
);
CREATE INDEX IF NOT EXISTS idx_tenants_name_active ON tenants (name, is_active);
CREATE INDEX IF NOT EXISTS idx_tenants_database ON tenants (database);
CREATE INDEX IF NOT EXISTS idx_tenants_owner ON tenants (owner_id);
CREATE INDEX IF NOT EXISTS idx_tenants_name_status ON tenants (name, status);

CREATE TABLE IF NOT EXISTS tenant_fixtures (
    tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    fixture_name varchar(255) NOT NULL,
    deployed_at timestamp DEFAULT CURRENT_TIMESTAMP NOT NULL,
    PRIMARY KEY (tenant_id, fixture_name)
);
CREATE INDEX IF NOT EXISTS idx_tenant_fixtures_tenant ON tenant_fixtures (tenant_id);
CREATE INDEX IF NOT EXISTS idx_tenant_fixtures_fixture ON tenant_fixtures (fixture_name);
