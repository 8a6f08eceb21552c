//! Settlement (结算部): moves money exactly once — claim payouts, fines, cash-on-delivery
//! remittances, changes and write-offs — in a double-entry ledger in integer fen.
//!
//! The code map:
//!
//! - [`ledger`]: double entry keyed by origin; an approved claim's payout and deduction and an
//!   inspection fine become entries there, once each, with a receipt of every event;
//! - [`waybill`]: a waybill's freight and cash on delivery (代收货款) — collection, remittance,
//!   change requests, seizure (`001 §11`) — every rule in [`waybill::Waybill::apply`], and what the
//!   ledger must hold for it in [`waybill::Waybill::footprint`];
//! - [`reconcile`]: the checks that every event received has exactly one effect and that the
//!   ledger holds what the waybills say;
//! - [`store`]: waybills, receipts, case outcomes; [`api`]: `kefu.settlement.v1.Settlement`, by room;
//!   [`error`]: failures → statuses.
//!
//! Settlement owns the `late_remittance` complaints the routing policy gives it (each a record named
//! `cases/{case_number}`); it also files them itself, through the gateway like any branch system,
//! when a waybill's COD is past its remittance date, and resolves them when the COD is remitted.
//! Why through the gateway and back by the ordinary handoff, and not by a shorter path of its own:
//! ARCHITECTURE.md, "Boundaries" (one place routes complaints; no identity skips the handoff).
//!
//! Invariant: a change to a waybill, its history, its ledger movement and the resolutions it causes
//! are one transaction; the ledger moves each origin once.

pub mod api;
pub mod error;
pub mod ledger;
pub mod reconcile;
pub mod store;
pub mod waybill;

use std::{sync::Arc, time::Duration};

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    history,
    inbox::{EventHandler, Inbox},
    migrate::Migration,
    routed::{self, AcceptRoutedCases},
    server::{Served, ServiceSpec, StartError, internal_key, run_service},
    trust::SignedChannel,
};
use kefu_proto::{
    events::v1::{Event, event::Payload},
    gateway::v1::complaints_client::ComplaintsClient,
    settlement::v1::settlement_server,
};
use sea_orm::DatabaseTransaction;
use tokio::net::TcpListener;
use tonic::{Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Settlement;
pub const SERVICE_NAME: &str = "kefu.settlement.v1.Settlement";
/// Records are named `cases/{case_number}`.
pub const COLLECTION: &str = "cases";
/// The category settlement files late remittances under (转帐不及时, `001 §8 4.8.4`); the routing
/// policy gives it back to settlement.
pub const LATE_REMITTANCE_CATEGORY: &str = "late_remittance";
/// How often settlement looks for late remittances to file.
const CHECK_EVERY: Duration = Duration::from_secs(60);

pub static MIGRATIONS: &[&Migration] = &[
    &routed::MIGRATION,
    &ledger::MIGRATION,
    &routed::MIGRATION_FIRST_COMPLAINT,
    &history::MIGRATION,
    &store::MIGRATION,
    &ledger::MIGRATION_REVERSAL_REQUESTS,
    &store::MIGRATION_PENDING_CHANGES,
];

/// Serves settlement on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let gateway = kefu_kit::server::endpoint(&config.gateway_url)
        .map_err(|error| StartError::Config { service: NAME, message: format!("KEFU_GATEWAY_URL: {error}") })?
        .connect_lazy();
    // Settlement files late remittances at the gateway as itself: `service:settlement`.
    let gateway = SignedChannel::new(gateway, internal_key(config, NAME.as_str())?, NAME.as_str());
    let spec = ServiceSpec {
        name: NAME,
        migrations: MIGRATIONS,
        service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"],
        retentions: &[],
    };
    run_service(spec, config, clock, listener, shutdown, |context| {
        let events = SettlementEvents {
            routed: AcceptRoutedCases { owner: NAME, collection: COLLECTION, clock: context.clock.clone() },
            clock: context.clock.clone(),
            time_zone: context.time_zone,
        };
        let inbox = Inbox::new(context, events);
        let api = Arc::new(api::SettlementApi { context: context.clone(), gateway: ComplaintsClient::new(gateway) });
        let checker = api.clone();
        Served::new(Routes::new(settlement_server::SettlementServer::from_arc(api)).add_service(inbox.into_server()))
            .every(CHECK_EVERY, "checking late remittances", move || {
                let checker = checker.clone();
                async move { checker.report_late().await.map(drop).map_err(Status::from) }
            })
    })
    .await
}

/// What settlement does with the events it receives: routed cases are accepted (and answered at
/// once when their waybill's COD was already remitted), approved claims and inspection's fines are
/// posted to the ledger.
struct SettlementEvents {
    routed: AcceptRoutedCases,
    clock: SharedClock,
    time_zone: chrono_tz::Tz,
}

impl EventHandler for SettlementEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        let (routed, others): (Vec<&Event>, Vec<&Event>) = events
            .iter()
            .partition(|event| matches!(event.payload, Some(Payload::CaseRouted(_) | Payload::CaseNotice(_))));
        let now = self.clock.now();
        if !routed.is_empty() {
            self.routed.apply(tx, &routed).await?;
            let cases: Vec<(String, String)> = routed
                .iter()
                .filter_map(|event| match &event.payload {
                    Some(Payload::CaseRouted(case)) => case.complaint.as_ref().and_then(|complaint| {
                        let case_number =
                            kefu_kit::names::case_number_in(&complaint.complaint, kefu_kit::names::COMPLAINTS)?;
                        Some((case_number.to_owned(), complaint.waybill_number.clone()))
                    }),
                    _ => None,
                })
                .collect();
            api::answer_remitted(tx, &cases, kefu_kit::time::to_micros(now), self.time_zone).await?;
        }
        for event in others {
            match &event.payload {
                Some(Payload::ClaimApproved(approved)) => {
                    ledger::apply(tx, event, &ledger::claim_entries(approved)?, now).await?
                }
                Some(Payload::FineImposed(fine)) => ledger::apply(tx, event, &[ledger::fine_entry(fine)?], now).await?,
                Some(Payload::InsurerRecoveryRecorded(recorded)) => {
                    let entries: Vec<_> = ledger::insurer_entry(recorded, &event.id)?.into_iter().collect();
                    ledger::apply(tx, event, &entries, now).await?
                }
                _ => {
                    return Err(Status::invalid_argument(
                        "settlement accepts case_routed, case_notice, claim_approved, fine_imposed and insurer_recovery_recorded events",
                    ));
                }
            }
        }
        Ok(())
    }
}
