//! Intake's writers (`kefu_intake::writer`) on a unique key taken: in a batch, a case number drawn
//! before is drawn again and a request id used before is answered as such, and the rest of the
//! batch is written — on both backends.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_intake::{
    deadline::Rule,
    domain::{Channel, ComplaintFields, Kind, NewComplaint, Severity},
    keeper::ComplaintKeeper,
    registration::Registration,
    store,
    writer::{New, Writers, Written},
};
use kefu_kit::{ManualClock, caller::Caller, clock::SharedClock, config::ServiceName, trace::TraceContext};

use crate::support::{Backend, IntakeDatabase};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 28, 2, 0, 0).single().expect("a time")
}

/// A complaint about `waybill`, to be registered as `case_number` with `request_id`.
fn new(waybill: &str, case_number: &str, request_id: &str) -> New {
    let fields = ComplaintFields {
        category: "late_delivery",
        waybill_number: waybill,
        channel: Some(Channel::Phone),
        description: "three days late",
        contact_phone: "13800000000",
        ..ComplaintFields::default()
    };
    New {
        registration: Registration {
            complaint: NewComplaint::parse(fields).expect("a valid complaint"),
            kind: Kind::Complaint,
            severity: Severity::General,
            change: None,
            owner: ServiceName::Inspection,
            responsible_unit: "branch".into(),
            rule: Rule::for_category("late_delivery", Duration::hours(48)),
            cause: String::new(),
        },
        case_number: case_number.into(),
        request_id: Some(request_id.into()),
        caller: Caller { user: "A001".into(), department: "intake".into(), ..Caller::default() },
        trace: TraceContext::default(),
        now: now(),
    }
}

// On one thread, so that the five calls below are queued before the writer looks: one batch.
mod a_batch_that_meets_a_taken_key_is_written_with_the_key_cleared {
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::a_batch_that_meets_a_taken_key_is_written_with_the_key_cleared(crate::support::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::a_batch_that_meets_a_taken_key_is_written_with_the_key_cleared(crate::support::Backend::Postgres).await
    }
}

async fn a_batch_that_meets_a_taken_key_is_written_with_the_key_cleared(backend: Backend) {
    let clock: SharedClock = Arc::new(ManualClock::new(now()));
    let intake = IntakeDatabase::open(backend, clock).await;
    let keeper = ComplaintKeeper { time_zone: intake.context.time_zone, webhooks: Default::default() };
    let writers = Writers::start(intake.context.db.clone(), 1, keeper, intake.context.relay.clone());
    let first = writers.write(new("YB1", "20261128-AAAAAA", "rq-1")).await.expect("written");
    assert!(matches!(first, Written::Committed(_)), "{first:?}");

    // Queued from one task before the writer runs again, so they make one batch: a case number
    // drawn before, a request id used before, the same case number twice, and one without conflict.
    let (taken_number, used_request, twice_a, twice_b, clear) = tokio::join!(
        writers.write(new("YB2", "20261128-AAAAAA", "rq-2")),
        writers.write(new("YB3", "20261128-CCCCCC", "rq-1")),
        writers.write(new("YB4", "20261128-DDDDDD", "rq-4")),
        writers.write(new("YB5", "20261128-DDDDDD", "rq-5")),
        writers.write(new("YB6", "20261128-EEEEEE", "rq-6")),
    );
    let committed = |written: Result<Written, _>| match written.expect("no failure") {
        Written::Committed(complaint) => *complaint,
        Written::Conflict => panic!("expected the complaint written"),
    };
    let taken_number = committed(taken_number);
    assert_ne!(taken_number.case_number, "20261128-AAAAAA", "a number drawn before is drawn again");
    assert!(kefu_kit::case_number::is_well_formed(&taken_number.case_number), "{}", taken_number.case_number);
    assert!(matches!(used_request, Ok(Written::Conflict)), "its caller finds rq-1's complaint: {used_request:?}");
    let (twice_a, twice_b) = (committed(twice_a), committed(twice_b));
    assert_ne!(twice_a.case_number, twice_b.case_number, "one number is not given twice");
    assert_eq!(committed(clear).case_number, "20261128-EEEEEE", "what did not conflict keeps its number");

    // What is stored: one complaint per waybill, rq-1's the first one.
    let db = &intake.context.db;
    for (waybill, request_id) in [("YB1", "rq-1"), ("YB2", "rq-2"), ("YB4", "rq-4"), ("YB5", "rq-5"), ("YB6", "rq-6")] {
        let stored = store::by_request_id(db, request_id).await.expect("read").expect("stored");
        assert_eq!(stored.waybill_number, waybill);
    }
    let about_yb3 = store::about_waybills(db, &["YB3"]).await.expect("read");
    assert!(about_yb3.is_empty(), "the retried request id registered nothing more: {about_yb3:?}");
    drop(writers);
    intake.close().await;
}

// On one thread, so that the two calls below make one batch, and the writer draws from this
// thread's numbers.
mod a_number_drawn_again_is_looked_up_before_the_batch_is_written {
    #[tokio::test(flavor = "current_thread")]
    async fn sqlite() {
        super::a_number_drawn_again_is_looked_up_before_the_batch_is_written(crate::support::Backend::Sqlite).await
    }
    #[tokio::test(flavor = "current_thread")]
    async fn postgres() {
        super::a_number_drawn_again_is_looked_up_before_the_batch_is_written(crate::support::Backend::Postgres).await
    }
}

thread_local! {
    /// The case numbers the writer draws, in turn: the first is taken too, the second is free.
    static DRAWS: std::cell::RefCell<Vec<&'static str>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn draw_in_turn(_: DateTime<Utc>, _: chrono_tz::Tz) -> String {
    DRAWS.with(|draws| {
        let mut draws = draws.borrow_mut();
        assert!(!draws.is_empty(), "the writer drew more numbers than the test has");
        draws.remove(0).to_owned()
    })
}

/// Late in a busy day a number drawn again is itself taken now and then; it is looked up and drawn
/// once more, and the batch goes in with its first insert — on PostgreSQL no number of the
/// `complaints` sequence is spent on an insert that failed.
async fn a_number_drawn_again_is_looked_up_before_the_batch_is_written(backend: Backend) {
    let clock: SharedClock = Arc::new(ManualClock::new(now()));
    let intake = IntakeDatabase::open(backend, clock).await;
    let keeper = ComplaintKeeper { time_zone: intake.context.time_zone, webhooks: Default::default() };
    let writers =
        Writers::start_drawing(intake.context.db.clone(), 1, keeper, intake.context.relay.clone(), draw_in_turn);
    for (waybill, case_number, request_id) in [("YB1", "20261128-AAAAAA", "rq-1"), ("YB2", "20261128-CCCCCC", "rq-2")] {
        let written = writers.write(new(waybill, case_number, request_id)).await.expect("written");
        assert!(matches!(written, Written::Committed(_)), "{written:?}");
    }

    DRAWS.with(|draws| *draws.borrow_mut() = vec!["20261128-CCCCCC", "20261128-EEEEEE"]);
    let (taken_twice, clear) = tokio::join!(
        writers.write(new("YB3", "20261128-AAAAAA", "rq-3")),
        writers.write(new("YB4", "20261128-DDDDDD", "rq-4")),
    );
    let case_number = |written: Result<Written, _>| match written.expect("no failure") {
        Written::Committed(complaint) => complaint.case_number,
        Written::Conflict => panic!("expected the complaint written"),
    };
    assert_eq!(case_number(taken_twice), "20261128-EEEEEE", "AAAAAA taken, CCCCCC drawn and taken, EEEEEE free");
    assert_eq!(case_number(clear), "20261128-DDDDDD");
    assert!(DRAWS.with(|draws| draws.borrow().is_empty()), "both numbers were drawn");

    let db = &intake.context.db;
    let mut seqs = Vec::new();
    for (waybill, request_id) in [("YB1", "rq-1"), ("YB2", "rq-2"), ("YB3", "rq-3"), ("YB4", "rq-4")] {
        let stored = store::by_request_id(db, request_id).await.expect("read").expect("stored");
        assert_eq!(stored.waybill_number, waybill);
        seqs.push(stored.seq);
    }
    seqs.sort_unstable();
    if backend == Backend::Postgres {
        // A batch insert that met CCCCCC would have spent two numbers of the sequence before
        // rolling back, and the batch written again would have had 5 and 6.
        assert_eq!(seqs, [1, 2, 3, 4], "the batch was written by its first insert");
    }
    drop(writers);
    intake.close().await;
}
