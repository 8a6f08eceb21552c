//! `kefu audit`: an operator's commands for archives' audit chain, run against archives' database
//! directly (as `kefu migrate` is), with the audit key and the head file archives uses.

use clap::{Args, Subcommand};
use kefu_archives::audit::{self, AuditKey, HeadFile, SealError, Standing};
use kefu_kit::{Config, config::ServiceName};

use crate::client::Failure;

#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Check archives' audit chain and, if it is not sealed with the audit key, seal it.
    ///
    /// This is the only way a chain archives reported at start (log line, metric
    /// kefu_archives_audit_chain_intact 0, VerifyAuditLog not intact) becomes one that verifies:
    /// archives never seals a chain by itself. A chain sealed with plain SHA-256 is a log from
    /// before the audit key existed, or one rewritten by someone who could write the database but
    /// not read the key. A broken chain (an entry missing, altered, cut off the end, or not the
    /// one the head file anchored) is evidence. Look at the entries first (ListAuditEntries, or
    /// the database) and keep a copy of the database.
    ///
    /// What it finds, and does:
    ///   intact     nothing (the head file is brought up to the chain's head)
    ///   unsealed   every entry is sealed anew with the audit key, as it stands
    ///   broken     refused, exit 1, nothing changed; with --accept-broken every entry is sealed
    ///              anew as it stands and each number no entry holds gets an `entry_missing` entry
    /// A seal appends a `chain_sealed` entry saying what it found, and anchors the new head in the
    /// head file (KEFU_AUDIT_HEAD_FILE, default KEFU_DATA_DIR/audit.head).
    ///
    /// Run it with archives' configuration: KEFU_DATABASE_URL (or KEFU_DATA_DIR for SQLite),
    /// KEFU_AUDIT_KEY (or KEFU_DATA_DIR/audit.key), KEFU_AUDIT_HEAD_FILE. Archives may be running:
    /// it checks the chain again when the head file changes.
    ///
    /// Examples:
    ///   KEFU_DATA_DIR=./data kefu audit seal
    ///   kubectl -n kefu exec deploy/archives -- kefu audit seal --accept-broken
    #[command(verbatim_doc_comment)]
    Seal {
        /// Seal a broken chain too, as it stands, recording the break in the log.
        #[arg(long)]
        accept_broken: bool,
    },
}

pub async fn run(args: AuditArgs, config: &Config) -> Result<(), Failure> {
    match args.command {
        AuditCommand::Seal { accept_broken } => seal(config, accept_broken).await.map_err(Failure::from),
    }
}

async fn seal(config: &Config, accept_broken: bool) -> Result<(), String> {
    // A key made now would seal the chain under a key archives does not hold.
    let key_file = config.data_dir.join("audit.key");
    if config.audit_key.is_none() && !key_file.exists() {
        return Err(format!(
            "no audit key: KEFU_AUDIT_KEY is not set and there is no {}. Run this where archives runs, with its KEFU_AUDIT_KEY (the Secret kefu-audit-key) or its KEFU_DATA_DIR",
            key_file.display()
        ));
    }
    let database = config.data_dir.join(format!("{}.db", ServiceName::Archives));
    if config.database_url.is_none() && !database.exists() {
        return Err(format!(
            "no archives database at {}: set KEFU_DATA_DIR to archives' data directory, or KEFU_DATABASE_URL",
            database.display()
        ));
    }
    let key = AuditKey::load(config)?;
    let file = HeadFile::of(config);
    let db = kefu_kit::db::connect(config, ServiceName::Archives.as_str())
        .await
        .map_err(|error| format!("archives' database: {error}"))?;
    let now = kefu_kit::time::to_micros(chrono::Utc::now());
    let result = audit::seal(&db, &key, &file, accept_broken, now).await;
    let _ = db.close().await;
    let sealed = match result {
        Ok(sealed) => sealed,
        Err(SealError::Broken { seq, problem }) => {
            return Err(format!(
                "the audit chain is broken at entry {seq}: {problem}.\nNothing was changed. This is not a chain from before the audit key: entries were removed, altered, or rewritten. Keep a copy of archives' database as evidence and look at the entries around {seq}; then `kefu audit seal --accept-broken` seals the chain as it stands and records the break in it."
            ));
        }
        Err(error) => return Err(error.to_string()),
    };
    let anchor = match &sealed.anchor_before {
        Some(head) => format!("the head file {} recorded entry {}", file.path().display(), head.seq),
        None => format!("there was no head file at {}", file.path().display()),
    };
    println!("Found: {} entries; {anchor}.", sealed.entries);
    match &sealed.found.standing {
        Standing::Intact => {
            println!("The chain is intact and sealed with the audit key: nothing to seal.");
            println!("Head: entry {}, anchored in {}.", sealed.head.seq, file.path().display());
            return Ok(());
        }
        Standing::Unsealed { through } => {
            println!("Entries 1–{through} were sealed without the audit key (plain SHA-256); every link held.")
        }
        Standing::Broken { seq, problem } => println!("Broken at entry {seq}: {problem} (accepted)."),
    }
    println!("Sealed {} entries anew with the audit key.", sealed.resealed);
    if !sealed.filled.is_empty() {
        let numbers: Vec<String> = sealed.filled.iter().map(i64::to_string).collect();
        println!("No entry held {}: each now holds an `entry_missing` entry.", numbers.join(", "));
    }
    println!(
        "Recorded the seal as entry {} (`chain_sealed`), and anchored it in {}.",
        sealed.head.seq,
        file.path().display()
    );
    Ok(())
}
