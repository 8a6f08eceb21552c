//! Statements whose SQL is kept per shape (`kefu_kit::statements`): a call through a kept SQL
//! binds its own values and finds what sea-orm's own statement finds, on both backends.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_kit::{ManualClock, clock::SharedClock, history, statements};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, EntityTrait, QueryFilter,
};

use crate::support::{Backend, IntakeDatabase, on_both_backends};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).single().expect("a time")
}

/// `count` steps of the cases `{prefix}-0`, `{prefix}-1`, …, each by the actor `actor {prefix}`.
fn steps(prefix: &str, count: i64) -> Vec<history::ActiveModel> {
    (0..count)
        .map(|index| history::ActiveModel {
            seq: NotSet,
            case_number: Set(format!("{prefix}-{index}")),
            request_id: Set(None),
            action: Set("registered".into()),
            actor: Set(format!("actor {prefix}")),
            detail: Set(String::new()),
            time: Set(start() + Duration::seconds(index)),
        })
        .collect()
}

on_both_backends!(a_kept_statement_binds_each_call_s_own_values);
async fn a_kept_statement_binds_each_call_s_own_values(backend: Backend) {
    let clock: SharedClock = Arc::new(ManualClock::new(start()));
    let intake = IntakeDatabase::open(backend, clock).await;
    let db = &intake.context.db;

    // The same shape twice (the second through the first's SQL), another size, and rows that do
    // not set the same columns (built by sea-orm each time).
    assert_eq!(statements::insert_many(db, steps("A", 3)).await.expect("inserted"), 3);
    assert_eq!(statements::insert_many(db, steps("B", 3)).await.expect("inserted"), 3);
    assert_eq!(statements::insert_many(db, steps("C", 5)).await.expect("inserted"), 5);
    let mut mixed = steps("D", 2);
    mixed[1].request_id = NotSet;
    assert_eq!(statements::insert_many(db, mixed).await.expect("inserted"), 2);

    // Two look-ups of one shape, then of another: each finds its own rows, as sea-orm does.
    for keys in [vec!["A-0", "B-2", "C-4"], vec!["B-0", "D-1", "A-2"], vec!["C-1", "nobody"]] {
        let mut kept = statements::find_in::<history::Entity, _>(db, history::Column::CaseNumber, keys.clone())
            .await
            .expect("found");
        let mut own = history::Entity::find()
            .filter(history::Column::CaseNumber.is_in(keys.clone()))
            .all(db)
            .await
            .expect("found");
        kept.sort_by_key(|step| step.seq);
        own.sort_by_key(|step| step.seq);
        assert_eq!(kept, own);
        let mut found: Vec<&str> = kept.iter().map(|step| step.case_number.as_str()).collect();
        found.sort_unstable();
        let mut wanted: Vec<&str> = keys.into_iter().filter(|key| *key != "nobody").collect();
        wanted.sort_unstable();
        assert_eq!(found, wanted);
        for step in &kept {
            let prefix = step.case_number.split('-').next().expect("a prefix");
            assert_eq!(step.actor, format!("actor {prefix}"), "{} has its own row's values", step.case_number);
        }
    }
    intake.close().await;
}
