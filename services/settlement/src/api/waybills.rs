//! Waybills: recording one, and every change after — COD collected and remitted, change requests
//! asked, approved and rejected, seizures — on the kit's one write path with [`WaybillKeeper`]:
//! read at a version, `Waybill::apply`, saved over the version read, the step recorded under the
//! request id, the difference of the waybill's footprint posted to the ledger, and the cases a
//! remittance answers resolved — one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    error::{FieldViolations, collect_violations, idempotency_key},
    history,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
    write::{self, Acted, Applied},
};
use kefu_proto::settlement::v1 as pb;
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr};
use tonic::{Request, Response, metadata::MetadataMap};

use super::{Reply, SettlementApi, cases::resolve, check_request_id, time};
use crate::{
    error::{Error, db as db_error},
    ledger, store,
    waybill::{Command, Field, Movement, SeizureFacts, Waybill, WaybillFields, difference, yuan},
};

/// The waybill number in `waybills/{number}`.
fn waybill_number(name: &str) -> Result<&str, Error> {
    name.strip_prefix("waybills/")
        .filter(|number| !number.is_empty() && !number.contains('/'))
        .ok_or_else(|| Error::Invalid(FieldViolations::of("name", "expected waybills/{number}")))
}

/// The waybill number and the change request's index in `waybills/{number}/changeRequests/{n}`.
fn change_request(name: &str) -> Result<(&str, usize), Error> {
    let refuse = || Error::Invalid(FieldViolations::of("name", "expected waybills/{number}/changeRequests/{n}"));
    let (waybill, n) = name.rsplit_once("/changeRequests/").ok_or_else(refuse)?;
    let n: usize = n.parse().ok().filter(|n| *n >= 1).ok_or_else(refuse)?;
    Ok((waybill_number(waybill)?, n - 1))
}

pub(super) fn history_key(number: &str) -> String {
    format!("waybills/{number}")
}

/// What the keeper is asked: to record a new waybill, or to change one by its rules.
enum Order {
    Record(Box<Waybill>),
    Change(Command),
}

/// How settlement keeps a waybill: in `waybills`, its history under `waybills/{number}`; recording
/// one inserts it and posts its charges, and what a later step moves is posted to the ledger; a
/// remittance answers the waybill's open complaints.
struct WaybillKeeper<'a> {
    time_zone: chrono_tz::Tz,
    /// `waybills/{number}`.
    name: &'a str,
}

impl write::Keeper for WaybillKeeper<'_> {
    /// `None` until the waybill is recorded.
    type Aggregate = Option<Waybill>;
    type Version = i32;
    type Command = Order;
    type Effects = Option<Movement>;
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Option<Waybill>, Option<i32>), Error> {
        let number = key.strip_prefix("waybills/").unwrap_or(key);
        let stored = store::load(tx, number).await.map_err(db_error("reading a waybill"))?;
        Ok(match stored {
            Some(stored) => (Some(stored.waybill), Some(stored.version)),
            None => (None, None),
        })
    }

    fn apply(
        &self,
        waybill: &mut Option<Waybill>,
        order: Order,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Option<Movement>>, Error> {
        match (waybill.as_mut(), order) {
            (None, Order::Record(recorded)) => {
                let detail = format!(
                    "recorded: shipper {}, branch {}, freight {} ({}), COD {}",
                    recorded.shipper,
                    recorded.branch,
                    yuan(recorded.freight_fen),
                    recorded.payment_method.as_str(),
                    yuan(recorded.cod_amount_fen)
                );
                let step = history::Step { action: "recorded", actor: caller.user.clone(), time: now, detail };
                *waybill = Some(*recorded);
                let charges = Movement { kind: "waybill_charges", origin: "charges".into() };
                Ok(Applied { steps: vec![step], effects: Some(charges) })
            }
            (Some(existing), Order::Record(_)) => Err(Error::AlreadyExists(format!(
                "{} is already recorded; change it with RequestChange",
                existing.name()
            ))),
            (None, Order::Change(_)) => {
                Err(Error::NotFound(format!("no waybill named {}; record it first", self.name)))
            }
            (Some(existing), Order::Change(command)) => {
                let applied = existing.apply(command, caller, now, self.time_zone)?;
                Ok(Applied { steps: vec![applied.step], effects: applied.movement })
            }
        }
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        _before: &Option<Waybill>,
        waybill: &Option<Waybill>,
        version: Option<i32>,
        _now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        match (waybill, version) {
            (Some(waybill), Some(version)) => store::save(tx, waybill, version).await,
            // A waybill recorded at the same moment by another request: this one lost the race.
            (Some(waybill), None) => store::insert(tx, waybill).await,
            (None, _) => Ok(false),
        }
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Option<Waybill>>,
        movement: Option<Movement>,
    ) -> Result<Vec<write::Message>, Error> {
        let now = change.now;
        let (Some(waybill), Some(step)) = (change.after, change.steps.first()) else { return Ok(Vec::new()) };
        if let Some(movement) = &movement {
            let origin = format!("{}/{}", change.key, movement.origin);
            let before = change.before.as_ref().map(Waybill::footprint).unwrap_or_default();
            post_difference(tx, origin, movement.kind, &step.detail, &before, waybill, now).await?;
        }
        let mut messages = Vec::new();
        if step.action == "cod_remitted" {
            let answer = format!("{}; settlement considers the complaint answered", step.detail);
            for case_number in
                store::open_cases_of(tx, &waybill.number).await.map_err(db_error("finding the waybill's cases"))?
            {
                messages.extend(resolve(tx, &case_number, &answer, change.caller, now).await?);
            }
        }
        Ok(messages)
    }

    fn describe(&self, key: &str) -> String {
        key.to_owned()
    }
}

/// Posts what a waybill's step moved — its footprint now less `before` — under `origin`, if anything.
async fn post_difference(
    tx: &impl ConnectionTrait,
    origin: String,
    kind: &'static str,
    memo: &str,
    before: &BTreeMap<String, i64>,
    waybill: &Waybill,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    let postings = difference(before, &waybill.footprint());
    if !postings.is_empty() {
        let entry = ledger::NewEntry { origin, kind, memo: memo.to_owned(), postings };
        ledger::post(tx, &entry, "", now).await.map_err(db_error("posting to the ledger"))?;
    }
    Ok(())
}

pub(super) fn waybill_to_proto(stored: &store::Stored, steps: Vec<history::Model>) -> pb::Waybill {
    let waybill = &stored.waybill;
    let stamp = |time: Option<DateTime<Utc>>| time.map(to_timestamp);
    pb::Waybill {
        name: waybill.name(),
        shipper: waybill.shipper.clone(),
        branch: waybill.branch.clone(),
        freight_fen: waybill.freight_fen,
        payment_method: waybill.payment_method.as_str().into(),
        cod_amount_fen: waybill.cod_amount_fen,
        cod_remit_days: i32::try_from(waybill.cod_remit_days).unwrap_or(i32::MAX),
        consignee: waybill.consignee.clone(),
        consignee_phone: waybill.consignee_phone.clone(),
        cod: Some(pb::CashOnDelivery {
            collect_time: stamp(waybill.cod.collect_time),
            remit_due_time: stamp(waybill.cod.remit_due_time),
            remit_time: stamp(waybill.cod.remit_time),
            late_complaint: stored.late_complaint.clone().unwrap_or_default(),
        }),
        seizure: waybill.seizure.as_ref().map(|seizure| pb::Seizure {
            authority: seizure.authority.clone(),
            certificate_number: seizure.certificate_number.clone(),
            seize_time: Some(to_timestamp(seizure.seize_time)),
            cause: if seizure.by_branch_fault { "branch" } else { "customer" }.into(),
            shipper_notify_time: stamp(seizure.shipper_notify_time),
            notified_by: seizure.notified_by.clone(),
            problem: seizure.problem.clone().unwrap_or_default(),
            branch_bears_loss: seizure.branch_bears_loss.clone().unwrap_or_default(),
            write_off_from: Some(to_timestamp(seizure.write_off_from)),
            write_off_time: stamp(seizure.write_off_time),
        }),
        change_requests: waybill
            .change_requests
            .iter()
            .enumerate()
            .map(|(index, request)| pb::ChangeRequest {
                name: format!("{}/changeRequests/{}", waybill.name(), index + 1),
                state: request.state.as_str().into(),
                changes: request
                    .changes
                    .iter()
                    .map(|change| pb::FieldChange {
                        field: change.field.as_str().into(),
                        before: change.before.clone(),
                        after: change.after.clone(),
                    })
                    .collect(),
                reason: request.reason.clone(),
                requested_by: request.requested_by.clone(),
                request_time: Some(to_timestamp(request.request_time)),
                decided_by: request.decided_by.clone(),
                decision_reason: request.decision_reason.clone(),
                decide_time: stamp(request.decide_time),
            })
            .collect(),
        balances: waybill
            .footprint()
            .into_iter()
            .map(|(account, amount_fen)| pb::Posting { account, amount_fen })
            .collect(),
        history: steps
            .into_iter()
            .map(|step| pb::Step {
                action: step.action,
                actor: step.actor,
                time: Some(to_timestamp(step.time)),
                detail: step.detail,
            })
            .collect(),
        create_time: Some(to_timestamp(waybill.create_time)),
    }
}

impl SettlementApi {
    /// Changes waybill `name` by `command`, once per `request_id`, and returns it as it now is.
    async fn act(
        &self,
        metadata: &MetadataMap,
        name: &str,
        request_id: &str,
        command: Command,
    ) -> Result<pb::Waybill, Error> {
        self.order(metadata, name, request_id, Order::Change(command)).await
    }

    /// Gives `order` about waybill `name` to the keeper, once per `request_id`; the waybill as it now is.
    async fn order(
        &self,
        metadata: &MetadataMap,
        name: &str,
        request_id: &str,
        order: Order,
    ) -> Result<pb::Waybill, Error> {
        check_request_id(request_id)?;
        let number = waybill_number(name)?;
        let caller = Caller::from_metadata(metadata);
        let trace = TraceContext::from_metadata(metadata).unwrap_or_else(TraceContext::new_root);
        let request = write::Request { caller: &caller, trace: &trace, request_id: idempotency_key(request_id) };
        let key = history_key(number);
        let keeper = WaybillKeeper { time_zone: self.context.time_zone, name: &key };
        let acted = write::act(&keeper, &self.context, &key, request, order).await?;
        if let Acted::Changed(Some(waybill)) = acted {
            tracing::info!(waybill = %waybill.number, "waybill changed");
        }
        self.view(number).await
    }

    async fn view(&self, number: &str) -> Result<pb::Waybill, Error> {
        let db = &self.context.db;
        let stored = store::load(db, number)
            .await
            .map_err(db_error("reading a waybill"))?
            .ok_or_else(|| Error::NotFound(format!("no waybill named waybills/{number}")))?;
        let steps = history::list(db, &history_key(number)).await.map_err(db_error("reading a waybill's history"))?;
        Ok(waybill_to_proto(&stored, steps))
    }

    pub(super) async fn record_waybill(&self, request: Request<pb::RecordWaybillRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let given = request.waybill.unwrap_or_default();
        let number = given.name.strip_prefix("waybills/").unwrap_or("");
        let now = to_micros(self.context.clock.now());
        let fields = WaybillFields {
            number,
            shipper: &given.shipper,
            branch: &given.branch,
            freight_fen: given.freight_fen,
            payment_method: &given.payment_method,
            cod_amount_fen: given.cod_amount_fen,
            cod_remit_days: given.cod_remit_days,
            consignee: &given.consignee,
            consignee_phone: &given.consignee_phone,
        };
        let waybill = collect_violations(FieldViolations::new(), Waybill::new(&fields, now), &request.request_id)
            .map_err(Error::from)?;
        let order = Order::Record(Box::new(waybill));
        Ok(Response::new(self.order(&metadata, &history_key(number), &request.request_id, order).await?))
    }

    pub(super) async fn get_waybill(&self, request: Request<pb::GetWaybillRequest>) -> Reply<pb::Waybill> {
        let number = waybill_number(&request.get_ref().name)?;
        Ok(Response::new(self.view(number).await?))
    }

    pub(super) async fn record_cod_collection(
        &self,
        request: Request<pb::RecordCodCollectionRequest>,
    ) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::CollectCod { time: time(request.collect_time.as_ref(), "collect_time")? };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    pub(super) async fn record_cod_remittance(
        &self,
        request: Request<pb::RecordCodRemittanceRequest>,
    ) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::RemitCod { time: time(request.remit_time.as_ref(), "remit_time")? };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    pub(super) async fn request_change(&self, request: Request<pb::RequestChangeRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let mut changes = Vec::with_capacity(request.changes.len());
        for (i, change) in request.changes.iter().enumerate() {
            match Field::parse(&change.field) {
                Some(field) => changes.push((field, change.after.clone())),
                None => violations.add(
                    format!("changes[{i}].field"),
                    "shipper, cod_amount_fen, freight_fen, payment_method, consignee or consignee_phone",
                ),
            }
        }
        collect_violations(violations, Ok(()), &request.request_id).map_err(Error::Invalid)?;
        let command = Command::RequestChange { changes, reason: request.reason };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    pub(super) async fn approve_change(&self, request: Request<pb::ApproveChangeRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let (number, index) = change_request(&request.name)?;
        let command = Command::ApproveChange { index, reason: request.reason };
        Ok(Response::new(self.act(&metadata, &history_key(number), &request.request_id, command).await?))
    }

    pub(super) async fn reject_change(&self, request: Request<pb::RejectChangeRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let (number, index) = change_request(&request.name)?;
        let command = Command::RejectChange { index, reason: request.reason };
        Ok(Response::new(self.act(&metadata, &history_key(number), &request.request_id, command).await?))
    }

    pub(super) async fn record_seizure(&self, request: Request<pb::RecordSeizureRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let given = request.seizure.unwrap_or_default();
        let facts = SeizureFacts {
            authority: given.authority,
            certificate_number: given.certificate_number,
            seize_time: time(given.seize_time.as_ref(), "seizure.seize_time")?,
            cause: given.cause,
            shipper_notify_time: time(given.shipper_notify_time.as_ref(), "seizure.shipper_notify_time")?,
            notified_by: given.notified_by,
        };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, Command::Seize(facts)).await?))
    }

    pub(super) async fn record_shipper_notified(
        &self,
        request: Request<pb::RecordShipperNotifiedRequest>,
    ) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::NotifyShipper {
            time: time(request.notify_time.as_ref(), "notify_time")?,
            by: request.notified_by,
        };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    pub(super) async fn report_seizure_problem(
        &self,
        request: Request<pb::ReportSeizureProblemRequest>,
    ) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::ReportProblem { problem: request.problem };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    pub(super) async fn write_off_seizure(&self, request: Request<pb::WriteOffSeizureRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::WriteOff { original_certificate: request.original_certificate };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }
}
