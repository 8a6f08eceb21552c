//! Upkeep: every service keeps the tables that grow with traffic, not with business data, small by
//! itself, on a fixed schedule. It does not count on PostgreSQL's autovacuum for its hot path: a
//! database may run without it (this project's machine does), and a queue table whose dead rows
//! pile up makes every claim slower.
//!
//! The schedule (ARCHITECTURE.md, "Upkeep", says the same for operators):
//!
//! - **The outbox** loses a row as soon as its receiver has it ([`crate::relay`]). On PostgreSQL the
//!   relay also vacuums it after every [`crate::relay::VACUUM_AFTER`] deletions, so its claims never
//!   walk over thousands of dead rows.
//! - **Every minute** ([`PRUNE_EVERY`]), rows past their retention are deleted, [`PRUNE_BATCH`] at a
//!   time: the inbox's event ids after [`INBOX`]'s seven days (a sender redelivers within a minute; a
//!   week covers a sender restored from a backup), and what each service adds (intake: webhook
//!   deliveries that are done, with their attempts, after 30 days).
//! - **Every 10 seconds** ([`EVERY`]), on PostgreSQL, the service does for its own schema what
//!   autovacuum would: a table with more dead rows than 50 + 20% of its live ones is vacuumed
//!   (autovacuum's default); one with more changes since it was last analyzed than 50 + 50% of its
//!   rows is analyzed. Statistics matter as much as dead rows: a statement prepared while the
//!   statistics said "empty" keeps a plan that scans the whole table (seen here: the look-up of a
//!   customer's earlier complaints read every complaint, at half a millisecond and growing). Half,
//!   not autovacuum's tenth: the planner scales what statistics say to a table's current size, so
//!   growth alone needs no new statistics. And a sample of [`ANALYZE_SAMPLE_TARGET`] (3,000 rows),
//!   not PostgreSQL's default 100 (30,000 rows read from up to 30,000 random pages): kefu's look-ups
//!   go by keys, waybills and deadlines through indexes, and what the planner needs to choose them —
//!   how many rows, how distinct a column is — a tenth of the sample tells. The default's sample
//!   cost two seconds for intake's tables at 350,000 complaints, pushing hot pages out of the
//!   cache, and while a table grows from nothing its analyses took 15% of PostgreSQL's statement time
//!   (docs/benchmarks.md, "Issue 20, twelfth round"). SQLite reuses a deleted row's space by itself
//!   and plans without such statistics.
//!
//! Business data — complaints, cases, claims, the ledger, histories, archives — is never pruned here.

use std::{sync::Mutex, time::Instant};

use chrono::{DateTime, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait,
    sea_query::{Expr, Query},
};

use crate::{clock::SharedClock, inbox};

/// How often a service looks at its tables' statistics (PostgreSQL) and whether pruning is due.
pub const EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// The statistics target upkeep's analyses use (PostgreSQL samples 300 rows per unit: 3,000 rows),
/// for its own transaction only; see the module's doc for why not the default's 100.
pub const ANALYZE_SAMPLE_TARGET: u32 = 10;
/// How often a service prunes.
pub const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
/// Rows one pruning statement deletes at most; a round repeats it until less is left.
pub const PRUNE_BATCH: u64 = 5_000;
/// Statements one retention runs in a round at most, so a large first prune is spread over rounds.
const BATCHES_PER_ROUND: usize = 20;

/// How long rows of one kind are kept, and how to delete those older.
pub struct Retention {
    /// What is pruned, for the log: "inbox event ids".
    pub what: &'static str,
    pub keep: chrono::Duration,
    /// Statements deleting at most `limit` rows older than `cutoff`, run in order in one
    /// transaction (first what depends on the rows, then the rows). The last one's count is what
    /// was pruned.
    pub statements: fn(DbBackend, DateTime<Utc>, u64) -> Vec<Statement>,
}

/// The inbox keeps an event's id seven days after it arrived.
pub static INBOX: Retention = Retention {
    what: "inbox event ids",
    keep: chrono::Duration::days(7),
    statements: |backend, cutoff, limit| {
        let old = Query::select()
            .column(inbox::Column::EventId)
            .from(inbox::Entity)
            .and_where(Expr::col(inbox::Column::ReceiveTime).lt(cutoff))
            .limit(limit)
            .to_owned();
        let delete = Query::delete()
            .from_table(inbox::Entity)
            .and_where(Expr::col(inbox::Column::EventId).in_subquery(old))
            .to_owned();
        vec![backend.build(&delete)]
    },
};

/// One service's upkeep.
pub struct Upkeep {
    db: DatabaseConnection,
    clock: SharedClock,
    retentions: Vec<&'static Retention>,
    last_prune: Mutex<Option<Instant>>,
}

impl Upkeep {
    /// The inbox's retention and the service's own.
    pub fn new(db: DatabaseConnection, clock: SharedClock, own: &[&'static Retention]) -> Upkeep {
        let mut retentions = vec![&INBOX];
        retentions.extend_from_slice(own);
        Upkeep { db, clock, retentions, last_prune: Mutex::new(None) }
    }

    /// One round: prunes when it is due, then vacuums and analyzes what needs it.
    pub async fn round(&self) -> Result<(), DbErr> {
        if self.prune_due() {
            self.prune_all().await?;
        }
        if self.db.get_database_backend() == DbBackend::Postgres {
            tend_tables(&self.db).await?;
        }
        Ok(())
    }

    /// Deletes what is past its retention now; how many rows each retention pruned.
    pub async fn prune_all(&self) -> Result<Vec<(&'static str, u64)>, DbErr> {
        let now = self.clock.now();
        let mut pruned = Vec::with_capacity(self.retentions.len());
        for retention in &self.retentions {
            let count = self.prune(retention, now - retention.keep).await?;
            if count > 0 {
                tracing::info!(what = retention.what, count, "pruned");
            }
            pruned.push((retention.what, count));
        }
        Ok(pruned)
    }

    fn prune_due(&self) -> bool {
        let mut last = self.last_prune.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_some_and(|last| last.elapsed() < PRUNE_EVERY) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    async fn prune(&self, retention: &Retention, cutoff: DateTime<Utc>) -> Result<u64, DbErr> {
        let backend = self.db.get_database_backend();
        let mut total = 0;
        for _ in 0..BATCHES_PER_ROUND {
            let tx = self.db.begin().await?;
            let mut last = 0;
            for statement in (retention.statements)(backend, cutoff, PRUNE_BATCH) {
                last = tx.execute(statement).await?.rows_affected();
            }
            tx.commit().await?;
            total += last;
            if last < PRUNE_BATCH {
                break;
            }
        }
        Ok(total)
    }
}

/// Vacuums the tables of the connection's schema with more dead rows than 50 + 20% of their live
/// ones, and analyzes those changed by more than 50 + 50% of their rows since they were last
/// analyzed (PostgreSQL; see the module's doc for why half), with a sample of
/// [`ANALYZE_SAMPLE_TARGET`]. `SKIP_LOCKED`: a table another replica is at is left to it. Returns
/// the tables vacuumed and analyzed.
pub async fn tend_tables(db: &DatabaseConnection) -> Result<(Vec<String>, Vec<String>), DbErr> {
    let rows = db
        .query_all(Statement::from_string(
            DbBackend::Postgres,
            "SELECT relname::text AS name, \
                n_dead_tup > 50 + 0.2 * n_live_tup AS vacuum, \
                n_mod_since_analyze > 50 + 0.5 * n_live_tup AS analyze \
             FROM pg_stat_user_tables WHERE schemaname = current_schema() ORDER BY relname",
        ))
        .await?;
    let (mut vacuum, mut analyze) = (Vec::new(), Vec::new());
    for row in rows {
        let name = quoted(&row.try_get::<String>("", "name")?);
        if row.try_get::<bool>("", "vacuum")? {
            vacuum.push(name.clone());
        }
        if row.try_get::<bool>("", "analyze")? {
            analyze.push(name);
        }
    }
    if !vacuum.is_empty() {
        db.execute_unprepared(&format!("VACUUM (SKIP_LOCKED) {}", vacuum.join(", "))).await?;
    }
    if !analyze.is_empty() {
        // `SET LOCAL` ends with the transaction: the pooled connection goes back as it came.
        let analysis = db.begin().await?;
        analysis.execute_unprepared(&format!("SET LOCAL default_statistics_target = {ANALYZE_SAMPLE_TARGET}")).await?;
        analysis.execute_unprepared(&format!("ANALYZE (SKIP_LOCKED) {}", analyze.join(", "))).await?;
        analysis.commit().await?;
    }
    if !vacuum.is_empty() || !analyze.is_empty() {
        tracing::debug!(?vacuum, ?analyze, "tables tended");
    }
    Ok((vacuum, analyze))
}

/// `VACUUM` of one of the connection's tables (PostgreSQL), skipped if another replica is at it.
pub async fn vacuum(db: &DatabaseConnection, table: &str) -> Result<(), DbErr> {
    db.execute_unprepared(&format!("VACUUM (SKIP_LOCKED) {}", quoted(table))).await?;
    Ok(())
}

/// A table's name as a PostgreSQL identifier.
fn quoted(table: &str) -> String {
    format!("\"{}\"", table.replace('"', "\"\""))
}
