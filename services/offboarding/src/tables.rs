//! Which tables hold a tenant's rows, read from the catalog of the database: every table of
//! every schema with a `tenant_id` column. A table without one is either named in
//! [`NOT_TENANT_ROWS`] with the reason, or an error, so a new table cannot be left out of an
//! export or a purge by being forgotten.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use sqlx::PgConnection;

/// Tables with no `tenant_id`, and why they are not a tenant's data.
pub const NOT_TENANT_ROWS: &[(&str, &str)] = &[
    (
        "tenancy.tenants",
        "the tenant itself: kept, marked purged, so its id and slug are never reused",
    ),
    ("public._sqlx_migrations", "the deployment's migrations"),
];

/// The offboarding ledger: what was exported and purged. Kept after a purge as its proof.
pub const LEDGER: &str = "tenancy.offboardings";

/// A table holding tenants' rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantTable {
    pub schema: String,
    pub name: String,
    /// Its primary key's columns, in order; empty when it has none.
    pub key: Vec<String>,
}

impl TenantTable {
    /// `schema.table`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }

    pub(crate) fn quoted(&self) -> String {
        crate::quoted(&self.schema, &self.name)
    }

    /// The primary key's columns quoted and comma-separated, or None.
    pub(crate) fn key_list(&self) -> Option<String> {
        (!self.key.is_empty()).then(|| {
            self.key
                .iter()
                .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// Every table of the database holding tenants' rows (the ledger aside), by full name, in the
/// order a purge deletes them: a table before the tables its foreign keys point to.
pub async fn tenant_tables(conn: &mut PgConnection) -> anyhow::Result<Vec<TenantTable>> {
    let rows: Vec<(String, String, bool, Vec<String>)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text, \
                EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                         AND a.attname = 'tenant_id' AND NOT a.attisdropped), \
                coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord) \
                            FROM pg_index i \
                            CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) \
                            JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                           WHERE i.indrelid = c.oid AND i.indisprimary), '{}') \
           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
          WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition \
            AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
            AND n.nspname NOT LIKE 'pg\\_%' \
          ORDER BY 1, 2",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut tables = BTreeMap::new();
    let mut unplaced = Vec::new();
    for (schema, name, has_tenant, key) in rows {
        let full = format!("{schema}.{name}");
        if full == LEDGER || NOT_TENANT_ROWS.iter().any(|(t, _)| *t == full) {
            continue;
        }
        if !has_tenant {
            unplaced.push(full);
            continue;
        }
        tables.insert(full, TenantTable { schema, name, key });
    }
    if !unplaced.is_empty() {
        bail!(
            "{} ha{} no tenant_id column, so a tenant's export and purge would miss {}: add \
             tenant_id, or name it in offboarding's NOT_TENANT_ROWS with the reason",
            unplaced.join(", "),
            if unplaced.len() == 1 { "s" } else { "ve" },
            if unplaced.len() == 1 { "it" } else { "them" },
        );
    }
    let references: Vec<(String, String)> = sqlx::query_as(
        "SELECT cn.nspname || '.' || c.relname, fn.nspname || '.' || f.relname \
           FROM pg_constraint k \
           JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace \
           JOIN pg_class f ON f.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace \
          WHERE k.contype = 'f' AND k.conrelid <> k.confrelid",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(referrers_first(tables, &references))
}

/// `tables` ordered so that every table comes before those it references (`references` holds
/// (referrer, referenced) pairs); ties and cycles in name order.
fn referrers_first(
    mut tables: BTreeMap<String, TenantTable>,
    references: &[(String, String)],
) -> Vec<TenantTable> {
    let mut ordered = Vec::with_capacity(tables.len());
    while !tables.is_empty() {
        // A table no remaining table references may go now.
        let referenced: BTreeSet<&String> = references
            .iter()
            .filter(|(from, to)| tables.contains_key(from) && tables.contains_key(to))
            .map(|(_, to)| to)
            .collect();
        let next = tables
            .keys()
            .find(|name| !referenced.contains(name))
            .or_else(|| tables.keys().next())
            .cloned()
            .expect("tables is not empty");
        ordered.extend(tables.remove(&next));
    }
    ordered
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(full: &str) -> (String, TenantTable) {
        let (schema, name) = full.split_once('.').unwrap();
        (
            full.to_string(),
            TenantTable {
                schema: schema.into(),
                name: name.into(),
                key: vec![],
            },
        )
    }

    #[test]
    fn a_table_comes_before_the_tables_it_references() {
        let tables = [
            "c.clients",
            "c.enrollments",
            "t.attachment_reads",
            "t.attachments",
            "t.tickets",
        ]
        .into_iter()
        .map(table)
        .collect();
        let references = [
            ("c.enrollments", "c.clients"),
            ("t.attachments", "t.tickets"),
            ("t.attachment_reads", "t.attachments"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let order: Vec<String> = referrers_first(tables, &references)
            .iter()
            .map(TenantTable::full_name)
            .collect();
        let at = |name: &str| order.iter().position(|n| n == name).unwrap();
        assert!(at("c.enrollments") < at("c.clients"));
        assert!(at("t.attachment_reads") < at("t.attachments"));
        assert!(at("t.attachments") < at("t.tickets"));
        assert_eq!(order.len(), 5);
    }
}
