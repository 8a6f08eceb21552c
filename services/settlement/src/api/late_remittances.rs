//! Late remittances: the waybills whose COD is past its remittance date, and filing each as a
//! `late_remittance` complaint through the gateway like any branch system (why not a shorter
//! path: ARCHITECTURE.md, "Boundaries").

use chrono::{DateTime, Utc};
use kefu_kit::{history, time::to_micros};
use kefu_proto::{
    gateway::v1::{self as gateway},
    settlement::v1::{self as pb},
};
use sea_orm::TransactionTrait;
use tonic::{Request, Response};

use super::{
    waybills::{history_key, waybill_to_proto},
    *,
};
use crate::{
    LATE_REMITTANCE_CATEGORY,
    error::{Error, db as db_error},
    store,
    waybill::yuan,
};

/// How many late remittances one check files at most.
const LATE_BATCH: u64 = 100;

impl SettlementApi {
    /// Files a late_remittance complaint through the gateway for every late remittance without one.
    pub async fn report_late(&self) -> Result<Vec<String>, Error> {
        let now = to_micros(self.context.clock.now());
        let db = &self.context.db;
        let late = store::late(db, now, true, LATE_BATCH).await.map_err(db_error("finding late remittances"))?;
        let caller = system_caller();
        let mut filed = Vec::new();
        for stored in late {
            let waybill = &stored.waybill;
            let due = waybill.cod.remit_due_time.unwrap_or(now);
            let local =
                |time: DateTime<Utc>| time.with_timezone(&self.context.time_zone).format("%Y-%m-%d").to_string();
            let owed_since = waybill.cod.collect_time.map(local).unwrap_or_else(|| "the seizure's loss".into());
            let complaint = gateway::Complaint {
                category: LATE_REMITTANCE_CATEGORY.into(),
                waybill_number: waybill.number.clone(),
                channel: gateway::Channel::Online as i32,
                description: format!(
                    "COD of {} owed to shipper {} since {} was due by {} and has not been remitted \
                     (found by settlement's check)",
                    yuan(waybill.cod_amount_fen),
                    waybill.shipper,
                    owed_since,
                    local(due)
                ),
                customer_request: "remit the COD to the shipper and explain the delay".into(),
                branch: waybill.branch.clone(),
                ..Default::default()
            };
            let mut request = Request::new(gateway::CreateComplaintRequest {
                request_id: format!("settlement-late-remittance-{}", waybill.number),
                complaint: Some(complaint),
                from_request: String::new(),
            });
            caller.write_metadata(request.metadata_mut());
            let created = match self.gateway.clone().create_complaint(request).await {
                Ok(reply) => reply.into_inner(),
                Err(status) => {
                    // Tried again at the next check, with the same request id: never filed twice.
                    tracing::warn!(waybill = %waybill.number, error = %status.message(), "filing a late remittance failed");
                    continue;
                }
            };
            let tx = db.begin().await.map_err(db_error("recording a late complaint"))?;
            store::set_late_complaint(&tx, &waybill.number, &created.name)
                .await
                .map_err(db_error("recording a late complaint"))?;
            let step = history::Step {
                action: "late_complaint_filed",
                actor: caller.user.clone(),
                time: now,
                detail: format!("COD due by {} not remitted: complaint {} filed", local(due), created.name),
            };
            history::record(&tx, &history_key(&waybill.number), None, &[step])
                .await
                .map_err(db_error("recording a late complaint"))?;
            tx.commit().await.map_err(db_error("recording a late complaint"))?;
            tracing::warn!(waybill = %waybill.number, complaint = %created.name, "late remittance filed as a complaint");
            filed.push(created.name);
        }
        Ok(filed)
    }

    pub(super) async fn list_late_remittances(
        &self,
        request: Request<pb::ListLateRemittancesRequest>,
    ) -> Reply<pb::ListLateRemittancesResponse> {
        let page_size = kefu_kit::paging::page_size(request.get_ref().page_size)?;
        let now = to_micros(self.context.clock.now());
        let late =
            store::late(&self.context.db, now, false, page_size).await.map_err(db_error("finding late remittances"))?;
        Ok(Response::new(pb::ListLateRemittancesResponse {
            waybills: late.iter().map(|stored| waybill_to_proto(stored, Vec::new())).collect(),
        }))
    }

    pub(super) async fn list_pending_changes(
        &self,
        request: Request<pb::ListPendingChangesRequest>,
    ) -> Reply<pb::ListPendingChangesResponse> {
        let page_size = kefu_kit::paging::page_size(request.get_ref().page_size)?;
        let waiting =
            store::pending_changes(&self.context.db, page_size).await.map_err(db_error("finding change requests"))?;
        Ok(Response::new(pb::ListPendingChangesResponse {
            waybills: waiting.iter().map(|stored| waybill_to_proto(stored, Vec::new())).collect(),
        }))
    }

    pub(super) async fn report_late_remittances(
        &self,
        _request: Request<pb::ReportLateRemittancesRequest>,
    ) -> Reply<pb::ReportLateRemittancesResponse> {
        Ok(Response::new(pb::ReportLateRemittancesResponse { complaints: self.report_late().await? }))
    }
}
