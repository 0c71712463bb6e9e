//! The two migration trees must build the same schema: one set of queries runs on both stores,
//! so a column, index or constraint that exists on one only is a bug waiting for the other.
//!
//! Numbering. The trees are lined up by name, not by number, because their numbers differ and
//! cannot change: released databases have recorded the versions they applied, and sqlx
//! refuses a database that applied a version the files no longer have (and would run a
//! renumbered file as new). PostgreSQL has one
//! migration of its own, `0002_audit_no_truncate` (TRUNCATE skips row triggers, so the audit
//! table needs a statement trigger too; SQLite has no TRUNCATE), so from there on each
//! PostgreSQL number is its SQLite twin's plus one:
//!
//! | SQLite                     | PostgreSQL                 |
//! |----------------------------|----------------------------|
//! | 0001_foundation            | 0001_foundation            |
//! | —                          | 0002_audit_no_truncate     |
//! | 0002_passwords             | 0003_passwords             |
//! | 0003_sessions              | 0004_sessions              |
//! | 0004_mfa                   | 0005_mfa                   |
//! | 0005_sign_in_settings      | 0006_sign_in_settings      |
//! | 0006_lockout_policy        | 0007_lockout_policy        |
//! | 0007_passkeys              | 0008_passkeys              |
//! | 0008_oauth                 | 0009_oauth                 |
//! | 0009_client_assertions     | 0010_client_assertions     |
//! | 0010_authorization         | 0011_authorization         |
//! | 0011_key_rotation          | 0012_key_rotation          |
//! | 0012_access                | 0013_access                |
//! | 0013_access_settings       | 0014_access_settings       |
//! | 0014_teams                 | 0015_teams                 |
//! | 0015_data_upgrades         | 0016_data_upgrades         |
//! | 0016_subject_identifiers   | 0017_subject_identifiers   |
//! | 0017_authorization_answers | 0018_authorization_answers |
//!
//! A new migration takes the next number in each tree and the same name in both.
//! (docs/operations.md, "Upgrade", says the same for operators.)
//!
//! The PostgreSQL half needs a server: it runs when PORTCULLIS_TEST_DATABASE_URL names one
//! (as for the `it` suite; a scratch database is created and dropped) and says it was skipped
//! otherwise. CI runs it with the variable set and PORTCULLIS_TEST_EXPECT_STORE=postgres, which
//! turns a skip into a failure.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use sqlx::Row as _;

use portcullis_store::Store;
use portcullis_store::scratch::ScratchDatabase;

/// Migrations one store has and the other has not, with why. Everything else pairs by name.
const POSTGRES_ONLY: &[(&str, &str)] = &[(
    "audit_no_truncate",
    "TRUNCATE bypasses row triggers on PostgreSQL; SQLite has no TRUNCATE",
)];

/// sqlx's own bookkeeping, not our schema.
const SQLX_TABLE: &str = "_sqlx_migrations";

/// One migration file: its number and its name (the part after the number).
#[derive(Debug, Clone, PartialEq, Eq)]
struct MigrationFile {
    version: u32,
    name: String,
}

fn migration_files(tree: &str) -> Vec<MigrationFile> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("migrations")
        .join(tree);
    let mut files: Vec<MigrationFile> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let file_name = entry.expect("directory entry").file_name();
            let file_name = file_name.to_string_lossy();
            parse_file_name(&file_name)
                .unwrap_or_else(|| panic!("{tree}/{file_name} is not NNNN_name.sql"))
        })
        .collect();
    files.sort_by_key(|f| f.version);
    files
}

fn parse_file_name(file_name: &str) -> Option<MigrationFile> {
    let stem = file_name.strip_suffix(".sql")?;
    let (number, name) = stem.split_once('_')?;
    let well_formed = number.len() == 4
        && number.bytes().all(|b| b.is_ascii_digit())
        && !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !well_formed {
        return None;
    }
    Some(MigrationFile {
        version: number.parse().ok()?,
        name: name.to_owned(),
    })
}

#[test]
fn migrations_line_up_by_name() {
    let sqlite = migration_files("sqlite");
    let postgres = migration_files("postgres");
    for (tree, files) in [("sqlite", &sqlite), ("postgres", &postgres)] {
        let versions: Vec<u32> = files.iter().map(|f| f.version).collect();
        let expected: Vec<u32> = (1..).take(files.len()).collect();
        assert_eq!(
            versions, expected,
            "{tree}: migration numbers must run 1, 2, 3… without gaps or repeats"
        );
    }
    for (name, _) in POSTGRES_ONLY {
        assert_eq!(
            postgres.iter().filter(|f| f.name == *name).count(),
            1,
            "the PostgreSQL-only migration {name} is gone or repeated: update POSTGRES_ONLY and docs/operations.md"
        );
        assert!(
            !sqlite.iter().any(|f| f.name == *name),
            "{name} is listed as PostgreSQL-only but SQLite has it too"
        );
    }
    let paired_postgres: Vec<&str> = postgres
        .iter()
        .map(|f| f.name.as_str())
        .filter(|name| !POSTGRES_ONLY.iter().any(|(only, _)| only == name))
        .collect();
    let sqlite_names: Vec<&str> = sqlite.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        sqlite_names, paired_postgres,
        "the SQLite and PostgreSQL migrations must have the same names in the same order \
         (apart from {POSTGRES_ONLY:?}); a new migration goes into both trees under one name"
    );
}

/// What a column holds, as both stores' drivers read and write it. Only the types the
/// migrations use are known; anything else fails the test until someone decides how it maps.
/// Times are BIGINT microseconds on both (never `timestamptz`), and integers are 64-bit on both
/// because the store binds and reads `i64`: sqlx refuses to read a PostgreSQL `integer` as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    Text,
    Integer,
    Boolean,
    Bytes,
}

/// PostgreSQL's type name (`format_type`) as a family.
fn postgres_family(declared: &str) -> Option<Family> {
    match declared {
        "text" => Some(Family::Text),
        "bigint" => Some(Family::Integer),
        "boolean" => Some(Family::Boolean),
        "bytea" => Some(Family::Bytes),
        _ => None,
    }
}

/// The families a SQLite declared type may stand for. SQLite has no boolean storage class:
/// sqlx writes a Rust `bool` as 0/1 and reads it back from an INTEGER column, and the older
/// migrations declare flags INTEGER (`must_change`), the newer ones BOOLEAN (`operator`).
fn sqlite_families(declared: &str) -> &'static [Family] {
    match declared.to_ascii_uppercase().as_str() {
        "TEXT" => &[Family::Text],
        "INTEGER" => &[Family::Integer, Family::Boolean],
        "BOOLEAN" => &[Family::Boolean],
        "BLOB" => &[Family::Bytes],
        _ => &[],
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Column {
    /// The declared type as the store reports it.
    declared: String,
    not_null: bool,
    default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Index {
    columns: Vec<String>,
    unique: bool,
    /// Whether it has a WHERE clause (the clause's text differs between dialects).
    partial: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ForeignKey {
    columns: Vec<String>,
    parent: String,
    parent_columns: Vec<String>,
    on_delete: String,
    on_update: String,
}

#[derive(Debug, Default)]
struct Table {
    columns: BTreeMap<String, Column>,
    primary_key: Vec<String>,
    /// UNIQUE constraints (unnamed on SQLite, so compared by their columns).
    unique_constraints: BTreeSet<Vec<String>>,
    /// Indexes made with CREATE INDEX, by name.
    indexes: BTreeMap<String, Index>,
    foreign_keys: BTreeSet<ForeignKey>,
}

type Schema = BTreeMap<String, Table>;

async fn sqlite_schema(url: &str) -> Result<Schema, sqlx::Error> {
    let pool = sqlx::SqlitePool::connect(url).await?;
    let mut schema = Schema::new();
    let tables = sqlx::query(
        "SELECT name FROM sqlite_schema WHERE type = 'table' \
         AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name <> ?1",
    )
    .bind(SQLX_TABLE)
    .fetch_all(&pool)
    .await?;
    for row in tables {
        let name: String = row.try_get("name")?;
        let mut table = Table::default();
        let mut primary_key = Vec::new();
        for column in sqlx::query(
            "SELECT name, type, \"notnull\" AS not_null, dflt_value, pk FROM pragma_table_info(?1)",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await?
        {
            let column_name: String = column.try_get("name")?;
            let pk: i64 = column.try_get("pk")?;
            if pk > 0 {
                primary_key.push((pk, column_name.clone()));
            }
            table.columns.insert(
                column_name,
                Column {
                    declared: column.try_get("type")?,
                    not_null: column.try_get::<i64, _>("not_null")? != 0,
                    default: column.try_get("dflt_value")?,
                },
            );
        }
        primary_key.sort();
        table.primary_key = primary_key.into_iter().map(|(_, c)| c).collect();
        for index in sqlx::query(
            "SELECT name, \"unique\" AS is_unique, origin, partial FROM pragma_index_list(?1)",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await?
        {
            let index_name: String = index.try_get("name")?;
            let origin: String = index.try_get("origin")?;
            let columns: Vec<String> =
                sqlx::query("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                    .bind(&index_name)
                    .fetch_all(&pool)
                    .await?
                    .iter()
                    .map(|c| c.try_get::<String, _>("name"))
                    .collect::<Result<_, _>>()?;
            match origin.as_str() {
                // The primary key's own index: the key is compared from table_info.
                "pk" => {}
                "u" => {
                    table.unique_constraints.insert(columns);
                }
                _ => {
                    table.indexes.insert(
                        index_name,
                        Index {
                            columns,
                            unique: index.try_get::<i64, _>("is_unique")? != 0,
                            partial: index.try_get::<i64, _>("partial")? != 0,
                        },
                    );
                }
            }
        }
        let mut keys: BTreeMap<i64, ForeignKey> = BTreeMap::new();
        for reference in sqlx::query(
            "SELECT id, \"table\" AS parent, \"from\" AS child_column, \"to\" AS parent_column, \
             on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq",
        )
        .bind(&name)
        .fetch_all(&pool)
        .await?
        {
            let id: i64 = reference.try_get("id")?;
            let key = keys.entry(id).or_insert(ForeignKey {
                columns: Vec::new(),
                parent: reference.try_get("parent")?,
                parent_columns: Vec::new(),
                on_delete: reference.try_get("on_delete")?,
                on_update: reference.try_get("on_update")?,
            });
            key.columns.push(reference.try_get("child_column")?);
            // NULL when the reference names no column (the parent's primary key); the
            // migrations always name it, and a NULL here shows up as a difference.
            let parent_column: Option<String> = reference.try_get("parent_column")?;
            key.parent_columns
                .push(parent_column.unwrap_or_else(|| "(primary key)".into()));
        }
        table.foreign_keys = keys.into_values().collect();
        schema.insert(name, table);
    }
    pool.close().await;
    Ok(schema)
}

/// PostgreSQL's foreign-key action codes (`pg_constraint.confdeltype`) in SQLite's words.
fn postgres_action(code: &str) -> String {
    match code {
        "a" => "NO ACTION",
        "r" => "RESTRICT",
        "c" => "CASCADE",
        "n" => "SET NULL",
        "d" => "SET DEFAULT",
        other => other,
    }
    .to_owned()
}

async fn postgres_schema(url: &str) -> Result<Schema, sqlx::Error> {
    let pool = sqlx::PgPool::connect(url).await?;
    let mut schema = Schema::new();
    let tables = sqlx::query(
        "SELECT c.oid::bigint AS oid, c.relname::text AS name FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> $1",
    )
    .bind(SQLX_TABLE)
    .fetch_all(&pool)
    .await?;
    // The column names of `keys` (attribute numbers of table `$1`), in order.
    const NAMES_OF: &str = "ARRAY(SELECT a.attname::text FROM unnest({keys}) WITH ORDINALITY k(attnum, ord) \
         JOIN pg_attribute a ON a.attrelid = {rel} AND a.attnum = k.attnum ORDER BY k.ord)";
    let names_of = |keys: &str, rel: &str| NAMES_OF.replace("{keys}", keys).replace("{rel}", rel);
    for row in tables {
        let oid: i64 = row.try_get("oid")?;
        let name: String = row.try_get("name")?;
        let mut table = Table::default();
        for column in sqlx::query(
            "SELECT a.attname::text AS name, format_type(a.atttypid, a.atttypmod) AS declared, \
             a.attnotnull AS not_null, pg_get_expr(d.adbin, d.adrelid) AS default_value \
             FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
             WHERE a.attrelid = $1::bigint::oid AND a.attnum > 0 AND NOT a.attisdropped",
        )
        .bind(oid)
        .fetch_all(&pool)
        .await?
        {
            table.columns.insert(
                column.try_get("name")?,
                Column {
                    declared: column.try_get("declared")?,
                    not_null: column.try_get("not_null")?,
                    default: column.try_get("default_value")?,
                },
            );
        }
        let constraints = format!(
            "SELECT c.contype::text AS kind, {columns} AS columns, \
             COALESCE(p.relname::text, '') AS parent, {parent_columns} AS parent_columns, \
             c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update \
             FROM pg_constraint c LEFT JOIN pg_class p ON p.oid = c.confrelid \
             WHERE c.conrelid = $1::bigint::oid AND c.contype IN ('p', 'u', 'f')",
            columns = names_of("c.conkey", "c.conrelid"),
            parent_columns = names_of("c.confkey", "c.confrelid"),
        );
        for constraint in sqlx::query(sqlx::AssertSqlSafe(constraints))
            .bind(oid)
            .fetch_all(&pool)
            .await?
        {
            let kind: String = constraint.try_get("kind")?;
            let columns: Vec<String> = constraint.try_get("columns")?;
            match kind.as_str() {
                "p" => table.primary_key = columns,
                "u" => {
                    table.unique_constraints.insert(columns);
                }
                _ => {
                    table.foreign_keys.insert(ForeignKey {
                        columns,
                        parent: constraint.try_get("parent")?,
                        parent_columns: constraint.try_get("parent_columns")?,
                        on_delete: postgres_action(&constraint.try_get::<String, _>("on_delete")?),
                        on_update: postgres_action(&constraint.try_get::<String, _>("on_update")?),
                    });
                }
            }
        }
        // Indexes that back a primary key or UNIQUE constraint were compared as constraints.
        let indexes = format!(
            "SELECT i.relname::text AS name, x.indisunique AS is_unique, \
             x.indpred IS NOT NULL AS partial, {columns} AS columns \
             FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
             WHERE x.indrelid = $1::bigint::oid AND NOT EXISTS ( \
                 SELECT 1 FROM pg_constraint c WHERE c.conrelid = x.indrelid \
                 AND c.conindid = x.indexrelid AND c.contype IN ('p', 'u'))",
            columns = names_of("x.indkey::int2[]", "x.indrelid"),
        );
        for index in sqlx::query(sqlx::AssertSqlSafe(indexes))
            .bind(oid)
            .fetch_all(&pool)
            .await?
        {
            table.indexes.insert(
                index.try_get("name")?,
                Index {
                    columns: index.try_get("columns")?,
                    unique: index.try_get("is_unique")?,
                    partial: index.try_get("partial")?,
                },
            );
        }
        schema.insert(name, table);
    }
    pool.close().await;
    Ok(schema)
}

/// A default as written, comparable across dialects: PostgreSQL's `'x'::text` is SQLite's
/// `'x'`, and a flag's `0`/`1` on an INTEGER column is `false`/`true`.
fn normalized_default(default: &str, flag: bool) -> String {
    let mut text = default.trim().to_ascii_lowercase();
    if let Some((value, cast)) = text.rsplit_once("::")
        && cast.bytes().all(|b| b.is_ascii_alphabetic() || b == b' ')
    {
        text = value.to_owned();
    }
    match (flag, text.as_str()) {
        (true, "0") => "false".into(),
        (true, "1") => "true".into(),
        _ => text,
    }
}

/// Every difference between the two schemas, and the allowed ones (with their reasons) apart.
fn compare(sqlite: &Schema, postgres: &Schema) -> (Vec<String>, Vec<String>) {
    let mut drift = Vec::new();
    let mut allowed = Vec::new();
    for name in sqlite.keys().filter(|t| !postgres.contains_key(*t)) {
        drift.push(format!("table {name} exists on SQLite only"));
    }
    for name in postgres.keys().filter(|t| !sqlite.contains_key(*t)) {
        drift.push(format!("table {name} exists on PostgreSQL only"));
    }
    for (name, lite) in sqlite {
        let Some(pg) = postgres.get(name) else {
            continue;
        };
        for column in lite.columns.keys().filter(|c| !pg.columns.contains_key(*c)) {
            drift.push(format!("column {name}.{column} exists on SQLite only"));
        }
        for column in pg.columns.keys().filter(|c| !lite.columns.contains_key(*c)) {
            drift.push(format!("column {name}.{column} exists on PostgreSQL only"));
        }
        for (column, l) in &lite.columns {
            let Some(p) = pg.columns.get(column) else {
                continue;
            };
            let at = format!("{name}.{column}");
            let family = postgres_family(&p.declared);
            match family {
                None => drift.push(format!(
                    "{at}: PostgreSQL type {:?} is not one the stores share (text, bigint, boolean, bytea)",
                    p.declared
                )),
                Some(family) if !sqlite_families(&l.declared).contains(&family) => {
                    drift.push(format!(
                        "{at}: SQLite declares {:?}, PostgreSQL {:?}, which the drivers do not read alike",
                        l.declared, p.declared
                    ))
                }
                Some(_) => {}
            }
            if l.not_null != p.not_null {
                let in_key = lite.primary_key.contains(column) && pg.primary_key.contains(column);
                if in_key && !l.not_null {
                    allowed.push(format!("{at}: {}", ALLOWED_PRIMARY_KEY_NULLS));
                } else {
                    drift.push(format!(
                        "{at}: NOT NULL on {} only",
                        if l.not_null { "SQLite" } else { "PostgreSQL" }
                    ));
                }
            }
            let flag = family == Some(Family::Boolean);
            let lite_default = l.default.as_deref().map(|d| normalized_default(d, flag));
            let pg_default = p.default.as_deref().map(|d| normalized_default(d, flag));
            if lite_default != pg_default {
                drift.push(format!(
                    "{at}: default {:?} on SQLite, {:?} on PostgreSQL",
                    l.default, p.default
                ));
            }
        }
        if lite.primary_key != pg.primary_key {
            drift.push(format!(
                "{name}: primary key {:?} on SQLite, {:?} on PostgreSQL",
                lite.primary_key, pg.primary_key
            ));
        }
        for columns in lite.unique_constraints.difference(&pg.unique_constraints) {
            drift.push(format!("{name}: UNIQUE {columns:?} on SQLite only"));
        }
        for columns in pg.unique_constraints.difference(&lite.unique_constraints) {
            drift.push(format!("{name}: UNIQUE {columns:?} on PostgreSQL only"));
        }
        for (index, l) in &lite.indexes {
            match pg.indexes.get(index) {
                None => drift.push(format!("index {index} on {name} exists on SQLite only")),
                Some(p) if p != l => drift.push(format!(
                    "index {index} on {name}: {l:?} on SQLite, {p:?} on PostgreSQL"
                )),
                Some(_) => {}
            }
        }
        for index in pg.indexes.keys().filter(|i| !lite.indexes.contains_key(*i)) {
            drift.push(format!("index {index} on {name} exists on PostgreSQL only"));
        }
        for key in lite.foreign_keys.difference(&pg.foreign_keys) {
            drift.push(format!("{name}: foreign key {key:?} on SQLite only"));
        }
        for key in pg.foreign_keys.difference(&lite.foreign_keys) {
            drift.push(format!("{name}: foreign key {key:?} on PostgreSQL only"));
        }
    }
    (drift, allowed)
}

/// The one deliberate difference. SQLite lets a PRIMARY KEY column that is not also declared
/// NOT NULL hold NULL (a legacy quirk its documentation keeps for compatibility); PostgreSQL
/// makes every key column NOT NULL. The store writes every key from a typed id, never NULL, and
/// adding NOT NULL on SQLite means rebuilding each table with its foreign keys and triggers —
/// more risk to released databases than the difference carries.
const ALLOWED_PRIMARY_KEY_NULLS: &str =
    "key column may hold NULL on SQLite only (SQLite's PRIMARY KEY quirk; allowed)";

/// Every SQLite column's declared type maps to some family, whether or not PostgreSQL is here.
fn unknown_sqlite_types(schema: &Schema) -> Vec<String> {
    schema
        .iter()
        .flat_map(|(table, t)| {
            t.columns
                .iter()
                .filter(|(_, c)| sqlite_families(&c.declared).is_empty())
                .map(move |(column, c)| {
                    format!(
                        "{table}.{column}: SQLite type {:?} is not one the stores share",
                        c.declared
                    )
                })
        })
        .collect()
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Counts {
    tables: usize,
    columns: usize,
    indexes: usize,
    unique_constraints: usize,
    foreign_keys: usize,
}

impl Counts {
    fn of(schema: &Schema) -> Self {
        let sum = |f: fn(&Table) -> usize| schema.values().map(f).sum();
        Counts {
            tables: schema.len(),
            columns: sum(|t| t.columns.len()),
            indexes: sum(|t| t.indexes.len()),
            unique_constraints: sum(|t| t.unique_constraints.len()),
            foreign_keys: sum(|t| t.foreign_keys.len()),
        }
    }
}

/// Tables that belong to no tenant, with why. Every other table carries `tenant_id`, so that a
/// tenant-sharded PostgreSQL (Citus, DESIGN's plan past one primary) can distribute it by
/// tenant and every query can name its tenant. Checked on SQLite's schema; the parity test
/// makes PostgreSQL's the same.
const GLOBAL_TABLES: &[(&str, &str)] = &[
    ("tenants", "the tenants themselves: their id is the key"),
    (
        "server_secrets",
        "the server's own keys, sealed under the KEK",
    ),
    ("data_upgrades", "which one-off data upgrades have run"),
    (
        "leaked_passwords",
        "the breached-password list, the same for every tenant",
    ),
    (
        "auth_backoff",
        "sign-in back-off: an account's key names its tenant; a network address is throttled across tenants",
    ),
];

#[tokio::test]
async fn every_tenant_scoped_table_carries_tenant_id() {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("tenancy.db").display());
    migrated(&url).await.expect("SQLite migrates");
    let schema = sqlite_schema(&url).await.expect("read the SQLite schema");
    assert!(
        schema.len() > 40,
        "the schema was read: {:?}",
        schema.keys()
    );
    let is_global = |name: &str| GLOBAL_TABLES.iter().any(|(table, _)| *table == name);
    let lacking: Vec<&str> = schema
        .iter()
        .filter(|(name, table)| !is_global(name) && !table.columns.contains_key("tenant_id"))
        .map(|(name, _)| name.as_str())
        .collect();
    assert!(
        lacking.is_empty(),
        "tenant-scoped tables without tenant_id: {lacking:?}. Add the column (NOT NULL, \
         REFERENCES tenants) with a migration in both trees, or, if the table truly belongs to no \
         tenant, list it in GLOBAL_TABLES with why"
    );
    for (name, _) in GLOBAL_TABLES {
        let table = schema
            .get(*name)
            .unwrap_or_else(|| panic!("GLOBAL_TABLES names {name}, which no longer exists"));
        assert!(
            !table.columns.contains_key("tenant_id"),
            "{name} carries tenant_id now: take it out of GLOBAL_TABLES"
        );
    }
}

async fn migrated(url: &str) -> Result<(), portcullis_store::StoreError> {
    let store = Store::connect(url, 2).await?;
    let result = store.migrate().await;
    store.close().await;
    result
}

#[tokio::test]
async fn sqlite_and_postgres_build_the_same_schema() {
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite_url = format!("sqlite://{}", dir.path().join("parity.db").display());
    migrated(&sqlite_url).await.expect("SQLite migrates");
    let sqlite = sqlite_schema(&sqlite_url)
        .await
        .expect("read the SQLite schema");
    assert!(
        sqlite.contains_key("tenants") && sqlite.contains_key("data_upgrades"),
        "the SQLite schema was read: {:?}",
        sqlite.keys()
    );
    let unknown = unknown_sqlite_types(&sqlite);
    assert!(unknown.is_empty(), "{}", unknown.join("\n"));

    let expect_postgres =
        std::env::var("PORTCULLIS_TEST_EXPECT_STORE").as_deref() == Ok("postgres");
    let admin_url = match std::env::var("PORTCULLIS_TEST_DATABASE_URL") {
        Ok(url) => {
            assert!(
                !url.is_empty(),
                "PORTCULLIS_TEST_DATABASE_URL is set but empty: unset it, or give a PostgreSQL URL"
            );
            url
        }
        Err(_) => {
            assert!(
                !expect_postgres,
                "PORTCULLIS_TEST_EXPECT_STORE=postgres but PORTCULLIS_TEST_DATABASE_URL is unset"
            );
            eprintln!(
                "schema parity: skipped on PostgreSQL (PORTCULLIS_TEST_DATABASE_URL is unset); \
                 only SQLite's schema and the migration lineup were checked"
            );
            return;
        }
    };
    let scratch = ScratchDatabase::create(&admin_url)
        .await
        .expect("create a database through PORTCULLIS_TEST_DATABASE_URL");
    // Read everything, then drop the database whatever happened, then judge.
    let postgres = match migrated(&scratch.url).await {
        Ok(()) => postgres_schema(&scratch.url)
            .await
            .map_err(|e| format!("read the PostgreSQL schema: {e}")),
        Err(e) => Err(format!("PostgreSQL migrates: {e}")),
    };
    let dropped = scratch.drop_database().await;
    let postgres = postgres.unwrap_or_else(|e| panic!("{e}"));
    dropped.expect("drop the scratch database");

    // Introspection that quietly read nothing on both sides would compare equal.
    for (store, schema) in [("SQLite", &sqlite), ("PostgreSQL", &postgres)] {
        let counts = Counts::of(schema);
        assert!(
            counts.columns > 100
                && counts.indexes > 20
                && counts.unique_constraints > 0
                && counts.foreign_keys > 20,
            "{store}'s schema was not read whole: {counts:?}"
        );
    }
    let (drift, allowed) = compare(&sqlite, &postgres);
    eprintln!(
        "schema parity: {:?} compared; {} allowed differences:\n  {}",
        Counts::of(&postgres),
        allowed.len(),
        allowed.join("\n  ")
    );
    assert!(
        drift.is_empty(),
        "the SQLite and PostgreSQL schemas differ:\n  {}\nFix with a new migration in both trees \
         (same name, next numbers), never by editing an applied one.",
        drift.join("\n  ")
    );
}

#[test]
fn the_comparison_sees_drift() {
    let table = |declared: &str, not_null: bool| {
        let mut t = Table::default();
        t.columns.insert(
            "flag".into(),
            Column {
                declared: declared.into(),
                not_null,
                default: None,
            },
        );
        t.indexes.insert(
            "t_flag_idx".into(),
            Index {
                columns: vec!["flag".into()],
                unique: false,
                partial: false,
            },
        );
        Schema::from([("t".to_owned(), t)])
    };
    let same = compare(&table("INTEGER", true), &table("boolean", true));
    assert!(same.0.is_empty(), "{:?}", same.0);
    for (lite, pg) in [
        (table("INTEGER", true), table("integer", true)),
        (table("TEXT", true), table("bigint", true)),
        (
            table("INTEGER", true),
            table("timestamp with time zone", true),
        ),
        (table("BOOLEAN", true), table("bigint", true)),
        (table("INTEGER", false), table("bigint", true)),
    ] {
        assert!(!compare(&lite, &pg).0.is_empty(), "{lite:?} vs {pg:?}");
    }
    let mut unique = table("INTEGER", true);
    if let Some(index) = unique
        .get_mut("t")
        .and_then(|t| t.indexes.get_mut("t_flag_idx"))
    {
        index.unique = true;
    }
    assert!(!compare(&table("INTEGER", true), &unique).0.is_empty());
}
