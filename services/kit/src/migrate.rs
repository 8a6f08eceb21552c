//! Migrations: each service lists its own, in order, and they run on start (and by `kefu migrate`).
//! Applied names are kept in `kefu_migrations`; all pending ones run in one transaction, under a
//! PostgreSQL advisory lock so that replicas starting together do not race.

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait,
    sea_query::{
        IndexCreateStatement, IndexDropStatement, TableAlterStatement, TableCreateStatement, TableRenameStatement,
    },
};

/// One step of a schema, written once and never changed after it has shipped.
pub struct Migration {
    /// Unique and ordered within a service, e.g. `0001_complaints`.
    pub name: &'static str,
    pub statements: fn() -> Vec<SchemaStatement>,
}

/// One schema change. Built a handful of times at start-up, so the variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum SchemaStatement {
    Table(TableCreateStatement),
    Index(IndexCreateStatement),
    /// One change to a table (SQLite alters one column per statement).
    Alter(TableAlterStatement),
    Rename(TableRenameStatement),
    /// An index another one now serves.
    DropIndex(IndexDropStatement),
    /// A setting only PostgreSQL has (a table's fillfactor); nothing on SQLite.
    PostgresOnly(&'static str),
}

impl SchemaStatement {
    fn build(&self, backend: DbBackend) -> Option<Statement> {
        Some(match self {
            SchemaStatement::Table(table) => backend.build(table),
            SchemaStatement::Index(index) => backend.build(index),
            SchemaStatement::Alter(alter) => backend.build(alter),
            SchemaStatement::Rename(rename) => backend.build(rename),
            SchemaStatement::DropIndex(drop) => backend.build(drop),
            SchemaStatement::PostgresOnly(sql) if backend == DbBackend::Postgres => {
                Statement::from_string(backend, *sql)
            }
            SchemaStatement::PostgresOnly(_) => return None,
        })
    }
}

/// Applies the migrations not yet applied; returns their names.
pub async fn run(
    db: &DatabaseConnection,
    service: &str,
    migrations: &[&Migration],
) -> Result<Vec<&'static str>, DbErr> {
    let backend = db.get_database_backend();
    let tx = db.begin().await?;
    if backend == DbBackend::Postgres {
        let key = migration_lock_key(service);
        tx.execute(Statement::from_string(backend, format!("SELECT pg_advisory_xact_lock({key})"))).await?;
    }
    tx.execute(Statement::from_string(
        backend,
        "CREATE TABLE IF NOT EXISTS kefu_migrations (name VARCHAR(200) PRIMARY KEY, applied_at VARCHAR(40) NOT NULL)",
    ))
    .await?;
    let applied: Vec<String> = tx
        .query_all(Statement::from_string(backend, "SELECT name FROM kefu_migrations"))
        .await?
        .iter()
        .map(|row| row.try_get::<String>("", "name"))
        .collect::<Result<_, _>>()?;
    let mut newly = Vec::new();
    for migration in migrations {
        if applied.iter().any(|name| name == migration.name) {
            continue;
        }
        for statement in (migration.statements)().iter().filter_map(|statement| statement.build(backend)) {
            tx.execute(statement).await?;
        }
        tx.execute(Statement::from_sql_and_values(
            backend,
            match backend {
                DbBackend::Postgres => "INSERT INTO kefu_migrations (name, applied_at) VALUES ($1, $2)",
                _ => "INSERT INTO kefu_migrations (name, applied_at) VALUES (?, ?)",
            },
            [migration.name.into(), chrono::Utc::now().to_rfc3339().into()],
        ))
        .await?;
        newly.push(migration.name);
    }
    tx.commit().await?;
    Ok(newly)
}

fn migration_lock_key(service: &str) -> i64 {
    // A fixed prefix keeps kefu's lock keys apart from anything else's in the same database.
    let mut key: i64 = 0x6b65_6675; // "kefu"
    for byte in service.bytes() {
        key = key.wrapping_mul(31).wrapping_add(i64::from(byte));
    }
    key
}
