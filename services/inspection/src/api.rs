//! `kefu.inspection.v1.Inspection`: proto ⇄ domain, and the one path every change to a case takes
//! ([`InspectionApi::act`]): read, apply the rule, write with the history and the side tables,
//! and queue what the change means for intake and settlement — all in one transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    case_number,
    error::{Failure, FieldViolations, collect_violations, idempotency_key as request_id},
    history, paging, routed,
    server::ServiceContext,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
    write::{self, Acted, Applied},
};
use kefu_proto::inspection::v1::{self as pb, inspection_server};
use sea_orm::{ColumnTrait, DatabaseTransaction, DbErr, EntityTrait, QueryFilter, TransactionTrait};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    COLLECTION,
    case::{Audit, Case, Command, Effect, Kind, Party, Penalty, PenaltyKind, SYSTEM_ACTOR, Share, State},
    error::{Error, db as db_error},
    events::{self, penalty_name},
    policy::InspectionPolicy,
    report, store,
};

pub struct InspectionApi {
    pub context: ServiceContext,
    pub policy: Arc<InspectionPolicy>,
}

type Reply<T> = Result<Response<T>, Status>;

/// How many overdue cases one chase takes at most.
const CHASE_BATCH: u64 = 100;
/// How often the same audit may draw a new case number after a collision.
const CASE_NUMBER_DRAWS: usize = 8;

/// The parsed value, or every violation at once: the parse's and the request id's.
fn checked<T>(parsed: Result<T, FieldViolations>, request_id: &str) -> Result<T, Error> {
    collect_violations(FieldViolations::new(), parsed, request_id).map_err(Error::Invalid)
}

/// The value built while `violations` were collected, if none were found (the request id's too).
fn gathered<T>(value: Option<T>, violations: FieldViolations, request_id: &str) -> Result<T, Error> {
    let parsed = value.filter(|_| violations.is_empty()).ok_or(FieldViolations::new());
    collect_violations(violations, parsed, request_id).map_err(Error::Invalid)
}

fn party(given: Option<pb::Party>, field: &str, violations: &mut FieldViolations) -> Option<Party> {
    let given = given.unwrap_or_default();
    Party::parse(&given.kind, &given.id, field, violations)
}

/// A time the caller gave, if any; `INVALID_ARGUMENT` naming `field` if it is not a sane time.
fn time(given: Option<&prost_types::Timestamp>, field: &str) -> Result<Option<DateTime<Utc>>, FieldViolations> {
    kefu_kit::time::optional_time(given, field)
}

impl InspectionApi {
    /// Changes case `name` by `command`, once per `request_id`, and returns it as it now is.
    async fn act(
        &self,
        metadata: &MetadataMap,
        name: &str,
        request_id: Option<&str>,
        command: Command,
    ) -> Result<pb::Case, Error> {
        let caller = Caller::from_metadata(metadata);
        let trace = TraceContext::from_metadata(metadata).unwrap_or_else(TraceContext::new_root);
        let case_number = routed::parse_name(name, COLLECTION)?;
        self.change(case_number, request_id, command, &caller, &trace).await
    }

    async fn change(
        &self,
        case_number: &str,
        request_id: Option<&str>,
        command: Command,
        caller: &Caller,
        trace: &TraceContext,
    ) -> Result<pb::Case, Error> {
        let request = write::Request { caller, trace, request_id };
        match write::act(&CaseKeeper { policy: &self.policy }, &self.context, case_number, request, command).await? {
            Acted::Changed(case) => self.view(case_number, Some(case)).await,
            Acted::Repeated => self.view(case_number, None).await,
        }
    }

    /// The whole case: the complaint, the record (read unless given) and the history.
    async fn view(&self, case_number: &str, case: Option<Case>) -> Result<pb::Case, Error> {
        let db = &self.context.db;
        let case = match case {
            Some(case) => case,
            None => store::load(db, case_number)
                .await
                .map_err(db_error("reading a case"))?
                .map(|(case, _)| case)
                .ok_or_else(|| Error::NotFound(format!("no case named {COLLECTION}/{case_number}")))?,
        };
        let complaint = routed::get(db, case_number).await.map_err(db_error("reading a case"))?;
        let steps = history::list(db, case_number).await.map_err(db_error("reading a case's history"))?;
        let mut view = case_to_proto(&case, complaint.as_ref(), self.context.clock.now());
        view.history = steps
            .into_iter()
            .map(|step| pb::Step {
                action: step.action,
                actor: step.actor,
                time: Some(to_timestamp(step.time)),
                detail: step.detail,
            })
            .collect();
        Ok(view)
    }

    /// Chases every overdue case not chased for its present deadline; returns their names.
    pub async fn chase_overdue(&self) -> Result<Vec<String>, Error> {
        let now = to_micros(self.context.clock.now());
        let due =
            store::overdue(&self.context.db, now, CHASE_BATCH).await.map_err(db_error("finding overdue cases"))?;
        let caller = Caller { user: SYSTEM_ACTOR.into(), department: SYSTEM_ACTOR.into(), ..Caller::default() };
        let mut chased = Vec::with_capacity(due.len());
        for case_number in due {
            let trace = TraceContext::new_root();
            match self.change(&case_number, None, Command::Chase, &caller, &trace).await {
                Ok(_) => {
                    tracing::warn!(case_number, "overdue case chased");
                    chased.push(format!("{COLLECTION}/{case_number}"));
                }
                // Handled or chased by another request meanwhile.
                Err(Error::Precondition(_) | Error::Failure(Failure::Conflict { .. })) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(chased)
    }

    /// Opens an audit as a case, once per `request_id`.
    async fn open_audit(
        &self,
        audit: Audit,
        branch: String,
        request_id: Option<&str>,
        caller: &Caller,
    ) -> Result<pb::Case, Error> {
        let db = &self.context.db;
        if let Some(request_id) = request_id
            && let Some(existing) =
                store::by_create_request(db, request_id).await.map_err(db_error("reading a case"))?
        {
            return self.view(&existing.case_number.clone(), Some(existing)).await;
        }
        let now = to_micros(self.context.clock.now());
        let keeper = CaseKeeper { policy: &self.policy };
        let trace = TraceContext::new_root();
        for _ in 0..CASE_NUMBER_DRAWS {
            let number = case_number::generate(now, self.context.time_zone);
            let (case, steps) = Case::audit(&number, &branch, audit.clone(), caller, &self.policy, now);
            let applied = Applied { steps, effects: Vec::new() };
            let request = write::Request { caller, trace: &trace, request_id };
            let created = [write::Created { key: &number, aggregate: &case, applied: &applied, request, now }];
            let tx = db.begin().await.map_err(db_error("opening an audit"))?;
            match write::create_all(&keeper, &tx, crate::NAME, &created).await {
                Ok(_) => {
                    tx.commit().await.map_err(db_error("opening an audit"))?;
                    tracing::info!(case_number = number, kind = audit.kind.as_str(), "audit recorded");
                    return self.view(&number, Some(case)).await;
                }
                Err(Error::Failure(failure)) if failure.is_unique_violation() => {
                    drop(tx);
                    if let Some(request_id) = request_id
                        && let Some(existing) =
                            store::by_create_request(db, request_id).await.map_err(db_error("reading a case"))?
                    {
                        return self.view(&existing.case_number.clone(), Some(existing)).await;
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Err(Error::Unavailable("could not draw an unused case number; retry with the same request_id"))
    }
}

fn party_to_proto(party: &Party) -> pb::Party {
    pb::Party { kind: party.kind.as_str().into(), id: party.id.clone() }
}

fn case_to_proto(case: &Case, complaint: Option<&routed::Model>, now: DateTime<Utc>) -> pb::Case {
    let accept_time = complaint.map(|complaint| complaint.accept_time).or(case.findings.as_ref().map(|f| f.time));
    pb::Case {
        name: format!("{COLLECTION}/{}", case.case_number),
        complaint: complaint.map(routed::Model::to_proto),
        accept_time: accept_time.map(to_timestamp),
        kind: match case.kind {
            Kind::Complaint => pb::Kind::Complaint,
            Kind::Audit => pb::Kind::Audit,
        } as i32,
        state: match case.state {
            State::Open => pb::State::Open,
            State::Investigating => pb::State::Investigating,
            State::Decided => pb::State::Decided,
            State::Resolved => pb::State::Resolved,
        } as i32,
        category: case.category.clone(),
        branch: case.branch.clone(),
        deadline: Some(to_timestamp(case.deadline)),
        deadline_reason: case.deadline_reason.clone(),
        overdue: case.is_overdue(now),
        report_request: case.report_request.as_ref().map(|request| pb::WrittenReportRequest {
            from: Some(party_to_proto(&request.from)),
            request_time: Some(to_timestamp(request.time)),
            due_time: Some(to_timestamp(request.due)),
        }),
        written_report: case.report.as_ref().map(|report| pb::WrittenReport {
            author: Some(party_to_proto(&report.author)),
            content: report.content.clone(),
            submit_time: Some(to_timestamp(report.time)),
        }),
        findings: case.findings.as_ref().map(|findings| pb::Findings {
            facts: findings.facts.clone(),
            evidence: findings.evidence.clone(),
            recorded_by: findings.recorded_by.clone(),
            record_time: Some(to_timestamp(findings.time)),
        }),
        responsibility: case
            .responsibility
            .iter()
            .flatten()
            .map(|share| pb::ResponsibleShare {
                party: Some(party_to_proto(&share.party)),
                share_percent: share.percent,
            })
            .collect(),
        responsibility_divided: case.responsibility.is_some(),
        decision: case.decision.as_ref().map(|decision| pb::Decision {
            penalties: decision
                .penalties
                .iter()
                .enumerate()
                .map(|(index, penalty)| pb::Penalty {
                    name: penalty_name(&case.case_number, index),
                    party: Some(party_to_proto(&penalty.party)),
                    kind: match penalty.kind {
                        PenaltyKind::Fine => pb::PenaltyKind::Fine,
                        PenaltyKind::Warning => pb::PenaltyKind::Warning,
                        PenaltyKind::Criticism => pb::PenaltyKind::CirculatedCriticism,
                        PenaltyKind::AwardVeto => pb::PenaltyKind::AwardVeto,
                    } as i32,
                    violation: penalty.violation.clone(),
                    amount_fen: penalty.amount_fen,
                    note: penalty.note.clone(),
                })
                .collect(),
            note: decision.note.clone(),
            decided_by: decision.decided_by.clone(),
            decide_time: Some(to_timestamp(decision.time)),
        }),
        rectifications: case
            .rectifications
            .iter()
            .map(|rectification| pb::Rectification {
                unit: Some(party_to_proto(&rectification.unit)),
                task: rectification.task.clone(),
                due_time: Some(to_timestamp(rectification.due)),
                state: if rectification.done { pb::RectificationState::Done } else { pb::RectificationState::Pending }
                    as i32,
                checks: rectification
                    .checks
                    .iter()
                    .map(|check| pb::RectificationCheck {
                        done: check.done,
                        note: check.note.clone(),
                        checked_by: check.checked_by.clone(),
                        check_time: Some(to_timestamp(check.time)),
                    })
                    .collect(),
            })
            .collect(),
        incident: case.incident.as_ref().map(|incident| pb::Incident {
            first_complaint: incident.first_complaint.clone(),
            reason: incident.reason.as_str().into(),
            escalated_to: incident.escalated_to.clone(),
            escalate_time: Some(to_timestamp(incident.time)),
        }),
        resolution: case.resolution.clone().unwrap_or_default(),
        resolve_time: case.resolve_time.map(to_timestamp),
        history: Vec::new(),
        audit: case.audit.as_ref().map(|audit| pb::Audit {
            kind: audit.kind.as_str().into(),
            branch: case.branch.clone(),
            subject: audit.subject.clone(),
            findings: audit.findings.clone(),
        }),
    }
}

/// `state=open AND overdue=true AND incident=true AND kind=audit`.
fn parse_filter(filter: &str, now: DateTime<Utc>) -> Result<Vec<store::Term>, Status> {
    let refuse = |message: String| kefu_kit::error::invalid_field("filter", message);
    let filter = filter.trim();
    if filter.len() > 200 {
        return Err(refuse("at most 200 characters".into()));
    }
    let mut terms = Vec::new();
    for term in filter.split(" AND ").map(str::trim).filter(|term| !term.is_empty()) {
        let (field, value) = term
            .split_once('=')
            .ok_or_else(|| refuse(format!("expected field=value in {term:?}; terms are joined by AND")))?;
        let value = value.trim().trim_matches('"').to_ascii_lowercase();
        let flag = || match value.as_str() {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(refuse(format!("{field} is true or false, not {value:?}"))),
        };
        terms.push(match field.trim() {
            "state" => store::Term::State(match value.as_str() {
                "open" => State::Open,
                "investigating" => State::Investigating,
                "decided" => State::Decided,
                "resolved" => State::Resolved,
                _ => {
                    return Err(refuse(format!(
                        "unknown state {value:?}; states are open, investigating, decided, resolved"
                    )));
                }
            }),
            "kind" => store::Term::Kind(match value.as_str() {
                "complaint" => Kind::Complaint,
                "audit" => Kind::Audit,
                _ => return Err(refuse(format!("unknown kind {value:?}; kinds are complaint and audit"))),
            }),
            "incident" => store::Term::Incident(flag()?),
            "overdue" if flag()? => store::Term::OverdueAt(now),
            "overdue" => return Err(refuse("overdue=false is not supported; leave the term out".into())),
            other => {
                return Err(refuse(format!("unknown field {other:?}; filter by state, kind, incident or overdue")));
            }
        });
    }
    Ok(terms)
}

/// How inspection keeps a case: in `cases`, with its responsibility and penalties beside it, and
/// what the change means for intake and settlement sent as events.
struct CaseKeeper<'a> {
    policy: &'a InspectionPolicy,
}

impl write::Keeper for CaseKeeper<'_> {
    type Aggregate = Case;
    type Version = i32;
    type Command = Command;
    type Effects = Vec<Effect>;
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Case, Option<i32>), Error> {
        let (case, version) = store::load(tx, key)
            .await
            .map_err(db_error("reading a case"))?
            .ok_or_else(|| Error::NotFound(format!("no case named {COLLECTION}/{key}")))?;
        Ok((case, Some(version)))
    }

    /// A division of responsibility learns whether the same party was found responsible before,
    /// within the recurrence window (a recurrence is fined more).
    async fn prepare(
        &self,
        tx: &DatabaseTransaction,
        case: &Case,
        command: Command,
        now: DateTime<Utc>,
    ) -> Result<Command, Error> {
        Ok(match command {
            Command::DivideResponsibility { shares, .. } => {
                let since = now - self.policy.recurrence_window;
                let recurs =
                    store::recurrence(tx, case, &shares, since).await.map_err(db_error("looking for recurrences"))?;
                Command::DivideResponsibility { shares, recurs }
            }
            command => command,
        })
    }

    fn apply(
        &self,
        case: &mut Case,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<Vec<Effect>>, Error> {
        let (steps, effects) = case.apply(command, caller, now, self.policy)?;
        Ok(Applied { steps, effects })
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        _before: &Case,
        case: &Case,
        version: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        match version {
            Some(version) => store::save(tx, case, version, now).await,
            None => Ok(false),
        }
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Case>,
        effects: Vec<Effect>,
    ) -> Result<Vec<write::Message>, Error> {
        let (before, case, now) = (change.before, change.after, change.now);
        // Every division is kept (a later one supersedes, the register keeps both).
        if change.steps.iter().any(|step| step.action == "responsibility_divided") {
            let shares = case.responsibility.as_deref().unwrap_or_default();
            store::add_responsibility(tx, case, shares, now).await.map_err(db_error("recording responsibility"))?;
        }
        if before.decision.is_none() && case.decision.is_some() {
            store::add_penalties(tx, case).await.map_err(db_error("recording penalties"))?;
        }
        for effect in &effects {
            match effect {
                Effect::Escalated => tracing::warn!(case_number = change.key, "incident escalated"),
                Effect::Fined(fines) => {
                    tracing::info!(case_number = change.key, fines = fines.len(), "fines sent to settlement")
                }
                _ => {}
            }
        }
        events::messages(tx, case, &effects, now).await.map_err(db_error("reading a case's history"))
    }

    fn describe(&self, key: &str) -> String {
        format!("{COLLECTION}/{key}")
    }
}

/// An audit opened by inspection itself is a new case, written on the kit's path for new
/// aggregates; it sends nothing.
impl write::Batch for CaseKeeper<'_> {
    async fn insert_all(&self, tx: &DatabaseTransaction, created: &[write::Created<'_, Self>]) -> Result<(), DbErr> {
        for item in created {
            store::insert(tx, &[item.aggregate], item.request.request_id, item.now).await?;
        }
        Ok(())
    }

    async fn record_all(
        &self,
        _tx: &DatabaseTransaction,
        created: &[write::Created<'_, Self>],
    ) -> Result<Vec<Vec<write::Message>>, Error> {
        Ok(created.iter().map(|_| Vec::new()).collect())
    }
}

#[tonic::async_trait]
impl inspection_server::Inspection for InspectionApi {
    async fn get_case(&self, request: Request<pb::GetCaseRequest>) -> Reply<pb::Case> {
        let case_number = routed::parse_name(&request.get_ref().name, COLLECTION)?;
        Ok(Response::new(self.view(case_number, None).await?))
    }

    async fn list_cases(&self, request: Request<pb::ListCasesRequest>) -> Reply<pb::ListCasesResponse> {
        let request = request.into_inner();
        let db = &self.context.db;
        let now = to_micros(self.context.clock.now());
        let page_size = paging::page_size(request.page_size)?;
        let terms = parse_filter(&request.filter, now)?;
        let after = paging::decode_token(&request.page_token, &request.filter)?;
        let (cases, next) = store::list(db, &terms, page_size, after).await.map_err(db_error("listing cases"))?;
        let numbers: Vec<&str> = cases.iter().map(|case| case.case_number.as_str()).collect();
        let complaints = routed::Entity::find()
            .filter(routed::Column::CaseNumber.is_in(numbers))
            .all(db)
            .await
            .map_err(db_error("listing cases"))?;
        let cases = cases
            .iter()
            .map(|case| {
                let complaint = complaints.iter().find(|complaint| complaint.case_number == case.case_number);
                case_to_proto(case, complaint, now)
            })
            .collect();
        let next_page_token = next.map(|seq| paging::encode_token(seq, &request.filter)).unwrap_or_default();
        Ok(Response::new(pb::ListCasesResponse { cases, next_page_token }))
    }

    async fn request_written_report(&self, request: Request<pb::RequestWrittenReportRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let from = party(request.from, "from", &mut violations);
        let from = gathered(from, violations, &request.request_id)?;
        let command = Command::RequestReport { from };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn record_written_report(&self, request: Request<pb::RecordWrittenReportRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let author = party(request.author, "author", &mut violations);
        let author = gathered(author, violations, &request.request_id)?;
        let command = Command::RecordReport { author, content: request.content };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn record_findings(&self, request: Request<pb::RecordFindingsRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = Command::RecordFindings { facts: request.facts, evidence: request.evidence };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn divide_responsibility(&self, request: Request<pb::DivideResponsibilityRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let shares: Vec<Option<Share>> = request
            .shares
            .into_iter()
            .enumerate()
            .map(|(index, share)| {
                let party = party(share.party, &format!("shares[{index}].party"), &mut violations)?;
                Some(Share { party, percent: share.share_percent })
            })
            .collect();
        let shares = gathered(shares.into_iter().collect(), violations, &request.request_id)?;
        let command = Command::DivideResponsibility { shares, recurs: None };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn decide_penalties(&self, request: Request<pb::DecidePenaltiesRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let penalties: Vec<Option<Penalty>> = request
            .penalties
            .into_iter()
            .enumerate()
            .map(|(index, given)| {
                let party = party(given.party, &format!("penalties[{index}].party"), &mut violations);
                let kind = match pb::PenaltyKind::try_from(given.kind) {
                    Ok(pb::PenaltyKind::Fine) => Some(PenaltyKind::Fine),
                    Ok(pb::PenaltyKind::Warning) => Some(PenaltyKind::Warning),
                    Ok(pb::PenaltyKind::CirculatedCriticism) => Some(PenaltyKind::Criticism),
                    Ok(pb::PenaltyKind::AwardVeto) => Some(PenaltyKind::AwardVeto),
                    Ok(pb::PenaltyKind::Unspecified) | Err(_) => {
                        violations
                            .add(format!("penalties[{index}].kind"), "required: FINE, WARNING or CIRCULATED_CRITICISM");
                        None
                    }
                };
                Some(Penalty {
                    party: party?,
                    kind: kind?,
                    violation: given.violation,
                    amount_fen: given.amount_fen,
                    note: given.note,
                })
            })
            .collect();
        let penalties = gathered(penalties.into_iter().collect(), violations, &request.request_id)?;
        let command = Command::Decide { penalties, note: request.note };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn assign_rectification(&self, request: Request<pb::AssignRectificationRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let mut violations = FieldViolations::new();
        let unit = party(request.unit, "unit", &mut violations);
        let due = time(request.due_time.as_ref(), "due_time")?;
        if due.is_none() {
            violations.add("due_time", "required: when the rectification must be done");
        }
        let (unit, due) = gathered(unit.zip(due), violations, &request.request_id)?;
        let command = Command::AssignRectification { unit, task: request.task, due };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn check_rectification(&self, request: Request<pb::CheckRectificationRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let index = usize::try_from(request.rectification).unwrap_or(usize::MAX);
        let command = Command::CheckRectification {
            index,
            done: request.done,
            note: request.note,
            new_due: time(request.new_due_time.as_ref(), "new_due_time")?,
        };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn resolve_case(&self, request: Request<pb::ResolveCaseRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = Command::Resolve { resolution: request.resolution };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn create_audit(&self, request: Request<pb::CreateAuditRequest>) -> Reply<pb::Case> {
        let (metadata, _, request) = request.into_parts();
        let caller = Caller::from_metadata(&metadata);
        let given = request.audit.unwrap_or_default();
        let branch = given.branch.trim().to_owned();
        let audit = checked(Audit::parse(&given.kind, &branch, given.subject, given.findings), &request.request_id)?;
        Ok(Response::new(self.open_audit(audit, branch, request_id(&request.request_id), &caller).await?))
    }

    async fn chase_overdue_cases(
        &self,
        _request: Request<pb::ChaseOverdueCasesRequest>,
    ) -> Reply<pb::ChaseOverdueCasesResponse> {
        Ok(Response::new(pb::ChaseOverdueCasesResponse { chased: self.chase_overdue().await? }))
    }

    async fn list_violations(&self, _request: Request<pb::ListViolationsRequest>) -> Reply<pb::ListViolationsResponse> {
        let violations = self
            .policy
            .violations
            .values()
            .map(|violation| {
                let (min_fen, max_fen) = violation.range_fen.unwrap_or((0, 0));
                pb::Violation {
                    code: violation.code.clone(),
                    min_fen,
                    max_fen,
                    source: violation.source.clone(),
                    description: violation.description.clone(),
                }
            })
            .collect();
        Ok(Response::new(pb::ListViolationsResponse { violations }))
    }

    async fn get_monthly_report(&self, request: Request<pb::GetMonthlyReportRequest>) -> Reply<pb::MonthlyReport> {
        let month = report::Month::parse(&request.get_ref().month, self.context.time_zone).map_err(Error::Invalid)?;
        let db = &self.context.db;
        let penalties =
            store::penalties_between(db, month.start, month.end).await.map_err(db_error("building the report"))?;
        let decided =
            store::decided_between(db, month.start, month.end).await.map_err(db_error("building the report"))?;
        let report = report::build(&month, decided, &penalties);
        let rows = report
            .rows
            .iter()
            .map(|((kind, id), row)| pb::ReportRow {
                party: Some(pb::Party { kind: kind.as_str().into(), id: id.clone() }),
                fines: row.fines,
                fines_fen: row.fines_fen,
                warnings: row.warnings,
                criticisms: row.criticisms,
                incidents: row.incidents,
                veto: row.veto,
            })
            .collect();
        Ok(Response::new(pb::MonthlyReport {
            month: report.month.clone(),
            cases_decided: report.cases_decided,
            incidents: report.incidents,
            fines: report.fines,
            fines_fen: report.fines_fen,
            warnings: report.warnings,
            criticisms: report.criticisms,
            vetoes: report.vetoes,
            rows,
            csv: report::to_csv(&report),
        }))
    }
}
