//! `kefu.settlement.v1.Settlement`: every RPC in the list below, each handed to the room that
//! serves it —
//!
//! - [`waybills`]: a waybill and every change to it, on the kit's one write path (`WaybillKeeper`);
//! - [`accounts`]: the ledger's entries, reversals, balances, statements, the monthly summary, `Reconcile`;
//! - [`cases`]: the `late_remittance` cases settlement owns, and their resolution;
//! - [`late_remittances`]: the waybills whose COD is late, filed as complaints.
//!
//! A room converts proto ⇄ domain and asks the rules (`crate::waybill`, `crate::ledger`).

mod accounts;
mod cases;
mod late_remittances;
mod waybills;

pub use cases::answer_remitted;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    error::{FieldViolations, collect_violations},
    server::ServiceContext,
};
use kefu_proto::{
    gateway::v1::complaints_client::ComplaintsClient,
    settlement::v1::{self as pb, settlement_server},
};
use tonic::{Request, Response, Status};

use crate::error::Error;

pub struct SettlementApi {
    pub context: ServiceContext,
    /// The gateway, where late remittances are filed as complaints like any other.
    pub gateway: ComplaintsClient<kefu_kit::trust::SignedChannel>,
}

type Reply<T> = Result<Response<T>, Status>;

/// A time the caller gave, if any; `INVALID_ARGUMENT` naming `field` if it is not a sane time.
fn time(given: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, FieldViolations> {
    kefu_kit::time::optional_time(given, field)
}

/// The request id's own violations, if any.
fn check_request_id(request_id: &str) -> Result<(), Error> {
    collect_violations(FieldViolations::new(), Ok(()), request_id).map_err(Error::Invalid)
}

/// Who settlement is when it acts by itself: filing late remittances, answering complaints.
fn system_caller() -> Caller {
    Caller { user: "settlement".into(), department: "settlement".into(), ..Caller::default() }
}

#[tonic::async_trait]
impl settlement_server::Settlement for SettlementApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        self.get_case(request).await
    }

    async fn list_cases(&self, request: Request<pb::ListCasesRequest>) -> Reply<pb::ListCasesResponse> {
        self.list_cases(request).await
    }

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> Reply<pb::Case> {
        self.resolve_case(request).await
    }

    async fn list_ledger_entries(
        &self,
        request: Request<pb::ListLedgerEntriesRequest>,
    ) -> Reply<pb::ListLedgerEntriesResponse> {
        self.list_ledger_entries(request).await
    }

    async fn request_reversal(&self, request: Request<pb::RequestReversalRequest>) -> Reply<pb::ReversalRequest> {
        self.request_reversal(request).await
    }

    async fn reverse_ledger_entry(&self, request: Request<pb::ReverseLedgerEntryRequest>) -> Reply<pb::LedgerEntry> {
        self.reverse_ledger_entry(request).await
    }

    async fn get_trial_balance(&self, request: Request<pb::GetTrialBalanceRequest>) -> Reply<pb::TrialBalance> {
        self.get_trial_balance(request).await
    }

    async fn get_account_statement(
        &self,
        request: Request<pb::GetAccountStatementRequest>,
    ) -> Reply<pb::AccountStatement> {
        self.get_account_statement(request).await
    }

    async fn get_monthly_summary(&self, request: Request<pb::GetMonthlySummaryRequest>) -> Reply<pb::MonthlySummary> {
        self.get_monthly_summary(request).await
    }

    async fn reconcile(&self, _request: Request<pb::ReconcileRequest>) -> Reply<pb::Reconciliation> {
        self.reconcile(_request).await
    }

    async fn record_waybill(&self, request: Request<pb::RecordWaybillRequest>) -> Reply<pb::Waybill> {
        self.record_waybill(request).await
    }

    async fn get_waybill(&self, request: Request<pb::GetWaybillRequest>) -> Reply<pb::Waybill> {
        self.get_waybill(request).await
    }

    async fn record_cod_collection(&self, request: Request<pb::RecordCodCollectionRequest>) -> Reply<pb::Waybill> {
        self.record_cod_collection(request).await
    }

    async fn record_cod_remittance(&self, request: Request<pb::RecordCodRemittanceRequest>) -> Reply<pb::Waybill> {
        self.record_cod_remittance(request).await
    }

    async fn list_late_remittances(
        &self,
        request: Request<pb::ListLateRemittancesRequest>,
    ) -> Reply<pb::ListLateRemittancesResponse> {
        self.list_late_remittances(request).await
    }

    async fn list_pending_changes(
        &self,
        request: Request<pb::ListPendingChangesRequest>,
    ) -> Reply<pb::ListPendingChangesResponse> {
        self.list_pending_changes(request).await
    }

    async fn report_late_remittances(
        &self,
        _request: Request<pb::ReportLateRemittancesRequest>,
    ) -> Reply<pb::ReportLateRemittancesResponse> {
        self.report_late_remittances(_request).await
    }

    async fn request_change(&self, request: Request<pb::RequestChangeRequest>) -> Reply<pb::Waybill> {
        self.request_change(request).await
    }

    async fn approve_change(&self, request: Request<pb::ApproveChangeRequest>) -> Reply<pb::Waybill> {
        self.approve_change(request).await
    }

    async fn reject_change(&self, request: Request<pb::RejectChangeRequest>) -> Reply<pb::Waybill> {
        self.reject_change(request).await
    }

    async fn record_seizure(&self, request: Request<pb::RecordSeizureRequest>) -> Reply<pb::Waybill> {
        self.record_seizure(request).await
    }

    async fn record_shipper_notified(&self, request: Request<pb::RecordShipperNotifiedRequest>) -> Reply<pb::Waybill> {
        self.record_shipper_notified(request).await
    }

    async fn report_seizure_problem(&self, request: Request<pb::ReportSeizureProblemRequest>) -> Reply<pb::Waybill> {
        self.report_seizure_problem(request).await
    }

    async fn write_off_seizure(&self, request: Request<pb::WriteOffSeizureRequest>) -> Reply<pb::Waybill> {
        self.write_off_seizure(request).await
    }
}
