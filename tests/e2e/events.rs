//! The event inbox, spoken to directly as a relay does: a batch is applied at most once per event,
//! and one bad event does not hold back the others.

use kefu_kit::{config::ServiceName, time::to_timestamp};
use kefu_proto::{
    events::v1::{CaseRouted, DeliverRequest, Event, event::Payload, event_inbox_client::EventInboxClient},
    inspection::v1::{ListCasesRequest, inspection_client::InspectionClient},
    types::v1::RoutedComplaint,
};

use crate::support::{Backend, TestSuite, on_both_backends, system_clock};

fn routed(id: &str, case_number: Option<&str>) -> Event {
    let now = to_timestamp(chrono::Utc::now());
    Event {
        id: id.into(),
        source: "intake".into(),
        create_time: Some(now),
        payload: Some(Payload::CaseRouted(CaseRouted {
            complaint: case_number.map(|number| RoutedComplaint {
                complaint: format!("complaints/{number}"),
                category: "attitude".into(),
                waybill_number: "YD1".into(),
                create_time: Some(now),
                deadline: Some(now),
                ..Default::default()
            }),
        })),
        ..Default::default()
    }
}

on_both_backends!(a_batch_applies_each_event_once_and_isolates_a_bad_one);
async fn a_batch_applies_each_event_once_and_isolates_a_bad_one(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let url = suite.config.endpoint(ServiceName::Inspection).url.clone();
    let mut inbox = EventInboxClient::new(tonic::transport::Channel::from_shared(url).expect("a URL").connect_lazy());

    let batch = vec![
        routed("e-1", Some("20261122-AAAAAA")),
        routed("e-2", None), // no complaint: refused
        routed("e-3", Some("20261122-CCCCCC")),
    ];
    let outcomes =
        inbox.deliver(DeliverRequest { events: batch.clone() }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(&str, bool, bool)> =
        outcomes.iter().map(|o| (o.event_id.as_str(), o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [("e-1", true, true), ("e-2", false, false), ("e-3", true, true)]);
    assert!(outcomes[1].error.contains("complaint"), "{}", outcomes[1].error);

    // The same batch again: nothing is applied twice, and the bad event is still refused.
    let again = inbox.deliver(DeliverRequest { events: batch }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(bool, bool)> = again.iter().map(|o| (o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [(false, true), (false, false), (false, true)]);

    // One event twice in one batch: applied once.
    let twice = vec![routed("e-4", Some("20261122-DDDDDD")), routed("e-4", Some("20261122-DDDDDD"))];
    let outcomes = inbox.deliver(DeliverRequest { events: twice }).await.expect("delivered").into_inner().outcomes;
    let summary: Vec<(bool, bool)> = outcomes.iter().map(|o| (o.applied, o.error.is_empty())).collect();
    assert_eq!(summary, [(true, true), (false, true)]);

    let cases =
        InspectionClient::new(suite.gateway.clone()).list_cases(ListCasesRequest::default()).await.expect("listed");
    let mut names: Vec<String> = cases.into_inner().cases.into_iter().map(|case| case.name).collect();
    names.sort();
    assert_eq!(names, ["cases/20261122-AAAAAA", "cases/20261122-CCCCCC", "cases/20261122-DDDDDD"]);
    suite.stop().await;
}
