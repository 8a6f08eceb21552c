//! Connecting a service to its database.
//!
//! - **SQLite** (default): one file per service, `<KEFU_DATA_DIR>/<service>.db`, in WAL mode with
//!   `synchronous=FULL`, so a commit is on disk before the caller hears of it. One connection per
//!   service: SQLite has one writer at a time anyway, and a single connection never meets
//!   `SQLITE_BUSY`.
//! - **PostgreSQL** (`KEFU_DATABASE_URL`): one database shared by the services, each in its own
//!   schema named after it (`intake`, `inspection`, …), created on start; a service's connections
//!   have `search_path` set to its schema, so no service can see another's tables by accident.

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::config::{Config, redact_password};

/// How long a call waits for a PostgreSQL connection, and a new connection for the server, before
/// it fails with `UNAVAILABLE`: while the database is away a caller hears so within seconds,
/// instead of waiting out its deadline. (SQLite's one connection waits longer: a queue behind it
/// is load, not an outage.)
pub const POSTGRES_WAIT: Duration = Duration::from_secs(3);

/// The prepared statements each connection keeps. A batched statement has a shape per batch size
/// (a multi-row insert of seven complaints is not the statement of eight), and under load the
/// services run some 900 shapes in all; with sqlx's default of 100 most of them were evicted and
/// prepared again, on PostgreSQL a round trip to parse and describe each (docs/benchmarks.md,
/// "Issue 20, third round"). The cost is memory, on PostgreSQL about 10 MiB more in each server
/// process that serves kefu (so in each pooled connection `pool_size` allows). 256 keeps the
/// shapes in use; 1,024 was no faster, and its memory was still growing after five minutes.
pub const STATEMENT_CACHE: usize = 256;

/// The connections a part of kefu keeps to PostgreSQL at most, unless `KEFU_DATABASE_POOL` says:
/// intake, where every registration reads the customer's earlier complaints and grade besides four
/// group-commit writers, its relay and its inbox, 10; every other service, whose inbox and relay
/// batch their work, 2; the gateway, which only reloads its tokens and writes new ones, 2. So
/// `kefu up` holds at most 20, and two replicas of the suite and `bench/ceiling.sh 64` fit under PostgreSQL's
/// default of 100 connections.
pub fn pool_size(config: &Config, part: &str) -> u32 {
    config.database_pool.unwrap_or(match part {
        "intake" => 10,
        _ => 2,
    })
}

/// Connects `service` (a service's name, or `gateway`) to its database as `config` says, and makes sure its schema exists.
/// Where traces are exported, every statement it runs within traced work is a span
/// ([`crate::trace::record_statement`]).
pub async fn connect(config: &Config, service: &str) -> Result<DatabaseConnection, DbErr> {
    let (mut db, system) = match &config.database_url {
        None => (connect_sqlite(config, service).await?, "sqlite"),
        Some(url) => (connect_postgres(url, service, pool_size(config, service)).await?, "postgresql"),
    };
    if crate::trace::exporting() {
        db.set_metric_callback(move |info| {
            crate::trace::record_statement(system, &info.statement.sql, info.elapsed, info.failed)
        });
    }
    Ok(db)
}

async fn connect_sqlite(config: &Config, service: &str) -> Result<DatabaseConnection, DbErr> {
    std::fs::create_dir_all(&config.data_dir).map_err(|error| {
        DbErr::Custom(format!("cannot create the data directory {}: {error}", config.data_dir.display()))
    })?;
    let path = config.data_dir.join(format!("{service}.db"));
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode=rwc", path.display()));
    options
        .max_connections(1)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(30))
        .sqlx_logging(false)
        // On every connection the pool opens, also one that replaces an old one.
        .map_sqlx_sqlite_opts(|options| {
            options
                .journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(Duration::from_secs(10))
                .statement_cache_capacity(STATEMENT_CACHE)
        });
    Database::connect(options).await
}

async fn connect_postgres(url: &str, service: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    let unreachable = |error: DbErr| {
        DbErr::Custom(format!(
            "cannot connect to PostgreSQL at {}: {error}. Is the server running (pg_ctlcluster 15 main start) and does the database exist?",
            redact_password(url)
        ))
    };
    {
        let mut options = ConnectOptions::new(url.to_owned());
        options.max_connections(1).sqlx_logging(false).connect_timeout(Duration::from_secs(10));
        let admin = Database::connect(options).await.map_err(unreachable)?;
        let create = format!("CREATE SCHEMA IF NOT EXISTS \"{service}\"");
        if let Err(error) = admin.execute(Statement::from_string(DbBackend::Postgres, create)).await {
            // Two replicas starting at once may race to create the schema; the loser finds it there.
            if !crate::error::is_unique_violation(&error) {
                return Err(error);
            }
        }
        admin.close().await?;
    }
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(pool)
        .min_connections(1)
        .connect_timeout(POSTGRES_WAIT)
        .acquire_timeout(POSTGRES_WAIT)
        .set_schema_search_path(service)
        .sqlx_logging(false)
        .map_sqlx_postgres_opts(|options| options.statement_cache_capacity(STATEMENT_CACHE));
    Database::connect(options).await.map_err(unreachable)
}

/// A `LIKE` pattern for what starts with `prefix` exactly: a `%`, `_` or `\\` in the prefix matches
/// only itself, so a caller's prefix is never a wildcard.
pub fn starting_with(prefix: &str) -> sea_orm::sea_query::LikeExpr {
    let escaped = prefix.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
    sea_orm::sea_query::LikeExpr::new(format!("{escaped}%")).escape('\\')
}

#[cfg(test)]
mod tests {
    use sea_orm::sea_query::{Alias, Expr, Query, SqliteQueryBuilder};
    use sea_orm::{ConnectionTrait, DbBackend, Statement};

    /// Durability and waiting are settings of every connection the pool opens (its connect
    /// options), not statements run once on the first: a connection that replaces a retired one is
    /// set up alike. sqlx's own busy timeout would be 5 s.
    #[tokio::test]
    async fn every_sqlite_connection_is_in_wal_mode_with_full_sync() {
        let dir = tempfile::tempdir().expect("a directory");
        let data_dir = dir.path().display().to_string();
        let config = crate::config::Config::from_lookup(|key| (key == "KEFU_DATA_DIR").then(|| data_dir.clone()))
            .expect("a configuration");
        let pragma = |db: sea_orm::DatabaseConnection, name: &'static str| async move {
            let row = db
                .query_one(Statement::from_string(DbBackend::Sqlite, format!("PRAGMA {name}")))
                .await
                .expect("the pragma")
                .expect("a row");
            row.try_get_by_index::<String>(0)
                .or_else(|_| row.try_get_by_index::<i64>(0).map(|number| number.to_string()))
                .expect("a value")
        };
        let db = super::connect(&config, "intake").await.expect("connected");
        assert_eq!(pragma(db.clone(), "journal_mode").await, "wal");
        assert_eq!(pragma(db.clone(), "synchronous").await, "2", "FULL");
        assert_eq!(pragma(db.clone(), "busy_timeout").await, "10000");
        db.close().await.expect("closed");
    }

    #[test]
    fn a_prefix_is_never_a_wildcard() {
        let sql = Query::select()
            .column(Alias::new("origin"))
            .from(Alias::new("entries"))
            .and_where(Expr::col(Alias::new("origin")).like(super::starting_with("a_b%c")))
            .to_string(SqliteQueryBuilder);
        assert!(sql.ends_with(r"LIKE 'a\_b\%c%' ESCAPE '\'"), "{sql}");
    }
}
