//! Intake (受理, the customer service center): the record of every complaint, its case number and
//! deadline, and the handoff to the department that owns it.
//!
//! - [`domain`]: what a valid complaint is; channels, states, kinds, severities; the list filter — no I/O;
//! - [`complaint`]: the aggregate, [`complaint::Complaint::apply`], every transition's rule — no I/O;
//! - [`registration`]: a new case's rules, its duplicate or second complaint — no I/O;
//! - [`deadline`]: deadlines that keep time, and their explanation — no I/O;
//! - [`requests`]: change requests (更改): what may change, and who handles it — no I/O;
//! - [`replies`], [`visits`], [`grades`]: replies and their phrases, follow-up visits, customers'
//!   grades — their tables and rules;
//! - [`store`]: the `complaints` table and its queries;
//! - [`keeper`]: the complaint on the kit's write path: read, save, effects written beside it;
//! - [`writer`]: group commit of registrations, through the keeper;
//! - [`api`]: the `kefu.intake.v1.Intake` gRPC handlers, one file per room;
//! - [`convert`]: proto ⇄ domain;
//! - [`error`]: every way a request fails, and the one mapping to a gRPC status;
//! - [`events`]: what intake does when an owner reports back (accepted, resolved, escalated, deadline moved);
//! - [`closing`]: the case's whole story, for its timeline and for archives;
//! - [`reports`]: the weekly and monthly summaries;
//! - [`webhooks`]: case events posted to branch-office systems, signed, at least once.
//!
//! Invariant: a complaint and the `case_routed` event that hands it to its owner are committed in
//! one transaction; the complaint is acknowledged to the caller only after that commit. So are a
//! closing and the `case_closed` event that gives archives the case's story.

pub mod api;
pub mod closing;
pub mod complaint;
pub mod convert;
pub mod deadline;
pub mod domain;
pub mod error;
pub mod events;
pub mod grades;
pub mod keeper;
pub mod registration;
pub mod replies;
pub mod reports;
pub mod requests;
pub mod store;
pub mod visits;
pub mod webhooks;
pub mod writer;

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    history,
    inbox::Inbox,
    migrate::Migration,
    server::{Served, ServiceSpec, StartError, run_service},
};
use tokio::net::TcpListener;
use tonic::service::Routes;

pub const NAME: ServiceName = ServiceName::Intake;

pub static MIGRATIONS: &[&Migration] = &[
    &store::MIGRATION,
    &store::MIGRATION_RESOLUTION,
    &store::MIGRATION_INCIDENT,
    &store::MIGRATION_CLOSE,
    &history::MIGRATION,
    &store::MIGRATION_DEPTH,
    &replies::MIGRATION,
    &grades::MIGRATION,
    &visits::MIGRATION,
    &webhooks::MIGRATION,
    &store::MIGRATION_SAME_EVENT,
    &webhooks::store::MIGRATION_PRUNING,
    &store::MIGRATION_FILLFACTOR,
    &store::MIGRATION_PHONE_INDEX,
];

/// What intake prunes besides its inbox ([`kefu_kit::upkeep`]).
pub static RETENTIONS: &[&kefu_kit::upkeep::Retention] = &[&webhooks::store::RETENTION];

/// How often intake looks for overdue cases to chase.
const CHASE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves intake on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec = ServiceSpec {
        name: NAME,
        migrations: MIGRATIONS,
        service_names: &[api::SERVICE_NAME, "kefu.events.v1.EventInbox"],
        retentions: RETENTIONS,
    };
    let tls = webhooks::sender::tls_config(config.webhook_ca_file.as_deref())
        .map_err(|message| StartError::Config { service: NAME, message })?;
    let allowed = webhooks::address::Allowed::parse(&config.webhook_allow_private).map_err(|problem| {
        StartError::Config { service: NAME, message: format!("KEFU_WEBHOOK_ALLOW_PRIVATE: {problem}") }
    })?;
    let webhook_key = kefu_kit::keys::load(
        config,
        config.webhook_key.as_ref(),
        "webhook.key",
        "KEFU_WEBHOOK_KEY",
        "kefu-webhook-key",
    )
    .and_then(|key| webhooks::sealed::SecretBox::new(&key))
    .map_err(|message| StartError::Config { service: NAME, message })?;
    let rules = webhooks::Rules {
        allowed: std::sync::Arc::new(allowed),
        max_per_branch: config.webhook_max_per_branch,
        secrets: webhook_key,
    };
    let metrics = config.metrics_addr.is_some();
    run_service(spec, config, clock, listener, shutdown, |context| {
        let wake = webhooks::Wake::default();
        let keeper = keeper::ComplaintKeeper { time_zone: context.time_zone, webhooks: wake.clone() };
        let events = events::IntakeEvents { keeper: keeper.clone(), clock: context.clock.clone() };
        let inbox = Inbox::new(context, events);
        let chaser = context.clone();
        let sender = webhooks::sender::Sender::new(
            context.clone(),
            config.webhook_timeout,
            tls.clone(),
            rules.clone(),
            wake.clone(),
        );
        let counter = context.clone();
        let served = Served::new(
            Routes::new(api::IntakeApi::new(context.clone(), rules.clone(), wake).into_server())
                .add_service(inbox.into_server()),
        )
        .every(CHASE_EVERY, "chasing overdue cases", move || {
            let (chaser, keeper) = (chaser.clone(), keeper.clone());
            async move { keeper.chase_overdue(&chaser).await.map(drop).map_err(tonic::Status::from) }
        })
        .until_shutdown(move |shutdown| sender.run(shutdown));
        if !metrics {
            return served;
        }
        served.every(kefu_kit::metrics::SAMPLE_EVERY, "counting overdue cases", move || {
            let counter = counter.clone();
            async move {
                let counts = store::overdue_by_owner(&counter.db, counter.clock.now())
                    .await
                    .map_err(|error| kefu_kit::error::from_db("counting overdue cases", error))?;
                kefu_kit::metrics::overdue_sampled(&counts);
                Ok(())
            }
        })
    })
    .await
}
