//! The audit log (`003 第27条`: a leak or suspected leak is reported at once, so every access is
//! audited). Append-only and chained: entry `n`'s seal is the HMAC-SHA256, under the audit key
//! ([`AuditKey`]: `KEFU_AUDIT_KEY`, kept out of the database), of entry `n − 1`'s seal and entry
//! `n`'s fields, and the head row holds the last sequence number and seal. An entry removed, altered
//! or cut off the end breaks the chain, and [`verify`] names where — and because the seal needs the
//! key, whoever can write the database cannot rewrite the log and recompute a chain that verifies.
//!
//! Two things the database alone cannot show are kept outside it:
//!
//! - **the head file** ([`HeadFile`], `KEFU_AUDIT_HEAD_FILE`): after each append the last sequence
//!   number and seal are anchored in a file the operator owns ([`Anchor`] follows the chain and
//!   moves the anchor only along entries that chain under the key). A log that no longer reaches
//!   the anchor — entries cut off the end and the head row moved back, or the chain rewritten by
//!   someone who holds the key — is broken, and [`verify`] says how it differs from the anchor;
//! - **the decision to seal**: a chain found sealed with plain SHA-256 (a log from before the key,
//!   or one rewritten by someone without it) or broken is reported at start (the log, the metric
//!   `kefu_archives_audit_chain_intact`) and by [`verify`], and left as it is. Only an operator
//!   seals it, with `kefu audit seal` ([`seal`]), which says what it found, refuses a broken chain
//!   unless told to accept it, and records the seal in the log itself.
//!
//! Invariant: an entry is appended in the same transaction as what it records. Appending first
//! bumps the head row, which on PostgreSQL locks it until commit: entries are chained one at a time.
//! The head file is written after the commit, so it may lag the log by the entries of a moment, never
//! lead it.
//!
//! The tables and their queries are [`crate::store::audit_log`]'s; the chain is checked by a walk
//! over the entries (`Walk`) that reads nothing itself.

mod head;
mod seal;

pub use head::{Anchor, HeadFile};
pub use seal::{SealError, Sealed, seal};

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sea_orm::{ConnectionTrait, DbErr};
use sha2::{Digest, Sha256};

use crate::store::{self, audit_log::entry};

/// What happened, before it is chained. Never personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub actor: &'a str,
    pub action: &'static str,
    pub subject: &'a str,
    pub detail: String,
}

/// The key the audit chain is sealed with.
#[derive(Clone)]
pub struct AuditKey(std::sync::Arc<Vec<u8>>);

impl AuditKey {
    pub fn new(secret: &str) -> AuditKey {
        AuditKey(std::sync::Arc::new(secret.as_bytes().to_vec()))
    }

    /// `KEFU_AUDIT_KEY`, or else the key file beside the SQLite files (`kefu_kit::keys`).
    pub fn load(config: &kefu_kit::Config) -> Result<AuditKey, String> {
        let secret =
            kefu_kit::keys::load(config, config.audit_key.as_ref(), "audit.key", "KEFU_AUDIT_KEY", "kefu-audit-key")?;
        Ok(AuditKey::new(&secret))
    }
}

/// How a chain is sealed: with the key, or (logs from before the key) plain SHA-256.
#[derive(Clone, Copy)]
enum Seal<'a> {
    Keyed(&'a AuditKey),
    Legacy,
}

/// The seal of an entry: each field length-prefixed, so no two entries seal alike by shifting text
/// from one field to the next.
#[allow(clippy::too_many_arguments)]
fn chain_hash(
    seal: Seal<'_>,
    prev_hash: &str,
    seq: i64,
    time: DateTime<Utc>,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let seq = seq.to_string();
    let time = time.timestamp_micros().to_string();
    let fields = [prev_hash, &seq, &time, actor, action, subject, detail];
    match seal {
        Seal::Keyed(key) => {
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&key.0) else { return String::new() };
            for field in fields {
                mac.update(&(field.len() as u64).to_be_bytes());
                mac.update(field.as_bytes());
            }
            kefu_kit::text::hex(&mac.finalize().into_bytes())
        }
        Seal::Legacy => {
            let mut hasher = Sha256::new();
            for field in fields {
                hasher.update((field.len() as u64).to_be_bytes());
                hasher.update(field.as_bytes());
            }
            kefu_kit::text::hex(&hasher.finalize())
        }
    }
}

/// The seal of an entry as stored, chained after `prev_hash`.
fn seal_of(seal: Seal<'_>, prev_hash: &str, row: &entry::Model) -> String {
    chain_hash(seal, prev_hash, row.seq, row.time, &row.actor, &row.action, &row.subject, &row.detail)
}

/// The seal of `row` under `key`, chained after `prev_hash`: what whoever holds the key can make.
pub fn sealed_with(key: &AuditKey, prev_hash: &str, row: &entry::Model) -> String {
    seal_of(Seal::Keyed(key), prev_hash, row)
}

/// Appends `record` at `now` (microseconds) within `tx`; returns its sequence number.
pub async fn append(
    tx: &impl ConnectionTrait,
    key: &AuditKey,
    record: Record<'_>,
    now: DateTime<Utc>,
) -> Result<i64, DbErr> {
    let current = store::audit_log::advance_head(tx).await?;
    let seq = current.seq;
    let hash = chain_hash(
        Seal::Keyed(key),
        &current.hash,
        seq,
        now,
        record.actor,
        record.action,
        record.subject,
        &record.detail,
    );
    let sealed = entry::Model {
        seq,
        time: now,
        actor: record.actor.to_owned(),
        action: record.action.into(),
        subject: record.subject.to_owned(),
        detail: record.detail,
        prev_hash: current.hash,
        hash,
    };
    store::audit_log::write_entry(tx, sealed).await?;
    Ok(seq)
}

/// A point of the chain: an entry's sequence number and seal (`0` and an empty seal before the first).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Head {
    pub seq: i64,
    pub seal: String,
}

/// What a walk along the whole chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Every entry chains and is sealed with the key; the head row and the head file are reached.
    Intact,
    /// Every entry chains and the heads are reached, but entries `1..=through` are sealed with plain
    /// SHA-256, which anyone who can write the database can make: a log from before the key, or one
    /// rewritten by someone without it. Only an operator's [`seal`] seals it.
    Unsealed { through: i64 },
    /// The first entry that does not chain (or the first missing), and why.
    Broken { seq: i64, problem: String },
}

/// A walk's result: how many entries chained, the last of them, and the standing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Examination {
    pub checked: i64,
    pub last: Head,
    pub standing: Standing,
}

/// What [`verify`] answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub checked: i64,
    /// The first entry that does not chain, and why; `None` when the log is intact.
    pub broken: Option<(i64, String)>,
}

impl From<Examination> for Verification {
    fn from(examination: Examination) -> Verification {
        let broken = match examination.standing {
            Standing::Intact => None,
            Standing::Unsealed { through } => Some((1, unsealed_problem(through))),
            Standing::Broken { seq, problem } => Some((seq, problem)),
        };
        Verification { checked: examination.checked, broken }
    }
}

/// What an unsealed chain is, in words.
pub fn unsealed_problem(through: i64) -> String {
    format!(
        "entries 1–{through} are sealed without the audit key (plain SHA-256), which anyone who can write the database can do; an operator checks them and seals the chain with `kefu audit seal`"
    )
}

/// A walk along the chain, entry by entry, oldest first: each must follow the one before, and its
/// fields must give its seal — under the key, or (only before the first entry sealed with the key)
/// as plain SHA-256. The entry the head file anchors must be the one anchored. Reads nothing itself.
struct Walk<'a> {
    key: &'a AuditKey,
    anchor: Option<&'a Head>,
    expected_seq: i64,
    prev_hash: String,
    checked: i64,
    /// The last entry sealed with plain SHA-256 (0: none).
    unsealed_through: i64,
    /// Whether an entry sealed with the key was met: none after it may be plain.
    keyed_seen: bool,
}

impl<'a> Walk<'a> {
    /// A walk from the first entry, checking the entry `anchor` names on the way.
    fn new(key: &'a AuditKey, anchor: Option<&'a Head>) -> Walk<'a> {
        Walk {
            key,
            anchor,
            expected_seq: 1,
            prev_hash: String::new(),
            checked: 0,
            unsealed_through: 0,
            keyed_seen: false,
        }
    }

    /// A walk on from `from`, an entry already checked and sealed with the key: every entry after it
    /// must be sealed with the key too.
    fn after(key: &'a AuditKey, from: &Head) -> Walk<'a> {
        Walk {
            key,
            anchor: None,
            expected_seq: from.seq + 1,
            prev_hash: from.seal.clone(),
            checked: from.seq,
            unsealed_through: 0,
            keyed_seen: true,
        }
    }

    /// The examination of a chain broken at `seq`. When entries before it are sealed without the
    /// key, the first of them is the first that does not verify, and both are named.
    fn broken(&self, seq: i64, problem: String) -> Examination {
        let (seq, problem) = match self.unsealed_through {
            0 => (seq, problem),
            through => {
                (1, format!("{problem}; and entries 1–{through} are sealed without the audit key (plain SHA-256)"))
            }
        };
        Examination {
            checked: self.checked,
            last: Head { seq: self.checked, seal: self.prev_hash.clone() },
            standing: Standing::Broken { seq, problem },
        }
    }

    /// Checks the next entry; the examination that ends the walk when it does not chain.
    fn step(&mut self, row: entry::Model) -> Result<(), Examination> {
        let expected_seq = self.expected_seq;
        if row.seq != expected_seq {
            return Err(self.broken(expected_seq, format!("entry {expected_seq} is missing")));
        }
        if row.prev_hash != self.prev_hash {
            return Err(self.broken(row.seq, format!("entry {} does not follow its predecessor's hash", row.seq)));
        }
        if row.hash != seal_of(Seal::Keyed(self.key), &self.prev_hash, &row) {
            if row.hash != seal_of(Seal::Legacy, &self.prev_hash, &row) {
                return Err(
                    self.broken(row.seq, format!("entry {} was altered: its fields do not give its hash", row.seq))
                );
            }
            if self.keyed_seen {
                return Err(self.broken(
                    row.seq,
                    format!(
                        "entry {} is sealed without the audit key (plain SHA-256) after entries sealed with it: it was written by someone who does not hold the key",
                        row.seq
                    ),
                ));
            }
            self.unsealed_through = row.seq;
        } else {
            self.keyed_seen = true;
        }
        if let Some(anchor) = self.anchor.filter(|anchor| anchor.seq == row.seq && anchor.seal != row.hash) {
            return Err(self.broken(
                row.seq,
                format!(
                    "entry {} is not the entry the head file anchored (its seal differs): the log was rewritten after entry {} was written",
                    anchor.seq, anchor.seq
                ),
            ));
        }
        self.prev_hash = row.hash;
        self.expected_seq += 1;
        self.checked += 1;
        Ok(())
    }

    /// The examination once every entry was checked, against the head row (`None` if there is none)
    /// and the head file's anchor: entries cut off the end leave a head that records more than the
    /// log holds.
    fn finish(self, head: Option<Head>) -> Examination {
        let checked = self.checked;
        let last = Head { seq: checked, seal: self.prev_hash.clone() };
        if let Some(anchor) = self.anchor.filter(|anchor| anchor.seq > checked) {
            let problem = format!(
                "the log ends at entry {checked} but the head file records entry {}: entries were cut off the end, or erased and the rest numbered anew",
                anchor.seq
            );
            return self.broken(checked + 1, problem);
        }
        let head = head.unwrap_or_default();
        if head != last {
            let problem = if head.seq == checked {
                format!("the log's head row does not hold entry {checked}'s seal")
            } else {
                format!(
                    "the log ends at entry {checked} but its head records entry {}: entries were cut off the end",
                    head.seq
                )
            };
            return self.broken(checked + 1, problem);
        }
        let standing = match self.unsealed_through {
            0 => Standing::Intact,
            through => Standing::Unsealed { through },
        };
        Examination { checked, last, standing }
    }
}

/// How many entries a walk reads at a time.
const BATCH: u64 = 1000;

/// Walks the whole chain in batches: every link, every seal, the head row and `anchor` (the head
/// file's, if there is one).
pub async fn examine(db: &impl ConnectionTrait, key: &AuditKey, anchor: Option<&Head>) -> Result<Examination, DbErr> {
    // The head row first, then the entries up to it: an entry appended meanwhile (with its head
    // row, in one transaction) lies beyond it and is left for the next look. Read the other way
    // round, an append between the two reads looked like entries cut off the end.
    let head = head_row(db).await?;
    let last = head.as_ref().map_or(0, |head| head.seq);
    match walk_up_to(db, Walk::new(key, anchor), last).await? {
        Ok(walk) => Ok(walk.finish(head)),
        Err(broken) => Ok(broken),
    }
}

/// Steps `walk` over the entries up to entry `last`, a batch at a time: the walk, or what it found
/// broken.
async fn walk_up_to<'a>(
    db: &impl ConnectionTrait,
    mut walk: Walk<'a>,
    last: i64,
) -> Result<Result<Walk<'a>, Examination>, DbErr> {
    while walk.expected_seq <= last {
        let wanted = (last - walk.expected_seq + 1).min(BATCH as i64) as u64;
        let batch = store::audit_log::entries_from(db, walk.expected_seq, wanted).await?;
        let short = (batch.len() as u64) < wanted;
        for row in batch {
            if let Err(broken) = walk.step(row) {
                return Ok(Err(broken));
            }
        }
        if short {
            break;
        }
    }
    Ok(Ok(walk))
}

/// The head row as a [`Head`], if any entry was ever appended.
async fn head_row(db: &impl ConnectionTrait) -> Result<Option<Head>, DbErr> {
    Ok(store::audit_log::head(db).await?.map(|head| Head { seq: head.seq, seal: head.hash }))
}

/// Checks the chain from `anchored` (an entry already checked, sealed with the key) to the head row:
/// the anchored entry must still be there as it was, and every entry after it must chain under the
/// key. The cheap check after each append.
pub async fn examine_after(db: &impl ConnectionTrait, key: &AuditKey, anchored: &Head) -> Result<Examination, DbErr> {
    let head = head_row(db).await?.unwrap_or_default();
    let walk = Walk::after(key, anchored);
    if head.seq < anchored.seq {
        let problem = format!(
            "the log's head records entry {} but the head file records entry {}: entries were cut off the end",
            head.seq, anchored.seq
        );
        return Ok(walk.broken(head.seq + 1, problem));
    }
    if anchored.seq > 0 {
        let found = store::audit_log::entries_from(db, anchored.seq, 1).await?;
        match found.first() {
            Some(row) if row.seq == anchored.seq && row.hash == anchored.seal => {}
            Some(row) if row.seq == anchored.seq => {
                let problem = format!(
                    "entry {} is not the entry the head file anchored (its seal differs): the log was rewritten after it was written",
                    anchored.seq
                );
                return Ok(walk.broken(anchored.seq, problem));
            }
            _ => return Ok(walk.broken(anchored.seq, format!("entry {} is missing", anchored.seq))),
        }
    }
    let last = head.seq;
    match walk_up_to(db, walk, last).await? {
        Ok(walk) => Ok(walk.finish(Some(head))),
        Err(broken) => Ok(broken),
    }
}

/// Walks the whole chain against the head file's anchor, for `VerifyAuditLog`. A head file that
/// cannot be read is a problem of its own, named without its path (the server's log has it).
pub async fn verify(db: &impl ConnectionTrait, key: &AuditKey, file: &HeadFile) -> Result<Verification, DbErr> {
    let anchor = match file.read() {
        Ok(anchor) => anchor,
        Err(error) => {
            tracing::error!(file = %file.path().display(), %error, "cannot read the audit chain's head file");
            let problem = "the audit chain's head file cannot be read, so entries cut off the end would go unseen; the server's log says why".to_owned();
            let checked = examine(db, key, None).await?.checked;
            return Ok(Verification { checked, broken: Some((0, problem)) });
        }
    };
    Ok(examine(db, key, anchor.as_ref()).await?.into())
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, DatabaseConnection, EntityTrait};

    use super::*;

    async fn log() -> DatabaseConnection {
        let db = Database::connect("sqlite::memory:").await.expect("SQLite in memory");
        kefu_kit::migrate::run(&db, "archives", &[&store::schema::MIGRATION_AUDIT]).await.expect("migrated");
        db
    }

    fn record(actor: &str) -> Record<'_> {
        Record { actor, action: "read", subject: "caseFiles/20261122-7K3M9Q", detail: "under accessRequests/1".into() }
    }

    fn at(second: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_000_000 + second, 0).expect("a time")
    }

    /// Writes `seqs` as entries sealed with plain SHA-256, chained, and the head row after them.
    async fn write_unsealed(db: &DatabaseConnection, seqs: &[i64]) {
        let mut prev = String::new();
        for &seq in seqs {
            let hash =
                chain_hash(Seal::Legacy, &prev, seq, at(seq), "A1024", "read", "caseFiles/20261122-7K3M9Q", "old");
            entry::Entity::insert(entry::ActiveModel {
                seq: Set(seq),
                time: Set(at(seq)),
                actor: Set("A1024".into()),
                action: Set("read".into()),
                subject: Set("caseFiles/20261122-7K3M9Q".into()),
                detail: Set("old".into()),
                prev_hash: Set(prev.clone()),
                hash: Set(hash.clone()),
            })
            .exec_without_returning(db)
            .await
            .expect("inserted");
            prev = hash;
        }
        let last = seqs.last().copied().unwrap_or(0);
        store::audit_log::set_head(db, last, prev).await.expect("the head");
    }

    fn head_file() -> (tempfile::TempDir, HeadFile) {
        let dir = tempfile::tempdir().expect("a directory");
        let file = HeadFile::at(dir.path().join("audit.head"));
        (dir, file)
    }

    #[tokio::test]
    async fn a_log_sealed_without_the_key_is_reported_and_sealed_only_by_an_operator() {
        let db = log().await;
        write_unsealed(&db, &[1, 2, 3]).await;
        let key = AuditKey::new(&"k".repeat(32));
        let (_dir, file) = head_file();

        // Found and reported, never sealed by looking at it.
        let found = examine(&db, &key, None).await.expect("examined");
        assert_eq!(found.standing, Standing::Unsealed { through: 3 });
        let verification = verify(&db, &key, &file).await.expect("verified");
        assert_eq!(verification.broken.as_ref().map(|(seq, _)| *seq), Some(1));
        assert!(verification.broken.expect("broken").1.contains("kefu audit seal"));
        assert_eq!(examine(&db, &key, None).await.expect("examined").standing, Standing::Unsealed { through: 3 });
        // Archives goes on appending, under the key, after the unsealed entries: still unsealed.
        append(&db, &key, record("Q100"), at(4)).await.expect("appended");
        assert_eq!(examine(&db, &key, None).await.expect("examined").standing, Standing::Unsealed { through: 3 });

        // The operator's seal: every entry sealed anew, the seal recorded, the head anchored.
        let sealed = seal::seal(&db, &key, &file, false, at(10)).await.expect("sealed");
        assert_eq!(sealed.found.standing, Standing::Unsealed { through: 3 });
        assert_eq!((sealed.resealed, sealed.filled.as_slice(), sealed.head.seq), (4, &[][..], 5));
        assert_eq!(file.read().expect("readable"), Some(sealed.head.clone()));
        assert_eq!(verify(&db, &key, &file).await.expect("verified"), Verification { checked: 5, broken: None });
        let last = store::audit_log::entries_from(&db, 5, 1).await.expect("read").remove(0);
        assert_eq!((last.actor.as_str(), last.action.as_str()), (seal::SEALER, "chain_sealed"));
        assert!(last.detail.contains("entries 1–3 were sealed without the audit key"), "{}", last.detail);
        // Sealing an intact chain changes nothing.
        let again = seal::seal(&db, &key, &file, false, at(11)).await.expect("checked");
        assert_eq!((again.found.standing, again.resealed), (Standing::Intact, 0));
        let other = AuditKey::new(&"x".repeat(32));
        assert_eq!(verify(&db, &other, &file).await.expect("verified").broken.map(|(seq, _)| seq), Some(1));
    }

    #[tokio::test]
    async fn a_broken_log_is_sealed_only_when_the_operator_accepts_the_break_which_stays_visible() {
        let db = log().await;
        write_unsealed(&db, &[1, 2, 4]).await;
        let key = AuditKey::new(&"k".repeat(32));
        let (_dir, file) = head_file();
        assert_eq!(
            examine(&db, &key, None).await.expect("examined").standing,
            Standing::Broken {
                seq: 1,
                problem: "entry 3 is missing; and entries 1–2 are sealed without the audit key (plain SHA-256)".into()
            }
        );
        let refused = seal::seal(&db, &key, &file, false, at(10)).await.expect_err("broken");
        assert!(matches!(refused, SealError::Broken { seq: 1, .. }), "{refused:?}");
        assert_eq!(file.read().expect("readable"), None, "nothing anchored");
        assert!(verify(&db, &key, &file).await.expect("verified").broken.is_some(), "nothing sealed");

        let sealed = seal::seal(&db, &key, &file, true, at(10)).await.expect("sealed");
        assert_eq!((sealed.resealed, sealed.filled.as_slice(), sealed.head.seq), (3, &[3][..], 5));
        assert_eq!(verify(&db, &key, &file).await.expect("verified"), Verification { checked: 5, broken: None });
        let missing = store::audit_log::entries_from(&db, 3, 1).await.expect("read").remove(0);
        assert_eq!((missing.actor.as_str(), missing.action.as_str()), (seal::SEALER, "entry_missing"));
    }

    #[tokio::test]
    async fn the_head_file_catches_entries_cut_off_and_a_chain_recomputed_with_the_key() {
        let db = log().await;
        let key = AuditKey::new(&"k".repeat(32));
        let (_dir, file) = head_file();
        for second in 1..=4 {
            append(&db, &key, record("A1024"), at(second)).await.expect("appended");
        }
        // The anchor follows the chain: at start, then entry by entry.
        let anchored = examine(&db, &key, None).await.expect("examined").last;
        file.write(&anchored).expect("anchored");
        assert_eq!(verify(&db, &key, &file).await.expect("verified"), Verification { checked: 4, broken: None });
        append(&db, &key, record("A1024"), at(5)).await.expect("appended");
        let after = examine_after(&db, &key, &anchored).await.expect("followed");
        assert_eq!((after.standing, after.last.seq), (Standing::Intact, 5));
        file.write(&after.last).expect("anchored");

        // Whoever holds the key drops the last two entries, alters one, and seals the rest anew.
        db.execute_unprepared("DELETE FROM archive_audit WHERE seq > 3").await.expect("cut");
        db.execute_unprepared("UPDATE archive_audit SET actor = 'nobody' WHERE seq = 2").await.expect("altered");
        let mut prev = String::new();
        for row in store::audit_log::every_entry(&db).await.expect("the log") {
            let hash = sealed_with(&key, &prev, &row);
            store::audit_log::reseal_entry(&db, row.seq, prev.clone(), hash.clone()).await.expect("resealed");
            prev = hash;
        }
        store::audit_log::set_head(&db, 3, prev.clone()).await.expect("the head moved back");
        assert_eq!(examine(&db, &key, None).await.expect("examined").standing, Standing::Intact, "without the anchor");

        let found = verify(&db, &key, &file).await.expect("verified");
        assert_eq!(found.broken.as_ref().map(|(seq, _)| *seq), Some(4), "{found:?}");
        assert!(found.broken.expect("broken").1.contains("head file records entry 5"));
        let followed = examine_after(&db, &key, &after.last).await.expect("followed");
        assert!(matches!(followed.standing, Standing::Broken { .. }), "{followed:?}");

        // Recomputed without cutting: as many entries, but not the anchored one.
        for second in 4..=5 {
            append(&db, &key, record("A1024"), at(second)).await.expect("appended");
        }
        let found = examine(&db, &key, file.read().expect("readable").as_ref()).await.expect("examined");
        match found.standing {
            Standing::Broken { seq: 5, problem } => assert!(problem.contains("head file anchored"), "{problem}"),
            other => panic!("{other:?}"),
        }
        let followed = examine_after(&db, &key, &after.last).await.expect("followed");
        assert!(matches!(followed.standing, Standing::Broken { seq: 5, .. }), "{followed:?}");
    }

    #[test]
    fn the_head_file_is_the_owner_s_alone_and_says_what_it_holds() {
        let (_dir, file) = head_file();
        assert_eq!(file.read(), Ok(None));
        let head = Head { seq: 7, seal: "ab".repeat(32) };
        file.write(&head).expect("written");
        assert_eq!(file.read(), Ok(Some(head)));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(file.path()).expect("metadata").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(file.path(), "seq = 7\n").expect("written");
        assert!(file.read().is_err(), "no seal");
    }

    /// Three entries sealed under `key`, chained as [`append`] chains them.
    fn chained(key: &AuditKey) -> Vec<entry::Model> {
        let mut prev_hash = String::new();
        let mut rows = Vec::new();
        for seq in 1..=3 {
            let hash = chain_hash(Seal::Keyed(key), &prev_hash, seq, at(seq), "A1024", "read", "caseFiles/1", "d");
            rows.push(entry::Model {
                seq,
                time: at(seq),
                actor: "A1024".into(),
                action: "read".into(),
                subject: "caseFiles/1".into(),
                detail: "d".into(),
                prev_hash: prev_hash.clone(),
                hash: hash.clone(),
            });
            prev_hash = hash;
        }
        rows
    }

    fn walked(key: &AuditKey, rows: Vec<entry::Model>, head: Option<Head>, anchor: Option<&Head>) -> Verification {
        let mut walk = Walk::new(key, anchor);
        for row in rows {
            if let Err(broken) = walk.step(row) {
                return broken.into();
            }
        }
        walk.finish(head).into()
    }

    #[test]
    fn a_walk_names_the_first_altered_missing_or_cut_off_entry() {
        let key = AuditKey::new(&"k".repeat(32));
        let rows = chained(&key);
        let head = Some(Head { seq: 3, seal: rows[2].hash.clone() });
        assert_eq!(walked(&key, rows.clone(), head.clone(), None), Verification { checked: 3, broken: None });

        let mut altered = rows.clone();
        altered[1].actor = "nobody".into();
        let found = walked(&key, altered, head.clone(), None).broken.expect("broken");
        assert_eq!(found.0, 2);
        assert!(found.1.contains("altered"), "{}", found.1);

        let mut removed = rows.clone();
        removed.remove(1);
        let found = walked(&key, removed, head.clone(), None).broken.expect("broken");
        assert_eq!(found, (2, "entry 2 is missing".to_owned()));

        let cut = walked(&key, rows[..2].to_vec(), head.clone(), None);
        assert_eq!((cut.checked, cut.broken.map(|(seq, _)| seq)), (2, Some(3)), "the head remembers entry 3");
        // Cut, and the head row moved back: only the head file remembers.
        let moved_back = Some(Head { seq: 2, seal: rows[1].hash.clone() });
        assert_eq!(walked(&key, rows[..2].to_vec(), moved_back.clone(), None).broken, None);
        let anchor = head.clone().expect("a head");
        let cut = walked(&key, rows[..2].to_vec(), moved_back, Some(&anchor));
        assert_eq!((cut.checked, cut.broken.map(|(seq, _)| seq)), (2, Some(3)), "the head file remembers entry 3");

        let other = AuditKey::new(&"x".repeat(32));
        assert_eq!(walked(&other, rows, None, None).broken.map(|(seq, _)| seq), Some(1), "sealed under another key");
    }
}
