//! `kefu backup <dir>`: a consistent copy of every SQLite database of a running suite, and of the
//! key files beside them, into a new directory that a suite can start on as its `KEFU_DATA_DIR`.
//!
//! **Consistent** means two things here:
//! - each file is one moment of its database: it is copied inside one read transaction (SQLite's WAL
//!   lets the suite go on writing meanwhile);
//! - the files agree with each other about the events between the services. An event leaves its
//!   sender's outbox only after the receiver has committed it and answered; so an event is lost from
//!   a backup only if the receiver's copy was taken before the event arrived and the sender's after
//!   it left. Every file's read transaction is therefore opened first, one after another within a
//!   fraction of a millisecond, and only then is anything copied — no delivery (a commit with an
//!   fsync on the receiver, an answer over gRPC, another commit on the sender) fits between the
//!   first and the last of them. An event both copies hold is applied once on restore: the
//!   receiver's inbox remembers it.
//!
//! PostgreSQL is backed up with `pg_dump` (docs/operations.md).

use std::path::{Path, PathBuf};

use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};

use crate::config::{Config, ServiceName};

/// What was copied: each database with its tables and bytes, and the key files.
#[derive(Debug, Default)]
pub struct Copied {
    pub databases: Vec<(String, usize, u64)>,
    pub key_files: Vec<String>,
}

/// The parts whose databases a backup holds, by file name (`<part>.db`).
fn parts() -> Vec<&'static str> {
    let mut parts: Vec<&'static str> = ServiceName::ALL.into_iter().map(ServiceName::as_str).collect();
    parts.push("gateway");
    parts
}

/// Copies the SQLite databases under `config.data_dir`, and its key files, into `target`, which
/// must not exist yet or be empty.
pub async fn sqlite(config: &Config, target: &Path) -> Result<Copied, String> {
    if config.database_url.is_some() {
        return Err("KEFU_DATABASE_URL is set: back up PostgreSQL with pg_dump instead (docs/operations.md, \"Back up and restore\")".into());
    }
    let source = &config.data_dir;
    let present: Vec<&str> = parts().into_iter().filter(|part| source.join(format!("{part}.db")).is_file()).collect();
    if present.is_empty() {
        return Err(format!(
            "no kefu database under {}: set KEFU_DATA_DIR to the directory the suite runs on",
            source.display()
        ));
    }
    let empty = std::fs::read_dir(target).map(|mut entries| entries.next().is_none());
    match empty {
        Ok(true) => {}
        Ok(false) => return Err(format!("{} is not empty: back up into a new directory", target.display())),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("{}: {error}", target.display())),
    }
    std::fs::create_dir_all(target).map_err(|error| format!("cannot create {}: {error}", target.display()))?;

    // Every copy's empty schema first, then every source's read transaction, then the rows.
    let mut copies = Vec::new();
    for part in &present {
        let from = source.join(format!("{part}.db"));
        let to = target.join(format!("{part}.db"));
        let db = open(&from, "rw").await?;
        let tables = create_schema(&db, &to).await.map_err(|error| format!("{part}.db: {error}"))?;
        let attach = format!("ATTACH DATABASE '{}' AS copy", to.display().to_string().replace('\'', "''"));
        execute(&db, &attach).await.map_err(|error| format!("{part}.db: {error}"))?;
        copies.push((part, db, tables, to));
    }
    let mut reading: Vec<(DatabaseTransaction, &str, Vec<String>, PathBuf)> = Vec::new();
    for (part, db, tables, to) in &copies {
        let transaction = db.begin().await.map_err(|error| format!("{part}.db: {error}"))?;
        // A read transaction's moment is its first read.
        execute(&transaction, "SELECT count(*) FROM main.sqlite_master")
            .await
            .map_err(|e| format!("{part}.db: {e}"))?;
        reading.push((transaction, part, tables.clone(), to.clone()));
    }
    let mut copied = Copied::default();
    for (transaction, part, tables, to) in reading {
        for table in &tables {
            let insert = format!("INSERT INTO copy.\"{table}\" SELECT * FROM main.\"{table}\"");
            execute(&transaction, &insert).await.map_err(|error| format!("{part}.db, table {table}: {error}"))?;
        }
        transaction.commit().await.map_err(|error| format!("{part}.db: {error}"))?;
        let bytes = std::fs::metadata(&to).map(|metadata| metadata.len()).unwrap_or(0);
        copied.databases.push((format!("{part}.db"), tables.len(), bytes));
    }
    for (part, db, _, _) in copies {
        execute(&db, "DETACH DATABASE copy").await.map_err(|error| format!("{part}.db: {error}"))?;
        let _ = db.close().await;
    }
    copied.key_files = copy_key_files(source, target)?;
    Ok(copied)
}

async fn open(path: &Path, mode: &str) -> Result<DatabaseConnection, String> {
    let mut options = ConnectOptions::new(format!("sqlite://{}?mode={mode}", path.display()));
    options.max_connections(1).min_connections(1).sqlx_logging(false);
    let db = Database::connect(options).await.map_err(|error| format!("{}: {error}", path.display()))?;
    execute(&db, "PRAGMA busy_timeout=10000").await?;
    Ok(db)
}

async fn execute(db: &impl ConnectionTrait, sql: &str) -> Result<(), String> {
    db.execute(Statement::from_string(DbBackend::Sqlite, sql)).await.map(|_| ()).map_err(|error| error.to_string())
}

/// Makes the file `to` with `db`'s tables and indexes, empty; returns the tables to fill, in order
/// (SQLite's own `sqlite_sequence` among them, where a table counts with `AUTOINCREMENT`).
async fn create_schema(db: &DatabaseConnection, to: &Path) -> Result<Vec<String>, String> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY type = 'table' DESC, rowid",
        ))
        .await
        .map_err(|error| error.to_string())?;
    // Readable by its owner only, like the databases it copies.
    crate::db::owner_only(to).map_err(|error| format!("{}: {error}", to.display()))?;
    let copy = open(to, "rwc").await?;
    let mut tables = Vec::new();
    for row in rows {
        let kind: String = row.try_get("", "type").map_err(|error| error.to_string())?;
        let name: String = row.try_get("", "name").map_err(|error| error.to_string())?;
        let sql: String = row.try_get("", "sql").map_err(|error| error.to_string())?;
        if name.starts_with("sqlite_") {
            continue;
        }
        execute(&copy, &sql).await?;
        if kind == "table" {
            tables.push(name);
        }
    }
    let counted = copy
        .query_one(Statement::from_string(
            DbBackend::Sqlite,
            "SELECT count(*) AS n FROM sqlite_master WHERE name = 'sqlite_sequence'",
        ))
        .await
        .map_err(|error| error.to_string())?
        .and_then(|row| row.try_get::<i64>("", "n").ok())
        .unwrap_or(0);
    if counted > 0 {
        tables.push("sqlite_sequence".into());
    }
    let _ = copy.close().await;
    Ok(tables)
}

/// Copies the key files (`*.key`: the audit key, the webhook key) beside the databases, readable
/// by their owner only: without them the copy's audit log does not verify and its webhooks'
/// secrets do not open.
fn copy_key_files(source: &Path, target: &Path) -> Result<Vec<String>, String> {
    let mut copied = Vec::new();
    let entries = std::fs::read_dir(source).map_err(|error| format!("{}: {error}", source.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".key") {
            continue;
        }
        let to = target.join(&name);
        let key = std::fs::read(entry.path()).map_err(|error| format!("{name}: {error}"))?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&to).map_err(|error| format!("{}: {error}", to.display()))?;
        std::io::Write::write_all(&mut file, &key).map_err(|error| format!("{}: {error}", to.display()))?;
        copied.push(name);
    }
    copied.sort();
    Ok(copied)
}
