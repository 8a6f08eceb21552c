//! Inspection (监察部): investigates service failures, divides responsibility, fines by the
//! standards, escalates the second complaint, tracks rectification, and reports the month.
//!
//! A complaint routed here opens a case named `cases/{case_number}`; inspection's own spot checks
//! are cases too. The code map:
//!
//! - [`case`]: the life of a case — written report, findings, responsibility, decision,
//!   rectification, incident — each rule of the handbook in [`case::Case::apply`];
//! - [`policy`]: the penalty standards table and inspection's times, replaceable by
//!   `KEFU_INSPECTION_POLICY`;
//! - [`events`]: the routed complaint in, and out the escalation, the moved deadline and the
//!   resolution to intake and each fine to settlement;
//! - [`report`]: the monthly reward/penalty detail report (监察奖罚明细报表);
//! - [`store`]: the tables; [`api`]: `kefu.inspection.v1.Inspection`; [`error`]: failures → statuses.
//!
//! Invariant: a change to a case, its history, and the events it causes are one transaction; a
//! fine reaches settlement exactly once (its penalty's name is the ledger entry's origin).

pub mod api;
pub mod case;
pub mod error;
pub mod events;
pub mod policy;
pub mod report;
pub mod store;

use std::{sync::Arc, time::Duration};

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    history,
    inbox::Inbox,
    migrate::Migration,
    routed::{self, AcceptRoutedCases},
    server::{Served, ServiceSpec, StartError, run_service},
};
use kefu_proto::inspection::v1::inspection_server;
use tokio::net::TcpListener;
use tonic::service::Routes;

pub use policy::InspectionPolicy;

pub const NAME: ServiceName = ServiceName::Inspection;
pub const SERVICE_NAME: &str = "kefu.inspection.v1.Inspection";
/// Records are named `cases/{case_number}`.
pub const COLLECTION: &str = "cases";
/// How often inspection looks for overdue cases to chase.
const CHASE_EVERY: Duration = Duration::from_secs(60);

pub static MIGRATIONS: &[&Migration] =
    &[&routed::MIGRATION, &routed::MIGRATION_FIRST_COMPLAINT, &history::MIGRATION, &store::MIGRATION];

/// Serves inspection on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let policy = InspectionPolicy::load(config.inspection_policy.as_deref())
        .map_err(|error| StartError::Config { service: NAME, message: error.to_string() })?;
    let policy = Arc::new(policy);
    let spec = ServiceSpec {
        name: NAME,
        migrations: MIGRATIONS,
        service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"],
        retentions: &[],
    };
    run_service(spec, config, clock, listener, shutdown, |context| {
        let events = events::InspectionEvents {
            routed: AcceptRoutedCases { owner: NAME, collection: COLLECTION, clock: context.clock.clone() },
            clock: context.clock.clone(),
            policy: policy.clone(),
        };
        let inbox = Inbox::new(context, events);
        let api = Arc::new(api::InspectionApi { context: context.clone(), policy });
        let chaser = api.clone();
        Served::new(Routes::new(inspection_server::InspectionServer::from_arc(api)).add_service(inbox.into_server()))
            .every(CHASE_EVERY, "chasing overdue cases", move || {
                let chaser = chaser.clone();
                async move { chaser.chase_overdue().await.map(drop).map_err(tonic::Status::from) }
            })
    })
    .await
}
