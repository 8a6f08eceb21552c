//! The audit chain's head, anchored outside the database: the [`HeadFile`] the operator owns, and
//! the [`Anchor`] that checks the chain at start and then moves the file along it as entries are
//! appended — only along entries that chain under the key, so the file never records a state an
//! attacker made.
//!
//! Why a file and not a second store: the one thing that must not be writable by whoever can write
//! archives' database is the anchor, and a file beside the key (a volume of the archives pod, a
//! directory of `kefu up`'s machine) is what the operator already keeps apart from the database.
//! A second database, or a second schema under another role, would need its own credentials and
//! connection and would add nothing a file does not give: one small write per append.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use kefu_kit::Shutdown;
use sea_orm::DatabaseConnection;
use tokio::sync::Notify;

use super::{AuditKey, Examination, Head, Standing, examine, examine_after, unsealed_problem};

/// How often the anchor looks for entries appended without a wake (the inbox's filings, whose
/// transaction commits after the handler returns), and for a head file changed by `kefu audit seal`.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(5);

/// The file holding the chain's anchored head: `KEFU_AUDIT_HEAD_FILE`, or `audit.head` in the data
/// directory beside the key file. Written whole and renamed into place, readable by its owner only.
#[derive(Debug, Clone)]
pub struct HeadFile {
    path: PathBuf,
}

const PREAMBLE: &str = "\
# The head of kefu archives' audit chain, anchored outside the database (KEFU_AUDIT_HEAD_FILE).
# Written by archives after each audited change, and by `kefu audit seal`. Do not edit.
";

impl HeadFile {
    pub fn of(config: &kefu_kit::Config) -> HeadFile {
        HeadFile::at(config.audit_head_file.clone().unwrap_or_else(|| config.data_dir.join("audit.head")))
    }

    pub fn at(path: impl Into<PathBuf>) -> HeadFile {
        HeadFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The anchored head; `None` if there is no file yet.
    pub fn read(&self) -> Result<Option<Head>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error.to_string()),
        };
        let (mut seq, mut seal) = (None, None);
        for line in text.lines().map(str::trim).filter(|line| !line.is_empty() && !line.starts_with('#')) {
            match line.split_once('=').map(|(key, value)| (key.trim(), value.trim())) {
                Some(("seq", value)) => seq = value.parse::<i64>().ok().filter(|seq| *seq >= 0),
                Some(("seal", value)) if value.chars().all(|c| c.is_ascii_hexdigit()) => seal = Some(value.to_owned()),
                _ => return Err(format!("unexpected line {line:?}")),
            }
        }
        match (seq, seal) {
            (Some(seq), Some(seal)) if (seq == 0) == seal.is_empty() => Ok(Some(Head { seq, seal })),
            _ => Err("expected `seq = <number>` and `seal = <hex>`".into()),
        }
    }

    /// Records `head`: written to a file beside it, synced, and renamed over it, mode 0600.
    pub fn write(&self, head: &Head) -> Result<(), String> {
        let fail = |error: std::io::Error| format!("{}: {error}", self.path.display());
        if let Some(dir) = self.path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
        }
        let mut name = self.path.file_name().unwrap_or_default().to_owned();
        name.push(".writing");
        let temporary = self.path.with_file_name(name);
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&temporary).map_err(fail)?;
        #[cfg(unix)]
        std::fs::set_permissions(&temporary, std::os::unix::fs::PermissionsExt::from_mode(0o600)).map_err(fail)?;
        let text = format!("{PREAMBLE}seq = {}\nseal = {}\n", head.seq, head.seal);
        std::io::Write::write_all(&mut file, text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        std::fs::rename(&temporary, &self.path).map_err(fail)
    }
}

/// Keeps the head file at the chain's head, and reports the chain's standing: in the log (once
/// per change), and in the metric `kefu_archives_audit_chain_intact`.
#[derive(Clone)]
pub struct Anchor {
    file: Arc<HeadFile>,
    wake: Arc<Notify>,
    recheck: Arc<AtomicBool>,
}

/// What the anchor knows of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Known {
    /// Not looked at yet, or the database did not answer.
    Nothing,
    /// Intact up to `anchored`, which the head file holds (unless writing it failed).
    Intact { anchored: Head, written: bool },
    /// Unsealed or broken; checked again only when the head file changes (an operator's seal).
    Faulty { file: Option<Option<Head>> },
}

impl Anchor {
    pub fn new(file: HeadFile) -> Anchor {
        Anchor { file: Arc::new(file), wake: Arc::default(), recheck: Arc::default() }
    }

    pub fn file(&self) -> &HeadFile {
        &self.file
    }

    /// Entries may have been appended: move the anchor on. Cheap; call after a commit.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// A verification found the chain broken: walk it whole again and report.
    pub fn recheck(&self) {
        self.recheck.store(true, Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// Checks the whole chain now, and then follows it until `shutdown`.
    pub async fn watch(self, db: DatabaseConnection, key: AuditKey, shutdown: Shutdown) {
        let mut known = self.check(&db, &key, Known::Nothing).await;
        loop {
            tokio::select! {
                () = shutdown.clone().wait() => return,
                () = self.wake.notified() => {}
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
            known = self.follow(&db, &key, known).await;
        }
    }

    /// Checks the whole chain against the head file, reports what it found, and anchors an intact
    /// chain's head. What start does.
    async fn check(&self, db: &DatabaseConnection, key: &AuditKey, was: Known) -> Known {
        let file = match self.file.read() {
            Ok(file) => file,
            Err(error) => {
                if !matches!(was, Known::Faulty { file: None }) {
                    kefu_kit::metrics::audit_chain_intact(false);
                    tracing::error!(
                        file = %self.file.path().display(), %error,
                        "cannot read the audit chain's head file: the chain is not checked against it; fix or remove the file"
                    );
                }
                return Known::Faulty { file: None };
            }
        };
        let examination = match examine(db, key, file.as_ref()).await {
            Ok(examination) => examination,
            Err(error) => {
                tracing::warn!(%error, "cannot check the audit chain now; will try again");
                return Known::Nothing;
            }
        };
        let Examination { checked, last, standing } = examination;
        match standing {
            Standing::Intact => {
                if file.is_none() && last.seq > 0 {
                    tracing::warn!(
                        file = %self.file.path().display(), entries = checked,
                        "the audit chain had no head file (a first start with one, or the file was removed): anchored now at its last entry"
                    );
                }
                let written = file.as_ref() == Some(&last) || self.anchor(&last, true);
                if written {
                    kefu_kit::metrics::audit_chain_intact(true);
                }
                if !matches!(was, Known::Intact { .. }) {
                    tracing::info!(entries = checked, "the audit chain is intact, sealed with the audit key");
                }
                Known::Intact { anchored: last, written }
            }
            Standing::Unsealed { through } => {
                kefu_kit::metrics::audit_chain_intact(false);
                tracing::error!(
                    entries = checked,
                    unsealed_through = through,
                    "the audit chain is not sealed with the audit key: {}. Archives goes on serving and leaves the chain as it is",
                    unsealed_problem(through)
                );
                Known::Faulty { file: Some(file) }
            }
            Standing::Broken { seq, problem } => {
                kefu_kit::metrics::audit_chain_intact(false);
                tracing::error!(
                    seq, %problem,
                    "the audit chain is broken. Archives goes on serving and leaves the chain as it is; keep a copy of the database, and see docs/operations.md, \"The audit chain\""
                );
                Known::Faulty { file: Some(file) }
            }
        }
    }

    /// Writes `head` to the head file; logs a failure (once, when `first`), and returns whether it
    /// was written.
    fn anchor(&self, head: &Head, first: bool) -> bool {
        match self.file.write(head) {
            Ok(()) => true,
            Err(error) => {
                kefu_kit::metrics::audit_chain_intact(false);
                if first {
                    tracing::error!(
                        %error,
                        "cannot write the audit chain's head file, so entries cut off the end would go unseen; set KEFU_AUDIT_HEAD_FILE to a place archives may write and the database's users may not"
                    );
                }
                false
            }
        }
    }

    /// Moves the anchor along the entries appended since it was last moved; or checks the whole
    /// chain again when it is not known to be intact and the head file changed, or when asked to.
    async fn follow(&self, db: &DatabaseConnection, key: &AuditKey, known: Known) -> Known {
        let file = self.file.read().ok();
        let recheck = self.recheck.swap(false, Ordering::Relaxed);
        let Known::Intact { anchored, written } = known else {
            if recheck || known == Known::Nothing || !matches!(&known, Known::Faulty { file: seen } if *seen == file) {
                return self.check(db, key, known).await;
            }
            return known;
        };
        // Someone else wrote the file (`kefu audit seal`): walk the whole chain against it.
        if recheck || (written && file != Some(Some(anchored.clone()))) {
            return self.check(db, key, Known::Intact { anchored, written }).await;
        }
        let examination = match examine_after(db, key, &anchored).await {
            Ok(examination) => examination,
            Err(error) => {
                tracing::debug!(%error, "cannot follow the audit chain now; will try again");
                return Known::Intact { anchored, written };
            }
        };
        match examination.standing {
            Standing::Intact if examination.last == anchored && written => Known::Intact { anchored, written },
            Standing::Intact => {
                let now_written = self.anchor(&examination.last, written);
                if now_written && !written {
                    kefu_kit::metrics::audit_chain_intact(true);
                    tracing::info!(file = %self.file.path().display(), "the audit chain's head file is written again");
                }
                Known::Intact { anchored: examination.last, written: now_written }
            }
            Standing::Unsealed { .. } | Standing::Broken { .. } => {
                let (seq, problem) = match examination.standing {
                    Standing::Broken { seq, problem } => (seq, problem),
                    _ => (anchored.seq + 1, "an entry after the anchor is not sealed with the key".to_owned()),
                };
                kefu_kit::metrics::audit_chain_intact(false);
                tracing::error!(
                    seq, %problem,
                    "the audit chain is broken. Archives goes on serving and leaves the chain as it is; keep a copy of the database, and see docs/operations.md, \"The audit chain\""
                );
                Known::Faulty { file }
            }
        }
    }
}
