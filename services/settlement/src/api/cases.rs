//! The cases settlement owns (`late_remittance` complaints, `cases/{case_number}`): reading them,
//! resolving them by hand, and answering at once those whose COD was already remitted. A resolution
//! is a step of the case's own history under the resolver's name, sent to intake as `case_resolved`.

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{FieldViolations, collect_violations},
    history, routed,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
    write::{self},
};
use kefu_proto::{
    events::v1::{CaseResolved, event::Payload},
    settlement::v1::{self as pb},
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use tonic::{Request, Response, Status};

use super::{Reply, SettlementApi, system_caller};
use crate::{
    COLLECTION,
    error::{Error, db as db_error},
    store,
    waybill::yuan,
};

const MAX_RESOLUTION: usize = 2000;

/// Resolves case `case_number` with `text`, in the case's own history under `caller`'s name, and
/// returns the `case_resolved` for intake; `None` if it was resolved before.
pub(super) async fn resolve(
    tx: &impl ConnectionTrait,
    case_number: &str,
    text: &str,
    caller: &Caller,
    now: DateTime<Utc>,
) -> Result<Option<write::Message>, Error> {
    if !store::resolve(tx, case_number, text, &caller.user, now).await.map_err(db_error("resolving a case"))? {
        return Ok(None);
    }
    let step = history::Step { action: "resolved", actor: caller.user.clone(), time: now, detail: text.to_owned() };
    history::record(tx, case_number, None, &[step]).await.map_err(db_error("recording a case's history"))?;
    let resolved = CaseResolved {
        complaint: format!("complaints/{case_number}"),
        owner: ServiceName::Settlement.as_str().into(),
        owner_reference: format!("{COLLECTION}/{case_number}"),
        resolution: text.to_owned(),
        resolve_time: Some(to_timestamp(now)),
        steps: history::story(tx, case_number, ServiceName::Settlement)
            .await
            .map_err(db_error("reading a case's history"))?,
        payments: Vec::new(),
    };
    Ok(Some((ServiceName::Intake, Payload::CaseResolved(resolved))))
}

/// Resolves, within `tx`, newly routed cases (case number, waybill number) about waybills whose COD
/// was already remitted: the answer is known the moment the complaint arrives.
pub async fn answer_remitted(
    tx: &impl ConnectionTrait,
    cases: &[(String, String)],
    now: DateTime<Utc>,
    time_zone: chrono_tz::Tz,
) -> Result<usize, Status> {
    let caller = system_caller();
    let mut resolved = 0;
    for (case_number, waybill_number) in cases {
        let stored =
            store::load(tx, waybill_number).await.map_err(|e| kefu_kit::error::from_db("reading a waybill", e))?;
        let Some(stored) = stored else { continue };
        let Some(remitted) = stored.waybill.cod.remit_time else { continue };
        let text = format!(
            "the COD of {} for waybill {waybill_number} was remitted to the shipper on {}",
            yuan(stored.waybill.cod_amount_fen),
            remitted.with_timezone(&time_zone).format("%Y-%m-%d %H:%M")
        );
        if let Some(message) = resolve(tx, case_number, &text, &caller, now).await.map_err(Status::from)? {
            let request = write::Request { caller: &caller, trace: &TraceContext::new_root(), request_id: None };
            write::send(tx, ServiceName::Settlement, &[message], request, now).await.map_err(Status::from)?;
            resolved += 1;
        }
    }
    Ok(resolved)
}

fn case_to_proto(case: routed::Model, outcome: Option<store::resolution::Model>) -> pb::Case {
    let mut view = pb::Case {
        name: format!("{COLLECTION}/{}", case.case_number),
        complaint: Some(case.to_proto()),
        accept_time: Some(to_timestamp(case.accept_time)),
        ..Default::default()
    };
    if let Some(outcome) = outcome {
        view.resolution = outcome.resolution;
        view.resolve_time = Some(to_timestamp(outcome.resolve_time));
        view.resolved_by = outcome.resolved_by;
    }
    view
}

impl SettlementApi {
    async fn case_view(&self, db: &impl ConnectionTrait, case: routed::Model) -> Result<pb::Case, Error> {
        let outcome = store::resolution(db, &case.case_number).await.map_err(db_error("reading a case"))?;
        Ok(case_to_proto(case, outcome))
    }

    pub(super) async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        let db = &self.context.db;
        let case = routed::get_by_name(db, &request.get_ref().name, COLLECTION).await?;
        Ok(Response::new(self.case_view(db, case).await?))
    }

    pub(super) async fn list_cases(&self, request: Request<pb::ListCasesRequest>) -> Reply<pb::ListCasesResponse> {
        let request = request.into_inner();
        let db = &self.context.db;
        let (rows, next_page_token) = routed::list_page(db, request.page_size, &request.page_token).await?;
        let numbers = rows.iter().map(|row| row.case_number.clone()).collect();
        let mut outcomes = store::resolutions(db, numbers).await.map_err(db_error("reading cases"))?;
        let cases = rows
            .into_iter()
            .map(|row| {
                let outcome = outcomes.remove(&row.case_number);
                case_to_proto(row, outcome)
            })
            .collect();
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token }))
    }

    pub(super) async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> Reply<pb::Case> {
        let caller = Caller::from_metadata(request.metadata());
        let trace = TraceContext::from_metadata(request.metadata()).unwrap_or_else(TraceContext::new_root);
        let request = request.into_inner();
        let mut violations = FieldViolations::new();
        let text = request.resolution.trim();
        if text.is_empty() || text.chars().count() > MAX_RESOLUTION {
            violations.add("resolution", "required: what the customer is told (at most 2000 characters)");
        }
        collect_violations(violations, Ok(()), &request.request_id).map_err(Error::Invalid)?;
        let db = &self.context.db;
        let case = routed::get_by_name(db, &request.name, COLLECTION).await?;
        let now = to_micros(self.context.clock.now());
        let tx = db.begin().await.map_err(db_error("resolving a case"))?;
        let Some(message) = resolve(&tx, &case.case_number, text, &caller, now).await? else {
            drop(tx);
            let outcome = store::resolution(db, &case.case_number).await.map_err(db_error("reading a case"))?;
            if outcome.as_ref().is_some_and(|outcome| outcome.resolution == text) {
                return Ok(Response::new(case_to_proto(case, outcome)));
            }
            return Err(Error::Precondition(format!("{} is already resolved", request.name)).into());
        };
        let sent = write::Request { caller: &caller, trace: &trace, request_id: None };
        write::send(&tx, ServiceName::Settlement, &[message], sent, now).await.map_err(Error::from)?;
        tx.commit().await.map_err(db_error("resolving a case"))?;
        self.context.relay.wake();
        Ok(Response::new(self.case_view(db, case).await?))
    }
}
