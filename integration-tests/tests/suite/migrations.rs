//! Migrations are safe while the previous version still serves: a rolling upgrade runs the new
//! schema under old pods for a while. Two rules (docs/deployment.md), checked here:
//!
//! - A migration that has shipped never changes (`migrations/released`, one line per released
//!   migration: its version and sqlx's checksum); sqlx would refuse a changed one anyway, at
//!   the worst moment, the upgrade.
//! - A migration not released yet only expands: it adds tables, columns that are nullable or
//!   have a default, indexes, functions, grants and policies; it does not drop, rename, change
//!   a type, make a column NOT NULL or add a constraint the old version's writes may break.
//!   What contracts waits for the release after the one that stopped using it.
//!
//! And every migration applies as the schema owner a managed PostgreSQL gives, not only as a
//! superuser.
//!
//! `CASEWAY_RELEASE_MIGRATIONS=1 cargo nextest run -p caseway-integration-tests --test
//! migrations` writes `migrations/released` for a release.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};

const RELEASED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/released");

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Every migration of every service: version, (description, checksum, SQL).
fn migrations() -> BTreeMap<i64, (String, String, String)> {
    caseway::migrators()
        .iter()
        .flat_map(|m| m.migrations.iter())
        .map(|m| {
            (
                m.version,
                (
                    m.description.to_string(),
                    hex(&m.checksum),
                    m.sql.as_str().to_string(),
                ),
            )
        })
        .collect()
}

/// The statements of `sql` that do more than expand, each with the rule it breaks.
fn contractions(sql: &str) -> Vec<String> {
    // Without comments, upper case, one space between words.
    let text: String = sql
        .lines()
        .map(|line| line.split("--").next().unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ");
    let text = text
        .to_uppercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut found = Vec::new();
    for statement in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let rules: [(&str, bool); 7] = [
            (
                "drops what the old version may use",
                [
                    "DROP TABLE",
                    "DROP COLUMN",
                    "DROP SCHEMA",
                    "DROP VIEW",
                    "DROP FUNCTION",
                    "DROP TYPE",
                ]
                .iter()
                .any(|p| statement.contains(p)),
            ),
            (
                "renames what the old version names",
                statement.contains(" RENAME "),
            ),
            (
                "changes a column's type",
                statement.contains("SET DATA TYPE")
                    || (statement.contains("ALTER COLUMN") && statement.contains(" TYPE ")),
            ),
            (
                "makes a column NOT NULL",
                statement.contains("SET NOT NULL"),
            ),
            (
                "adds a NOT NULL column without a default (the old version's inserts omit it)",
                statement.starts_with("ALTER TABLE")
                    && statement.contains("ADD COLUMN")
                    && statement.contains("NOT NULL")
                    && !statement.contains("DEFAULT"),
            ),
            (
                "adds a constraint the old version's writes may break",
                statement.starts_with("ALTER TABLE") && statement.contains("ADD CONSTRAINT"),
            ),
            (
                "drops a default the old version's inserts rely on",
                statement.contains("DROP DEFAULT"),
            ),
        ];
        for (rule, broken) in rules {
            if broken {
                found.push(format!("{rule}: {statement}"));
            }
        }
    }
    found
}

#[test]
fn the_expand_rule_tells_an_expansion_from_a_contraction() {
    for expands in [
        "CREATE TABLE s.t (id uuid PRIMARY KEY, note text NOT NULL)",
        "ALTER TABLE s.t ADD COLUMN note text",
        "ALTER TABLE s.t ADD COLUMN kind smallint NOT NULL DEFAULT 1",
        "CREATE INDEX t_note ON s.t (note); GRANT SELECT ON s.t TO caseway_app",
        "-- DROP TABLE s.t in a comment\nCREATE POLICY p ON s.t USING (true)",
    ] {
        assert_eq!(contractions(expands), Vec::<String>::new(), "{expands}");
    }
    for contracts in [
        "ALTER TABLE s.t DROP COLUMN note",
        "DROP TABLE s.t",
        "ALTER TABLE s.t RENAME COLUMN note TO notes",
        "ALTER TABLE s.t ALTER COLUMN note TYPE varchar(10)",
        "ALTER TABLE s.t ALTER COLUMN note SET NOT NULL",
        "ALTER TABLE s.t ADD COLUMN kind smallint NOT NULL",
        "ALTER TABLE s.t ADD CONSTRAINT positive CHECK (units > 0)",
        "ALTER TABLE s.t ALTER COLUMN kind DROP DEFAULT",
    ] {
        assert_eq!(contractions(contracts).len(), 1, "{contracts}");
    }
}

#[test]
fn released_migrations_never_change_and_new_ones_only_expand() {
    let all = migrations();
    if std::env::var_os("CASEWAY_RELEASE_MIGRATIONS").is_some() {
        let mut text = String::from(
            "# Released migrations: version and sqlx checksum. Written at a release by\n\
             # CASEWAY_RELEASE_MIGRATIONS=1 (integration-tests/tests/suite/migrations.rs); never edited.\n",
        );
        for (version, (description, checksum, _)) in &all {
            let _ = writeln!(text, "{version} {checksum} {description}");
        }
        std::fs::write(RELEASED, text).unwrap();
    }
    let released = std::fs::read_to_string(RELEASED).expect("migrations/released");
    let mut shipped = BTreeMap::new();
    for line in released
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let mut parts = line.splitn(3, ' ');
        let version: i64 = parts.next().unwrap().parse().unwrap();
        let checksum = parts.next().unwrap().to_string();
        shipped.insert(version, checksum);
    }
    assert!(!shipped.is_empty(), "migrations/released lists nothing");
    for (version, checksum) in &shipped {
        let (description, now, _) = all
            .get(version)
            .unwrap_or_else(|| panic!("released migration {version} is gone"));
        assert_eq!(
            now, checksum,
            "released migration {version} ({description}) changed: add a new migration instead"
        );
    }
    for (version, (description, _, sql)) in &all {
        if shipped.contains_key(version) {
            continue;
        }
        let broken = contractions(sql);
        assert!(
            broken.is_empty(),
            "migration {version} ({description}) does not only expand, and the previous version \
             still serves during an upgrade:\n{}",
            broken.join("\n")
        );
    }
}

/// Every migration applies as the owner of the database who is not a superuser, as a managed
/// PostgreSQL gives it: a role that may create roles, and a member of `caseway_system` with
/// the admin option (which it has when it created that role itself; the role exists already on
/// this server). Handing a function to `caseway_system` takes that role's right to create in
/// the function's schema, and a superuser never shows that it lacks one.
#[tokio::test]
async fn migrations_apply_as_an_owner_that_is_not_a_superuser() {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let role = format!("caseway_test_owner_{suffix}");
    let database = format!("caseway_test_{suffix}");
    let base = caseway_test_support::postgres_url();
    let mut admin = sqlx::PgConnection::connect(&format!("{base}/postgres"))
        .await
        .unwrap();
    let run = async |admin: &mut sqlx::PgConnection, statements: &[String]| {
        for statement in statements {
            sqlx::query(sqlx::AssertSqlSafe(statement.as_str()))
                .execute(&mut *admin)
                .await
                .unwrap();
        }
    };
    // The roles the first migration creates, for a server where no test has run yet.
    caseway_platform::db::migrate(
        &format!("{base}/{database}"),
        &[&caseway_platform::MIGRATOR],
    )
    .await
    .unwrap();
    let drop_database = format!("DROP DATABASE \"{database}\" WITH (FORCE)");
    run(
        &mut admin,
        &[
            drop_database.clone(),
            format!("CREATE ROLE \"{role}\" LOGIN CREATEROLE"),
            format!("GRANT caseway_system TO \"{role}\" WITH ADMIN OPTION"),
            format!("CREATE DATABASE \"{database}\" OWNER \"{role}\""),
        ],
    )
    .await;
    let options: PgConnectOptions = format!("{base}/{database}").parse().unwrap();
    let url = options.username(&role).to_url_lossy().to_string();
    let migrated = caseway_platform::db::migrate(&url, &caseway::migrators()).await;
    run(
        &mut admin,
        &[drop_database, format!("DROP ROLE \"{role}\"")],
    )
    .await;
    if let Err(error) = migrated {
        panic!("migrating as {role}: {error:#}");
    }
}
