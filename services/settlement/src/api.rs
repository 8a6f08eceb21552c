//! `kefu.settlement.v1.Settlement`: proto ⇄ domain, and the one path every change to a waybill
//! takes ([`SettlementApi::act`]): read at a version, apply the rule ([`Waybill::apply`]), write
//! with a version check, record the step under the request's id, post the difference of the
//! waybill's footprint to the ledger, and resolve the cases a remittance answers — one transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{FieldViolations, collect_violations, idempotency_key},
    history,
    report::{Month, csv_field},
    routed,
    server::ServiceContext,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
    write::{self, Acted, Applied},
};
use kefu_proto::{
    events::v1::{CaseResolved, event::Payload},
    gateway::v1::{self as gateway, complaints_client::ComplaintsClient},
    settlement::v1::{self as pb, settlement_server},
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait as _, TransactionTrait};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    COLLECTION, LATE_REMITTANCE_CATEGORY,
    error::{Error, db as db_error},
    ledger, reconcile, store,
    waybill::{Command, Field, Movement, SeizureFacts, Waybill, WaybillFields, difference, yuan},
};

pub struct SettlementApi {
    pub context: ServiceContext,
    /// The gateway, where late remittances are filed as complaints like any other.
    pub gateway: ComplaintsClient<kefu_kit::trust::SignedChannel>,
}

type Reply<T> = Result<Response<T>, Status>;

/// How many late remittances one check files at most.
const LATE_BATCH: u64 = 100;
const MAX_RESOLUTION: usize = 2000;

/// A time the caller gave, if any; `INVALID_ARGUMENT` naming `field` if it is not a sane time.
fn time(given: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, FieldViolations> {
    kefu_kit::time::optional_time(given, field)
}

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

/// The request id's own violations, if any.
fn check_request_id(request_id: &str) -> Result<(), Error> {
    collect_violations(FieldViolations::new(), Ok(()), request_id).map_err(Error::Invalid)
}

fn history_key(number: &str) -> String {
    format!("waybills/{number}")
}

impl SettlementApi {
    /// The entry `seq` and its postings, if the ledger may reverse it: a claim's or a fine's entry,
    /// not a waybill's (a change request corrects those) and not itself a reversal.
    async fn reversible(
        &self,
        tx: &sea_orm::DatabaseTransaction,
        seq: i64,
        name: &str,
    ) -> Result<(ledger::entry::Model, Vec<ledger::posting::Model>), Status> {
        let (original, postings) = ledger::get(tx, seq)
            .await
            .map_err(db_error("reading an entry"))?
            .ok_or_else(|| Error::NotFound(format!("no ledger entry named {name}")))?;
        if original.origin.starts_with("waybills/") {
            return Err(Error::Precondition(format!(
                "{name} belongs to a waybill: correct the waybill with a change request, and the ledger follows"
            ))
            .into());
        }
        if original.kind == "reversal" {
            return Err(Error::Precondition(format!("{name} is itself a reversal and is not reversed")).into());
        }
        Ok((original, postings))
    }

    /// Changes waybill `name` by `command`, once per `request_id`, and returns it as it now is.
    async fn act(
        &self,
        metadata: &MetadataMap,
        name: &str,
        request_id: &str,
        command: Command,
    ) -> Result<pb::Waybill, Error> {
        check_request_id(request_id)?;
        let number = waybill_number(name)?;
        let caller = Caller::from_metadata(metadata);
        let trace = TraceContext::from_metadata(metadata).unwrap_or_else(TraceContext::new_root);
        let request = write::Request { caller: &caller, trace: &trace, request_id: idempotency_key(request_id) };
        let keeper = WaybillKeeper { time_zone: self.context.time_zone };
        if let Acted::Changed(waybill) =
            write::act(&keeper, &self.context, &history_key(number), request, command).await?
        {
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

    async fn record_waybill_inner(
        &self,
        metadata: &MetadataMap,
        request: pb::RecordWaybillRequest,
    ) -> Result<pb::Waybill, Error> {
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
        let waybill = collect_violations(FieldViolations::new(), Waybill::new(&fields, now), &request.request_id)?;
        let caller = Caller::from_metadata(metadata);
        let key = history_key(number);
        let request_id = idempotency_key(&request.request_id);
        let db = &self.context.db;
        if let Some(request_id) = request_id
            && history::has_request(db, &key, request_id).await.map_err(db_error("reading a waybill"))?
        {
            return self.view(number).await;
        }
        let tx = db.begin().await.map_err(db_error("recording a waybill"))?;
        if !store::insert(&tx, &waybill).await.map_err(db_error("recording a waybill"))? {
            return Err(Error::AlreadyExists(format!(
                "waybills/{number} is already recorded; change it with RequestChange"
            )));
        }
        let detail = format!(
            "recorded: shipper {}, branch {}, freight {} ({}), COD {}",
            waybill.shipper,
            waybill.branch,
            yuan(waybill.freight_fen),
            waybill.payment_method.as_str(),
            yuan(waybill.cod_amount_fen)
        );
        let step = history::Step { action: "recorded", actor: caller.user.clone(), time: now, detail: detail.clone() };
        history::record(&tx, &key, request_id, &[step]).await.map_err(db_error("recording a waybill's history"))?;
        post_difference(&tx, format!("{key}/charges"), "waybill_charges", &detail, &BTreeMap::new(), &waybill, now)
            .await?;
        tx.commit().await.map_err(db_error("recording a waybill"))?;
        tracing::info!(waybill = number, "waybill recorded");
        self.view(number).await
    }

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

    async fn case_view(&self, db: &impl ConnectionTrait, case: routed::Model) -> Result<pb::Case, Error> {
        let outcome = store::resolution(db, &case.case_number).await.map_err(db_error("reading a case"))?;
        Ok(case_to_proto(case, outcome))
    }
}

/// How settlement keeps a waybill: in `waybills`, its history under `waybills/{number}`; what a step
/// moves is posted to the ledger, and a remittance answers the waybill's open complaints.
struct WaybillKeeper {
    time_zone: chrono_tz::Tz,
}

impl write::Keeper for WaybillKeeper {
    type Aggregate = Waybill;
    type Version = i32;
    type Command = Command;
    type Effects = Option<Movement>;
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Waybill, Option<i32>), Error> {
        let number = key.strip_prefix("waybills/").unwrap_or(key);
        let stored = store::load(tx, number)
            .await
            .map_err(db_error("reading a waybill"))?
            .ok_or_else(|| Error::NotFound(format!("no waybill named waybills/{number}; record it first")))?;
        Ok((stored.waybill, Some(stored.version)))
    }

    fn apply(
        &self,
        waybill: &mut Waybill,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Option<Movement>>, Error> {
        let applied = waybill.apply(command, caller, now, self.time_zone)?;
        Ok(Applied { steps: vec![applied.step], effects: applied.movement })
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        waybill: &Waybill,
        version: Option<i32>,
        _now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        match version {
            Some(version) => store::save(tx, waybill, version).await,
            None => Ok(false),
        }
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Waybill>,
        movement: Option<Movement>,
    ) -> Result<Vec<write::Message>, Error> {
        let (waybill, now) = (change.after, change.now);
        let Some(step) = change.steps.first() else { return Ok(Vec::new()) };
        if let Some(movement) = &movement {
            let origin = format!("{}/{}", change.key, movement.origin);
            post_difference(tx, origin, movement.kind, &step.detail, &change.before.footprint(), waybill, now).await?;
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

/// Resolves case `case_number` with `text`, in the case's own history under `caller`'s name, and
/// returns the `case_resolved` for intake; `None` if it was resolved before.
async fn resolve(
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

/// Who settlement is when it acts by itself: filing late remittances, answering complaints.
fn system_caller() -> Caller {
    Caller { user: "settlement".into(), department: "settlement".into(), ..Caller::default() }
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

fn waybill_to_proto(stored: &store::Stored, steps: Vec<history::Model>) -> pb::Waybill {
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

fn entry_to_proto(entry: ledger::entry::Model, postings: Vec<ledger::posting::Model>) -> pb::LedgerEntry {
    pb::LedgerEntry {
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
    }
}

fn trial_balance(accounts: Vec<(String, i64)>) -> pb::TrialBalance {
    let debit_total_fen = accounts.iter().map(|(_, fen)| *fen).filter(|fen| *fen > 0).sum();
    let credit_total_fen = accounts.iter().map(|(_, fen)| *fen).filter(|fen| *fen < 0).sum();
    let total_fen = accounts.iter().map(|(_, fen)| *fen).sum();
    pb::TrialBalance {
        accounts: accounts
            .into_iter()
            .map(|(account, balance_fen)| pb::AccountBalance { account, balance_fen })
            .collect(),
        total_fen,
        debit_total_fen,
        credit_total_fen,
    }
}

/// An account name as the ledger writes them: `{kind}:{id}`.
fn check_account(account: &str, field: &str) -> Result<(), Error> {
    let kinds = ["company", "customer", "shipper", "person", "department", "branch", "insurer"];
    match account.split_once(':') {
        Some((kind, id)) if kinds.contains(&kind) && !id.is_empty() && account.len() <= 160 => Ok(()),
        _ => Err(Error::Invalid(FieldViolations::of(
            field,
            "an account like branch:SH01, shipper:S1001, person:B042, company:fines_income",
        ))),
    }
}

#[tonic::async_trait]
impl settlement_server::Settlement for SettlementApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        let db = &self.context.db;
        let case = routed::get_by_name(db, &request.get_ref().name, COLLECTION).await?;
        Ok(Response::new(self.case_view(db, case).await?))
    }

    async fn list_cases(&self, request: Request<pb::ListCasesRequest>) -> Reply<pb::ListCasesResponse> {
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

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> Reply<pb::Case> {
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

    async fn list_ledger_entries(
        &self,
        request: Request<pb::ListLedgerEntriesRequest>,
    ) -> Reply<pb::ListLedgerEntriesResponse> {
        let request = request.into_inner();
        if request.origin_prefix.len() > 160 {
            return Err(kefu_kit::error::invalid_field("origin_prefix", "at most 160 characters"));
        }
        let page_size = kefu_kit::paging::page_size(request.page_size)?;
        let after = kefu_kit::paging::decode_token(&request.page_token, &request.origin_prefix)?;
        let (entries, next) = ledger::list(&self.context.db, &request.origin_prefix, page_size, after)
            .await
            .map_err(|e| kefu_kit::error::from_db("listing the ledger", e))?;
        let entries = entries.into_iter().map(|(entry, postings)| entry_to_proto(entry, postings)).collect();
        let next_page_token =
            next.map(|seq| kefu_kit::paging::encode_token(seq, &request.origin_prefix)).unwrap_or_default();
        Ok(Response::new(pb::ListLedgerEntriesResponse { entries, next_page_token }))
    }

    async fn request_reversal(&self, request: Request<pb::RequestReversalRequest>) -> Reply<pb::ReversalRequest> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let (seq, reason) = reversal_fields(&request.name, &request.reason, "")?;
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let tx = db.begin().await.map_err(db_error("asking for a reversal"))?;
        self.reversible(&tx, seq, &request.name).await?;
        if ledger::by_origin(&tx, &ledger::reversal_origin(seq)).await.map_err(db_error("reading an entry"))?.is_some()
        {
            return Err(Error::Precondition(format!("{} is already reversed", request.name)).into());
        }
        let row = ledger::reversal_request::Model {
            entry_seq: seq,
            requested_by: caller.user.clone(),
            reason: reason.to_owned(),
            request_time: now,
        };
        let active: ledger::reversal_request::ActiveModel = row.clone().into();
        ledger::reversal_request::Entity::insert(active)
            .on_conflict(
                sea_orm::sea_query::OnConflict::column(ledger::reversal_request::Column::EntrySeq)
                    .update_columns([
                        ledger::reversal_request::Column::RequestedBy,
                        ledger::reversal_request::Column::Reason,
                        ledger::reversal_request::Column::RequestTime,
                    ])
                    .to_owned(),
            )
            .exec_without_returning(&tx)
            .await
            .map_err(db_error("asking for a reversal"))?;
        tx.commit().await.map_err(db_error("asking for a reversal"))?;
        tracing::info!(entry = %request.name, by = %caller.user, "reversal asked for");
        Ok(Response::new(pb::ReversalRequest {
            entry: request.name,
            requested_by: row.requested_by,
            reason: row.reason,
            request_time: Some(to_timestamp(now)),
        }))
    }

    async fn reverse_ledger_entry(&self, request: Request<pb::ReverseLedgerEntryRequest>) -> Reply<pb::LedgerEntry> {
        let caller = Caller::from_metadata(request.metadata());
        let request = request.into_inner();
        let (seq, reason) = reversal_fields(&request.name, &request.reason, &request.request_id)?;
        if !caller.is_supervisor() {
            return Err(Error::NotSupervisor(
                "only a supervisor may reverse a ledger entry: the caller's roles do not include supervisor".into(),
            )
            .into());
        }
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let origin = ledger::reversal_origin(seq);
        let tx = db.begin().await.map_err(db_error("reversing an entry"))?;
        let (original, postings) = self.reversible(&tx, seq, &request.name).await?;
        // Already reversed (a retry, or a second supervisor): the reversal there is the answer.
        if ledger::by_origin(&tx, &origin).await.map_err(db_error("reading an entry"))?.is_none() {
            let asked = ledger::reversal_request::Entity::find_by_id(seq)
                .one(&tx)
                .await
                .map_err(db_error("reading a reversal request"))?
                .ok_or_else(|| {
                    Error::Precondition(format!(
                        "no one has asked for {} to be reversed: someone asks with RequestReversal, and another supervisor reverses it",
                        request.name
                    ))
                })?;
            if asked.requested_by == caller.user {
                return Err(Error::NotSupervisor(format!(
                    "four eyes: {} asked for this reversal, so another supervisor decides it",
                    caller.user
                ))
                .into());
            }
            let reversal = ledger::reversal(&original, &postings, reason, &asked.requested_by, &caller.user);
            ledger::post(&tx, &reversal, "", now).await.map_err(db_error("reversing an entry"))?;
            ledger::reversal_request::Entity::delete_by_id(seq)
                .exec(&tx)
                .await
                .map_err(db_error("reversing an entry"))?;
            tracing::info!(entry = %request.name, origin = %original.origin, "entry reversed");
        }
        tx.commit().await.map_err(db_error("reversing an entry"))?;
        let (entry, postings) = ledger::by_origin(db, &origin)
            .await
            .map_err(db_error("reading an entry"))?
            .ok_or_else(|| Error::NotFound(format!("the reversal of {}", request.name)))?;
        Ok(Response::new(entry_to_proto(entry, postings)))
    }

    async fn get_trial_balance(&self, request: Request<pb::GetTrialBalanceRequest>) -> Reply<pb::TrialBalance> {
        let request = request.into_inner();
        if request.account_prefix.len() > 160 {
            return Err(kefu_kit::error::invalid_field("account_prefix", "at most 160 characters"));
        }
        let as_of = time(request.as_of.as_ref(), "as_of")?;
        let accounts = ledger::balances(&self.context.db, as_of, &request.account_prefix)
            .await
            .map_err(db_error("computing balances"))?;
        Ok(Response::new(trial_balance(accounts)))
    }

    async fn get_account_statement(
        &self,
        request: Request<pb::GetAccountStatementRequest>,
    ) -> Reply<pb::AccountStatement> {
        let request = request.into_inner();
        let month = Month::parse(&request.month, self.context.time_zone);
        let account_ok = check_account(&request.account, "account");
        let month = match (month, account_ok) {
            (Ok(month), Ok(())) => month,
            (month, account) => {
                let mut violations = month.err().unwrap_or_default();
                if let Err(Error::Invalid(more)) = account {
                    violations.extend(more);
                }
                return Err(violations.into_status());
            }
        };
        let db = &self.context.db;
        let opening: i64 = ledger::balances(db, Some(month.start), &request.account)
            .await
            .map_err(db_error("computing balances"))?
            .into_iter()
            .filter(|(account, _)| *account == request.account)
            .map(|(_, fen)| fen)
            .sum();
        let postings = ledger::account_postings(db, &request.account, month.start, month.end)
            .await
            .map_err(db_error("reading the account"))?;
        let mut balance = opening;
        let mut csv = String::from("entry,time,origin,kind,memo,amount_fen,balance_fen\n");
        csv.push_str(&format!(",,,opening,,,{opening}\n"));
        let mut lines = Vec::with_capacity(postings.len());
        for (entry, amount_fen) in postings {
            balance += amount_fen;
            let local = entry.create_time.with_timezone(&self.context.time_zone).format("%Y-%m-%d %H:%M:%S");
            csv.push_str(&format!(
                "ledgerEntries/{},{local},{},{},{},{amount_fen},{balance}\n",
                entry.seq,
                csv_field(&entry.origin),
                csv_field(&entry.kind),
                csv_field(&entry.memo)
            ));
            lines.push(pb::StatementLine {
                entry: format!("ledgerEntries/{}", entry.seq),
                origin: entry.origin,
                kind: entry.kind,
                memo: entry.memo,
                time: Some(to_timestamp(entry.create_time)),
                amount_fen,
                balance_fen: balance,
            });
        }
        csv.push_str(&format!(",,,closing,,,{balance}\n"));
        Ok(Response::new(pb::AccountStatement {
            account: request.account,
            month: month.label,
            opening_balance_fen: opening,
            lines,
            closing_balance_fen: balance,
            csv,
        }))
    }

    async fn get_monthly_summary(&self, request: Request<pb::GetMonthlySummaryRequest>) -> Reply<pb::MonthlySummary> {
        let month = Month::parse(&request.get_ref().month, self.context.time_zone).map_err(Error::Invalid)?;
        let db = &self.context.db;
        let moved = ledger::moved_between(db, Some(month.start), Some(month.end))
            .await
            .map_err(db_error("building the summary"))?;
        let mut kinds: BTreeMap<String, (i32, i64)> = BTreeMap::new();
        for (entry, fen) in moved {
            let row = kinds.entry(entry.kind).or_default();
            row.0 += 1;
            row.1 += fen;
        }
        let mut cod_outstanding_fen = 0;
        let mut late_remittances = 0;
        for waybill in store::all(db).await.map_err(db_error("building the summary"))? {
            let (Some(due), true) = (waybill.cod.remit_due_time, waybill.cod_owed()) else { continue };
            let owed_since =
                waybill.cod.collect_time.unwrap_or(due - chrono::Duration::days(i64::from(waybill.cod_remit_days)));
            let open_at_end =
                owed_since < month.end && waybill.cod.remit_time.is_none_or(|remitted| remitted >= month.end);
            if open_at_end {
                cod_outstanding_fen += waybill.cod_amount_fen;
                if due < month.end {
                    late_remittances += 1;
                }
            }
        }
        let closing =
            trial_balance(ledger::balances(db, Some(month.end), "").await.map_err(db_error("computing balances"))?);
        let label = &month.label;
        let mut csv = String::from("month,section,name,entries,amount_fen\n");
        for (kind, (entries, fen)) in &kinds {
            csv.push_str(&format!("{label},movement,{},{entries},{fen}\n", csv_field(kind)));
        }
        csv.push_str(&format!("{label},cod,outstanding,,{cod_outstanding_fen}\n"));
        csv.push_str(&format!("{label},cod,late,{late_remittances},\n"));
        for balance in &closing.accounts {
            csv.push_str(&format!("{label},balance,{},,{}\n", csv_field(&balance.account), balance.balance_fen));
        }
        csv.push_str(&format!("{label},balance,total,,{}\n", closing.total_fen));
        Ok(Response::new(pb::MonthlySummary {
            month: month.label,
            rows: kinds
                .into_iter()
                .map(|(kind, (entries, amount_fen))| pb::SummaryRow { kind, entries, amount_fen })
                .collect(),
            cod_outstanding_fen,
            late_remittances,
            closing: Some(closing),
            csv,
        }))
    }

    async fn reconcile(&self, _request: Request<pb::ReconcileRequest>) -> Reply<pb::Reconciliation> {
        let found = reconcile::reconcile(&self.context.db).await.map_err(db_error("reconciling"))?;
        if !found.problems.is_empty() {
            tracing::error!(problems = found.problems.len(), "reconciliation found problems");
        }
        Ok(Response::new(pb::Reconciliation {
            events_received: found.events_received,
            entries: found.entries,
            waybills: found.waybills,
            problems: found.problems,
        }))
    }

    async fn record_waybill(&self, request: Request<pb::RecordWaybillRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        Ok(Response::new(self.record_waybill_inner(&metadata, request).await?))
    }

    async fn get_waybill(&self, request: Request<pb::GetWaybillRequest>) -> Reply<pb::Waybill> {
        let number = waybill_number(&request.get_ref().name)?;
        Ok(Response::new(self.view(number).await?))
    }

    async fn record_cod_collection(&self, request: Request<pb::RecordCodCollectionRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::CollectCod { time: time(request.collect_time.as_ref(), "collect_time")? };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    async fn record_cod_remittance(&self, request: Request<pb::RecordCodRemittanceRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::RemitCod { time: time(request.remit_time.as_ref(), "remit_time")? };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    async fn list_late_remittances(
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

    async fn report_late_remittances(
        &self,
        _request: Request<pb::ReportLateRemittancesRequest>,
    ) -> Reply<pb::ReportLateRemittancesResponse> {
        Ok(Response::new(pb::ReportLateRemittancesResponse { complaints: self.report_late().await? }))
    }

    async fn request_change(&self, request: Request<pb::RequestChangeRequest>) -> Reply<pb::Waybill> {
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

    async fn approve_change(&self, request: Request<pb::ApproveChangeRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let (number, index) = change_request(&request.name)?;
        let command = Command::ApproveChange { index, reason: request.reason };
        Ok(Response::new(self.act(&metadata, &history_key(number), &request.request_id, command).await?))
    }

    async fn reject_change(&self, request: Request<pb::RejectChangeRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let (number, index) = change_request(&request.name)?;
        let command = Command::RejectChange { index, reason: request.reason };
        Ok(Response::new(self.act(&metadata, &history_key(number), &request.request_id, command).await?))
    }

    async fn record_seizure(&self, request: Request<pb::RecordSeizureRequest>) -> Reply<pb::Waybill> {
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

    async fn record_shipper_notified(&self, request: Request<pb::RecordShipperNotifiedRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::NotifyShipper {
            time: time(request.notify_time.as_ref(), "notify_time")?,
            by: request.notified_by,
        };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    async fn report_seizure_problem(&self, request: Request<pb::ReportSeizureProblemRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::ReportProblem { problem: request.problem };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }

    async fn write_off_seizure(&self, request: Request<pb::WriteOffSeizureRequest>) -> Reply<pb::Waybill> {
        let (metadata, _, request) = request.into_parts();
        let command = Command::WriteOff { original_certificate: request.original_certificate };
        Ok(Response::new(self.act(&metadata, &request.name, &request.request_id, command).await?))
    }
}

/// The entry a reversal names and its reason, checked; every bad field at once.
fn reversal_fields<'a>(name: &str, reason: &'a str, request_id: &str) -> Result<(i64, &'a str), Status> {
    let mut violations = FieldViolations::new();
    let seq = name.strip_prefix("ledgerEntries/").and_then(|seq| seq.parse::<i64>().ok());
    if seq.is_none() {
        violations.add("name", "expected ledgerEntries/{id}");
    }
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        violations.add("reason", "required: why the entry is corrected (at most 500 characters)");
    }
    let seq = collect_violations(violations, seq.ok_or_else(FieldViolations::new), request_id)
        .map_err(|violations| Status::from(Error::Invalid(violations)))?;
    Ok((seq, reason))
}
