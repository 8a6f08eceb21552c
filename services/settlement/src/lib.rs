//! Settlement (结算部): moves money exactly once: claim payouts, deductions, cash-on-delivery remittances.
//!
//! Settlement accepts the complaints the routing policy gives it — each becomes a record named
//! `cases/{case_number}`, and intake is told so — and keeps the [`ledger`]: an approved claim from
//! claims (`claim_approved`) becomes the customer's payout and the responsible party's deduction,
//! a fine from inspection (`fine_imposed`) a deduction from the party fined, each posted once per
//! origin. `kefu.settlement.v1.Settlement` shows both.

pub mod ledger;

use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    error,
    inbox::{EventHandler, Inbox},
    migrate::Migration,
    routed::{self, AcceptRoutedCases},
    server::{ServiceContext, ServiceSpec, StartError, run_service},
    time::to_timestamp,
};
use kefu_proto::{
    events::v1::{Event, event::Payload},
    settlement::v1::{self as pb, settlement_server},
};
use sea_orm::DatabaseTransaction;
use tokio::net::TcpListener;
use tonic::{Request, Response, Status, service::Routes};

pub const NAME: ServiceName = ServiceName::Settlement;
pub const SERVICE_NAME: &str = "kefu.settlement.v1.Settlement";
/// Records are named `cases/{case_number}`.
pub const COLLECTION: &str = "cases";

pub static MIGRATIONS: &[&Migration] = &[&routed::MIGRATION, &ledger::MIGRATION, &routed::MIGRATION_FIRST_COMPLAINT];

/// Serves settlement on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let spec =
        ServiceSpec { name: NAME, migrations: MIGRATIONS, service_names: &[SERVICE_NAME, "kefu.events.v1.EventInbox"] };
    run_service(spec, config, clock, listener, shutdown, |context| {
        let events = SettlementEvents {
            routed: AcceptRoutedCases { owner: NAME, collection: COLLECTION, clock: context.clock.clone() },
            clock: context.clock.clone(),
        };
        let inbox = Inbox::new(context.db.clone(), context.clock.clone(), context.relay.clone(), events);
        Routes::new(settlement_server::SettlementServer::new(SettlementApi { context: context.clone() }))
            .add_service(inbox.into_server())
    })
    .await
}

/// What settlement does with the events it receives: routed cases are accepted, approved claims
/// and inspection's fines are posted to the ledger.
struct SettlementEvents {
    routed: AcceptRoutedCases,
    clock: SharedClock,
}

impl EventHandler for SettlementEvents {
    async fn apply(&self, tx: &DatabaseTransaction, events: &[&Event]) -> Result<(), Status> {
        let (routed, others): (Vec<&Event>, Vec<&Event>) =
            events.iter().partition(|event| matches!(event.payload, Some(Payload::CaseRouted(_))));
        if !routed.is_empty() {
            self.routed.apply(tx, &routed).await?;
        }
        let now = self.clock.now();
        for event in others {
            match &event.payload {
                Some(Payload::ClaimApproved(approved)) => {
                    ledger::apply(tx, event, &ledger::claim_entries(approved)?, now).await?
                }
                Some(Payload::FineImposed(fine)) => ledger::apply(tx, event, &[ledger::fine_entry(fine)?], now).await?,
                _ => {
                    return Err(Status::invalid_argument(
                        "settlement accepts case_routed, claim_approved and fine_imposed events",
                    ));
                }
            }
        }
        Ok(())
    }
}

struct SettlementApi {
    context: ServiceContext,
}

#[tonic::async_trait]
impl settlement_server::Settlement for SettlementApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Result<Response<pb::Case>, Status> {
        let row = routed::get_by_name(&self.context.db, &request.into_inner().name, COLLECTION).await?;
        Ok(Response::new(to_proto(row)))
    }

    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        let request = request.into_inner();
        let (rows, next_page_token) =
            routed::list_page(&self.context.db, request.page_size, &request.page_token).await?;
        Ok(Response::new(pb::ListCasesResponse { cases: rows.into_iter().map(to_proto).collect(), next_page_token }))
    }

    async fn list_ledger_entries(
        &self,
        request: Request<pb::ListLedgerEntriesRequest>,
    ) -> Result<Response<pb::ListLedgerEntriesResponse>, Status> {
        let request = request.into_inner();
        if request.origin_prefix.len() > 160 {
            return Err(error::invalid_field("origin_prefix", "at most 160 characters"));
        }
        let page_size = kefu_kit::paging::page_size(request.page_size)?;
        let after = kefu_kit::paging::decode_token(&request.page_token, &request.origin_prefix)?;
        let (entries, next) = ledger::list(&self.context.db, &request.origin_prefix, page_size, after)
            .await
            .map_err(|e| error::from_db("listing the ledger", e))?;
        let entries = entries
            .into_iter()
            .map(|(entry, postings)| pb::LedgerEntry {
                name: format!("ledgerEntries/{}", entry.seq),
                origin: entry.origin,
                kind: entry.kind,
                memo: entry.memo,
                postings: postings
                    .into_iter()
                    .map(|posting| pb::Posting { account: posting.account, amount_fen: posting.amount_fen })
                    .collect(),
                create_time: Some(to_timestamp(entry.create_time)),
                event_id: entry.event_id,
            })
            .collect();
        let next_page_token =
            next.map(|seq| kefu_kit::paging::encode_token(seq, &request.origin_prefix)).unwrap_or_default();
        Ok(Response::new(pb::ListLedgerEntriesResponse { entries, next_page_token }))
    }
}

fn to_proto(row: routed::Model) -> pb::Case {
    pb::Case {
        name: format!("{COLLECTION}/{}", row.case_number),
        complaint: Some(row.to_proto()),
        accept_time: Some(to_timestamp(row.accept_time)),
    }
}
