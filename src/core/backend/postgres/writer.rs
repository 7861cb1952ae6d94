//! Writes inside one registry transaction (`RegistryWriter`).

use super::*;

/// A writer inside one open transaction.
pub(super) struct Writer<'a, 't> {
    pub(super) tx: RefCell<Transaction<'t>>,
    pub(super) target: &'a Target,
}

impl Writer<'_, '_> {
    fn exec(&self, sql: &str, params: &[&(dyn postgres::types::ToSql + Sync)]) -> Result<()> {
        self.tx
            .borrow_mut()
            .execute(sql, params)
            .map(|_| ())
            .map_err(|e| self.target.error(None, e))
    }
}

impl RegistryWriter for Writer<'_, '_> {
    fn find(&self, name: &str) -> Result<Option<TenantRow>> {
        let sql = format!("SELECT {TENANT_COLUMNS} FROM public.tenants WHERE name = $1");
        let row = self
            .tx
            .borrow_mut()
            .query_opt(&sql, &[&name])
            .map_err(|e| self.target.error(None, e))?;
        Ok(row.as_ref().map(tenant_from_row))
    }

    fn location_claimed(&self, database: &str, schema: &str) -> Result<bool> {
        let row = self
            .tx
            .borrow_mut()
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM public.tenants WHERE database = $1 AND schema = $2)",
                &[&database, &schema],
            )
            .map_err(|e| self.target.error(None, e))?;
        Ok(row.get(0))
    }

    fn insert(&self, t: &TenantRow) -> Result<()> {
        insert_row(&mut self.tx.borrow_mut(), self.target, t)
    }

    fn update_state(&self, t: &TenantRow) -> Result<()> {
        self.exec(
            "UPDATE public.tenants SET status = $2, is_active = $3, trashed_at = $4::text::timestamp, \
             deleted_at = $5::text::timestamp, updated_at = $6::text::timestamp WHERE id = $1::text::uuid",
            &[
                &t.id,
                &t.status,
                &t.is_active,
                &t.trashed_at,
                &t.deleted_at,
                &t.updated_at,
            ],
        )
    }

    fn record_fixture(&self, tenant_id: &str, fixture: &str, deployed_at: &str) -> Result<()> {
        self.exec(
            "INSERT INTO public.tenant_fixtures (tenant_id, fixture_name, deployed_at) \
             VALUES ($1::text::uuid, $2, $3::text::timestamp) ON CONFLICT (tenant_id, fixture_name) \
             DO UPDATE SET deployed_at = excluded.deployed_at",
            &[&tenant_id, &fixture, &deployed_at],
        )
    }

    fn forget_fixture(&self, tenant_id: &str, fixture: &str) -> Result<()> {
        self.exec(
            "DELETE FROM public.tenant_fixtures WHERE tenant_id = $1::text::uuid AND fixture_name = $2",
            &[&tenant_id, &fixture],
        )
    }

    fn set_fixture_version(&self, tenant_id: &str, fixture: &str, version: &str) -> Result<()> {
        self.exec(
            "UPDATE public.tenant_fixtures SET version = $3 WHERE tenant_id = $1::text::uuid \
             AND fixture_name = $2",
            &[&tenant_id, &fixture, &version],
        )
    }

    fn update_content_info(&self, t: &TenantRow) -> Result<()> {
        self.exec(
            "UPDATE public.tenants SET owner_id = $2::text::uuid, template_version = $3::int8::int4, \
             source_template = $4, updated_at = $5::text::timestamp WHERE id = $1::text::uuid",
            &[
                &t.id,
                &t.owner_id,
                &t.template_version,
                &t.source_template,
                &t.updated_at,
            ],
        )
    }

    fn clear_fixtures(&self, tenant_id: &str) -> Result<()> {
        self.exec(
            "DELETE FROM public.tenant_fixtures WHERE tenant_id = $1::text::uuid",
            &[&tenant_id],
        )
    }
}
