//! Connecting a service to its database.
//!
//! - **SQLite** (default): one file per service, `<KEFU_DATA_DIR>/<service>.db`, in WAL mode with
//!   `synchronous=FULL`, so a commit is on disk before the caller hears of it. One connection per
//!   service: SQLite has one writer at a time anyway, and a single connection never meets
//!   `SQLITE_BUSY`. The file is readable and writable by its owner only (0600, like the key files
//!   beside it), and so are its `-wal` and `-shm` (SQLite gives them the database file's mode).
//! - **PostgreSQL** (`KEFU_DATABASE_URL`): one database shared by the services, each in its own
//!   schema named after it (`intake`, `inspection`, …), created on start; a service's connections
//!   have `search_path` set to its schema, so no service can see another's tables by accident.
//!   The URL's passwords never reach a message: every error of connecting is shown with
//!   [`crate::config::redact_in`].

use std::time::Duration;

use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, Statement};

use crate::config::{Config, redact_in, redact_password, without_unknown_password_parameters};

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
        Some(url) => (connect_postgres(url.expose(), service, pool_size(config, service)).await?, "postgresql"),
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
    owner_only(&path).map_err(|error| {
        DbErr::Custom(format!("cannot make {} readable by its owner only: {error}", path.display()))
    })?;
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

/// Makes the SQLite database `path`, and its `-wal` and `-shm` if they are there, readable and
/// writable by its owner only: a new one is created so (SQLite then creates the `-wal` and `-shm`
/// with the database's mode), one made earlier with another mode is changed. The files hold
/// customers' names and phones.
pub fn owner_only(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    drop(options.open(path)?);
    #[cfg(unix)]
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        match std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)) {
            Err(error) if error.kind() != std::io::ErrorKind::NotFound => return Err(error),
            _ => {}
        }
    }
    Ok(())
}

async fn connect_postgres(given: &str, service: &str, pool: u32) -> Result<DatabaseConnection, DbErr> {
    // The driver's errors may echo the URL it was given, and its log names every parameter it does
    // not know, value and all: both are kept free of passwords.
    let url = without_unknown_password_parameters(given);
    let url = url.as_str();
    let unreachable = |error: DbErr| {
        DbErr::Custom(format!(
            "cannot connect to PostgreSQL at {}: {}. Is the server running (pg_ctlcluster 15 main start) and does the database exist?",
            redact_password(given),
            redact_in(&redact_in(&error.to_string(), url), given)
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
                return Err(unreachable(error));
            }
        }
        admin.close().await.map_err(unreachable)?;
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

/// Serializes, until `transaction` ends, the transactions that take the same `key`, so that a
/// check and the write it allows (a count under a cap, a quota) never race: two callers cannot both
/// count 4 under a cap of 5 and both insert. On PostgreSQL a transaction-level advisory lock on the
/// key's hash (`pg_advisory_xact_lock(hashtext(key))`, released at commit or rollback; keys name
/// their service and purpose, as `intake/webhooks/SH01`, and a collision of hashes only makes two
/// keys wait for each other). On SQLite nothing is needed: a service has one connection, so its
/// transactions run one after another.
pub async fn serialize(transaction: &sea_orm::DatabaseTransaction, key: &str) -> Result<(), DbErr> {
    if transaction.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    transaction
        .execute(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtext($1))",
            [key.into()],
        ))
        .await
        .map(drop)
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

    /// The database files hold customers' names and phones: only their owner reads them, like the
    /// key files. A file an older kefu made with the umask's mode is tightened too.
    #[cfg(unix)]
    #[tokio::test]
    async fn sqlite_files_are_readable_by_their_owner_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("a directory");
        let data_dir = dir.path().display().to_string();
        let config = crate::config::Config::from_lookup(|key| (key == "KEFU_DATA_DIR").then(|| data_dir.clone()))
            .expect("a configuration");
        let older = dir.path().join("claims.db");
        std::fs::write(&older, b"").expect("an older, empty file");
        std::fs::set_permissions(&older, std::fs::Permissions::from_mode(0o644)).expect("0644");
        for service in ["intake", "claims"] {
            let db = super::connect(&config, service).await.expect("connected");
            db.execute(Statement::from_string(DbBackend::Sqlite, "CREATE TABLE t (x INTEGER)")).await.expect("a write");
            for suffix in ["", "-wal", "-shm"] {
                let file = dir.path().join(format!("{service}.db{suffix}"));
                let mode = std::fs::metadata(&file).expect("the file is there").permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}: {mode:o}", file.display());
            }
            db.close().await.expect("closed");
        }
    }

    /// A PostgreSQL that cannot be reached, or a URL the driver cannot read: the error names the
    /// server and says what to do, and holds no password, in whatever form the URL carried it.
    #[tokio::test]
    async fn a_failed_connection_shows_no_password() {
        let closed =
            std::net::TcpListener::bind("127.0.0.1:0").expect("a port").local_addr().expect("its address").port();
        for url in [
            // Refused: the driver tries again until its connect timeout, 10 s.
            format!(
                "postgres://kefu:s3cret-one@x@127.0.0.1:{closed}/kefu?password=s3cret-two&sslpassword=s3cret-three&PASSWD=s3cret-four"
            ),
            // Not a port: the driver echoes the whole connection string it cannot parse.
            "postgres://kefu:s3cret-five@127.0.0.1:99999/kefu?password=s3cret-six".to_owned(),
            "postgres://kefu:s3cret%40seven@127.0.0.1:99999/kefu".to_owned(),
        ] {
            let config = crate::config::Config::from_lookup(|key| (key == "KEFU_DATABASE_URL").then(|| url.clone()))
                .expect("a configuration");
            let error = super::connect(&config, "intake").await.expect_err("nothing listens there").to_string();
            assert!(error.contains("cannot connect to PostgreSQL at postgres://kefu"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
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
