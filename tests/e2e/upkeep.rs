//! Upkeep (`kefu_kit::upkeep`): what grows with traffic is pruned on its schedule and business data
//! is not; on PostgreSQL every table is vacuumed and analyzed, and the relay keeps its outbox free
//! of dead rows — without autovacuum, which this machine's PostgreSQL runs without.

use std::{collections::BTreeSet, sync::Arc};

use chrono::{DateTime, Duration, TimeZone, Utc};
use kefu_intake::webhooks::store::{attempt, delivery};
use kefu_kit::{
    ManualClock,
    clock::SharedClock,
    config::ServiceName,
    inbox,
    upkeep::{PRUNE_BATCH, Upkeep, tend_tables},
};
use kefu_proto::events::v1::Event;
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ConnectionTrait, DbBackend, EntityTrait, QueryOrder, Statement,
};

use crate::support::{Backend, IntakeDatabase, TestSuite, complaint, create, on_both_backends, system_clock};

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 27, 2, 0, 0).single().expect("a time")
}

fn event(id: &str) -> Event {
    Event { id: id.into(), source: "claims".into(), ..Default::default() }
}

fn delivery_at(id: &str, state: &str, created: DateTime<Utc>) -> delivery::ActiveModel {
    delivery::ActiveModel {
        seq: NotSet,
        delivery_id: Set(id.into()),
        webhook_id: Set("w".into()),
        event: Set("registered".into()),
        case_number: Set("20261120-AAAAAA".into()),
        body: Set("{}".into()),
        state: Set(state.into()),
        attempts: Set(1),
        next_attempt_time: Set(created),
        retry_until: Set(created + Duration::days(1)),
        create_time: Set(created),
        deliver_time: Set(None),
    }
}

on_both_backends!(upkeep_prunes_what_grows_with_traffic_after_its_retention_and_nothing_sooner);
async fn upkeep_prunes_what_grows_with_traffic_after_its_retention_and_nothing_sooner(backend: Backend) {
    let clock = Arc::new(ManualClock::new(start()));
    let shared: SharedClock = clock.clone();
    let intake = IntakeDatabase::open(backend, shared.clone()).await;
    let db = &intake.context.db;

    // Event ids received eight days, six days and a moment ago: seven days are kept.
    for (id, age) in [("old", Duration::days(8)), ("six-days", Duration::days(6)), ("new", Duration::zero())] {
        inbox::record(db, &[event(id)], start() - age).await.expect("recorded");
    }
    // More old ids than one pruning statement deletes: the round goes on until none is left.
    let many: Vec<Event> = (0..PRUNE_BATCH + 7).map(|n| event(&format!("old-{n}"))).collect();
    for chunk in many.chunks(1_000) {
        inbox::record(db, chunk, start() - Duration::days(10)).await.expect("recorded");
    }
    // Webhook deliveries: done ones 31 days old go with their attempts; a pending one and a
    // recent one stay.
    let old = start() - Duration::days(31);
    for (id, state, created) in [
        ("done-old", "succeeded", old),
        ("failed-old", "failed", old),
        ("pending-old", "pending", old),
        ("done-recent", "succeeded", start() - Duration::days(29)),
    ] {
        let seq = delivery::Entity::insert(delivery_at(id, state, created))
            .exec(db)
            .await
            .expect("a delivery")
            .last_insert_id;
        let attempt = attempt::ActiveModel {
            seq: NotSet,
            delivery_seq: Set(seq),
            number: Set(1),
            attempt_time: Set(created),
            status_code: Set(200),
            error: Set(String::new()),
            duration_ms: Set(3),
        };
        attempt::Entity::insert(attempt).exec(db).await.expect("an attempt");
    }

    let upkeep = Upkeep::new(db.clone(), shared, kefu_intake::RETENTIONS);
    let pruned = upkeep.prune_all().await.expect("pruned");
    assert_eq!(pruned, [("inbox event ids", PRUNE_BATCH + 8), ("webhook deliveries", 2)]);

    let kept: BTreeSet<String> =
        inbox::Entity::find().all(db).await.expect("the inbox").into_iter().map(|row| row.event_id).collect();
    assert_eq!(kept, BTreeSet::from(["new".to_owned(), "six-days".to_owned()]));
    let deliveries: Vec<String> = delivery::Entity::find()
        .order_by_asc(delivery::Column::Seq)
        .all(db)
        .await
        .expect("the deliveries")
        .into_iter()
        .map(|row| row.delivery_id)
        .collect();
    assert_eq!(deliveries, ["pending-old", "done-recent"]);
    assert_eq!(
        attempt::Entity::find().all(db).await.expect("the attempts").len(),
        2,
        "the pruned deliveries' attempts go too"
    );

    // Just over a day later the six-day-old id is past its week.
    clock.advance(Duration::days(1) + Duration::minutes(1));
    assert_eq!(upkeep.prune_all().await.expect("pruned")[0], ("inbox event ids", 1));

    if backend == Backend::Postgres {
        // Thousands of ids written and pruned: the inbox is vacuumed and analyzed as autovacuum
        // would, and then not again until enough changes. Each pooled connection sends its counts
        // to PostgreSQL's statistics on its own, up to a second or so later; a count that arrives
        // after the vacuum would call for another, so the test waits until every insert and
        // deletion is counted before it tends the tables.
        let inserted = 3 + PRUNE_BATCH as i64 + 7;
        let deleted = PRUNE_BATCH as i64 + 8 + 1;
        let inbox_statistics = |columns: &'static str| async move {
            db.query_one(Statement::from_string(
                DbBackend::Postgres,
                format!("SELECT {columns} FROM pg_stat_user_tables WHERE relname = 'inbox'"),
            ))
            .await
            .expect("the statistics")
            .expect("the inbox's row")
        };
        crate::support::eventually("every insert and deletion counted", || async {
            let row = inbox_statistics("n_tup_ins, n_tup_del").await;
            let count = |column| row.try_get::<i64>("", column).expect("a count");
            (count("n_tup_ins") >= inserted && count("n_tup_del") >= deleted).then_some(())
        })
        .await;
        let (vacuumed, analyzed) = tend_tables(db).await.expect("tended");
        assert!(vacuumed.contains(&"\"inbox\"".to_owned()), "vacuumed {vacuumed:?}");
        assert!(analyzed.contains(&"\"inbox\"".to_owned()), "analyzed {analyzed:?}");
        let row = inbox_statistics("last_vacuum IS NOT NULL AS vacuumed, last_analyze IS NOT NULL AS analyzed").await;
        assert!(row.try_get::<bool>("", "vacuumed").expect("a flag"));
        assert!(row.try_get::<bool>("", "analyzed").expect("a flag"));
        // Then nothing needs it until enough changes again.
        let (vacuumed, analyzed) = tend_tables(db).await.expect("tended");
        assert!(!vacuumed.contains(&"\"inbox\"".to_owned()), "vacuumed again {vacuumed:?}");
        assert!(!analyzed.contains(&"\"inbox\"".to_owned()), "analyzed again {analyzed:?}");
    }
    intake.close().await;
}

/// Every complaint leaves two dead versions of an outbox row behind (its lease, its deletion). The
/// outbox is vacuumed as it goes (by the relay after every thousand deletions, and by upkeep), so
/// claims do not slow down as traffic goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_vacuums_its_outbox_as_it_delivers_on_postgresql() {
    let suite = TestSuite::start(Backend::Postgres, system_clock()).await;
    let vacuums = || async {
        let db = kefu_kit::db::connect(&suite.config, "intake").await.expect("intake's database");
        let row = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT pg_stat_get_vacuum_count('outbox'::regclass) AS vacuum_count",
            ))
            .await
            .expect("the statistics")
            .expect("the outbox");
        let _ = db.close().await;
        row.try_get::<i64>("", "vacuum_count").expect("a count")
    };
    // One complaint first: intake is up and its tables are there.
    suite.complaints().create_complaint(create("vacuum-first", complaint("attitude", "YDV"))).await.expect("created");
    let at_start = vacuums().await;
    // 1,100 complaints: intake's relay deletes 1,100 outbox rows as their owners take them.
    let calls = (0..64).map(|caller| {
        let mut client = suite.complaints();
        tokio::spawn(async move {
            for n in 0..(1_100 / 64 + 1) {
                let request =
                    create(&format!("vacuum-{caller}-{n}"), complaint("attitude", &format!("YDV{caller}-{n}")));
                client.create_complaint(request).await.expect("created");
            }
        })
    });
    for call in calls {
        call.await.expect("joined");
    }
    crate::support::delivered_everything(&suite.config, "intake").await;
    let after = crate::support::eventually("the outbox vacuumed", || async {
        let now = vacuums().await;
        (now > at_start).then_some(now)
    })
    .await;
    assert!(after > at_start);
    suite.stop().await;
}

/// The outbox is a queue, and on PostgreSQL it is kept as one: its indexes are what the relay reads
/// and no more (the rows by their sequence and by when they are due; an index on the event's id
/// served nothing and made every vacuum a third longer — a second delivery of an event is the
/// receiver's inbox's to refuse), and a vacuum keeps the empty pages at its end, so it never waits
/// for the table's exclusive lock while registrations insert there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgresql_each_outbox_is_kept_as_a_queue() {
    let suite = TestSuite::start(Backend::Postgres, system_clock()).await;
    for service in ServiceName::ALL {
        let db = kefu_kit::db::connect(&suite.config, service.as_str()).await.expect("the service's database");
        // The gateway serves before every service has migrated its tables: wait for the outbox.
        let indexes = crate::support::eventually("the service's outbox", || async {
            let indexes: BTreeSet<String> = db
                .query_all(Statement::from_string(
                    DbBackend::Postgres,
                    "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'outbox'",
                ))
                .await
                .expect("the outbox's indexes")
                .iter()
                .map(|row| row.try_get::<String>("", "indexname").expect("a name"))
                .collect();
            (!indexes.is_empty()).then_some(indexes)
        })
        .await;
        let options = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT coalesce(array_to_string(reloptions, ','), '') AS options FROM pg_class \
                 WHERE oid = 'outbox'::regclass",
            ))
            .await
            .expect("the outbox's options")
            .expect("the outbox")
            .try_get::<String>("", "options")
            .expect("its options as text");
        let _ = db.close().await;
        assert_eq!(indexes, BTreeSet::from(["outbox_due".to_owned(), "outbox_pkey".to_owned()]), "{service}");
        assert_eq!(options, "vacuum_truncate=false", "{service}");
    }
    suite.stop().await;
}

/// Upkeep analyzes with a sample of 3,000 rows (statistics target 10), not PostgreSQL's default
/// 30,000: the look-ups go by keys through indexes, and the default's sample costs seconds of
/// random reads on large tables. A column of 2,000 distinct values gets a histogram of 11 bounds
/// (the default's would have 101).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upkeep_analyzes_with_a_sample_of_three_thousand_rows() {
    let intake = IntakeDatabase::open(Backend::Postgres, system_clock()).await;
    let db = &intake.context.db;
    let ids: Vec<Event> = (0..2_000).map(|n| event(&format!("sampled-{n:05}"))).collect();
    for chunk in ids.chunks(1_000) {
        inbox::record(db, chunk, start()).await.expect("recorded");
    }
    let bounds = || async {
        let row = db
            .query_one(Statement::from_string(
                DbBackend::Postgres,
                "SELECT array_length(histogram_bounds::text::text[], 1) AS bounds FROM pg_stats \
                 WHERE schemaname = current_schema() AND tablename = 'inbox' AND attname = 'event_id'",
            ))
            .await
            .expect("the statistics");
        row.map(|row| row.try_get::<Option<i32>>("", "bounds").expect("a count"))
    };
    crate::support::eventually("the inbox analyzed", || async {
        let (_, analyzed) = tend_tables(db).await.expect("tended");
        (analyzed.contains(&"\"inbox\"".to_owned()) || bounds().await.is_some()).then_some(())
    })
    .await;
    assert_eq!(bounds().await, Some(Some(11)), "2,000 distinct ids, statistics target 10");
    intake.close().await;
}
