//! Intake (受理, the customer service center): the record of every complaint, its case number and
//! deadline, and the handoff to the department that owns it.
//!
//! - [`domain`]: what a valid complaint is, channels and states, the list filter — no I/O;
//! - [`store`]: the `complaints` table and its queries;
//! - [`api`]: the `kefu.intake.v1.Intake` gRPC handlers (proto ⇄ domain only);
//! - [`events`]: what intake does when an owner reports back (accepted, resolved, escalated, deadline moved);
//! - [`closing`]: closing a resolved complaint, and the case's whole story that goes to archives;
//! - [`writer`]: group commit of registrations;
//! - [`webhooks`]: case events posted to branch-office systems, signed, at least once.
//!
//! Invariant: a complaint and the `case_routed` event that hands it to its owner are committed in
//! one transaction; the complaint is acknowledged to the caller only after that commit. So are a
//! closing and the `case_closed` event that gives archives the case's story.

pub mod api;
pub mod closing;
pub mod deadline;
pub mod domain;
pub mod events;
pub mod grades;
pub mod lifecycle;
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
];

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
    run_service(spec, config, clock, listener, shutdown, |context| {
        let events = events::IntakeEvents { time_zone: context.time_zone };
        let inbox = Inbox::new(context.db.clone(), context.clock.clone(), context.relay.clone(), events);
        let chaser = context.clone();
        let sender = webhooks::sender::Sender::new(context.clone(), config.webhook_timeout, tls.clone(), rules.clone());
        Served::new(
            Routes::new(api::IntakeApi::new(context.clone(), rules.clone()).into_server())
                .add_service(inbox.into_server()),
        )
        .every(CHASE_EVERY, "chasing overdue cases", move || {
            let chaser = chaser.clone();
            async move { lifecycle::chase_overdue(&chaser).await.map(drop) }
        })
        .every(webhooks::sender::POLL_EVERY, "sending webhooks", move || {
            let sender = sender.clone();
            async move { sender.round().await }
        })
    })
    .await
}
