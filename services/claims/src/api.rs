//! `kefu.claims.v1.Claims`: proto ⇄ domain, and the one path every change to a claim takes
//! ([`ClaimsApi::act`]): read, apply the rule, write with the history, and — when the claim is
//! approved — queue the payout for settlement and the result for intake in the same transaction.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use kefu_kit::{
    caller::Caller,
    config::ServiceName,
    error::{FieldViolations, collect_violations, idempotency_key as request_id},
    history, routed,
    server::ServiceContext,
    time::{to_micros, to_timestamp},
    trace::TraceContext,
    write::{self, Acted, Applied},
};
use kefu_proto::{
    claims::v1::{self as pb, claims_server},
    events::v1::{CaseResolved, ClaimApproved, InsurerRecoveryRecorded, event::Payload},
    types::v1::CasePayment,
};
use sea_orm::{DatabaseTransaction, DbErr};
use tonic::{Request, Response, Status, metadata::MetadataMap};

use crate::{
    COLLECTION,
    claim::{Claim, Command, InsurerRecovery, Investigation, State},
    compensation::{self, Facts, Yuan},
    convert,
    error::{Error, db as db_error},
    evidence::{self, NewEvidence},
    policy::CompensationPolicy,
    report, store,
};

pub struct ClaimsApi {
    pub context: ServiceContext,
    pub policy: Arc<CompensationPolicy>,
    /// What a claim holds and a principal attaches in a day, at most (`kit::limits`).
    pub evidence_quota: kefu_kit::limits::EvidenceQuota,
}

type Reply<T> = Result<Response<T>, Status>;

impl ClaimsApi {
    /// Changes the claim `name` by `command`, once per `request_id`, and returns it as it now is.
    async fn act(
        &self,
        metadata: &MetadataMap,
        name: &str,
        request_id: Option<&str>,
        command: Command,
    ) -> Result<pb::Claim, Error> {
        let caller = Caller::from_metadata(metadata);
        let trace = TraceContext::from_metadata(metadata).unwrap_or_else(TraceContext::new_root);
        let case_number = routed::parse_name(name, COLLECTION)?;
        let case = self.case(case_number, name).await?;
        let keeper = ClaimKeeper { policy: &self.policy, case: &case, name };
        let request = write::Request { caller: &caller, trace: &trace, request_id };
        match write::act(&keeper, &self.context, case_number, request, command).await? {
            Acted::Changed(claim) => self.view(case, Some(claim)).await,
            Acted::Repeated => self.view(case, None).await,
        }
    }

    /// The routed complaint behind claim `name`, or `NOT_FOUND`.
    async fn case(&self, case_number: &str, name: &str) -> Result<routed::Model, Error> {
        routed::get(&self.context.db, case_number)
            .await
            .map_err(db_error("reading a claim"))?
            .ok_or_else(|| Error::NotFound(format!("no claim named {name}")))
    }

    /// The whole claim: the complaint, the record (read unless given), the evidence and the history.
    async fn view(&self, case: routed::Model, claim: Option<Claim>) -> Result<pb::Claim, Error> {
        let db = &self.context.db;
        let claim = match claim {
            Some(claim) => Some(claim),
            None => {
                store::load(db, &case.case_number).await.map_err(db_error("reading a claim"))?.map(|(claim, _)| claim)
            }
        };
        let evidence = store::evidence(db, &case.case_number).await.map_err(db_error("reading evidence"))?;
        let steps = history::list(db, &case.case_number).await.map_err(db_error("reading a claim's history"))?;
        let mut view = claim_to_proto(&case, claim.as_ref(), &self.policy);
        view.evidence = evidence.into_iter().map(evidence_to_proto).collect();
        view.history = steps
            .into_iter()
            .map(|step| pb::ClaimStep {
                action: step.action,
                actor: step.actor,
                time: Some(to_timestamp(step.time)),
                detail: step.detail,
            })
            .collect();
        Ok(view)
    }
}

/// How claims keeps a claim: in `claims`, opened on the first command; an approval queues the
/// payout for settlement and the result for intake, an insurer's part goes to settlement.
struct ClaimKeeper<'a> {
    policy: &'a CompensationPolicy,
    /// The routed complaint the claim is about.
    case: &'a routed::Model,
    /// `claims/{case_number}`.
    name: &'a str,
}

impl write::Keeper for ClaimKeeper<'_> {
    type Aggregate = Claim;
    type Version = i32;
    type Command = Command;
    type Effects = ();
    type Error = Error;

    async fn load(&self, tx: &DatabaseTransaction, key: &str) -> Result<(Claim, Option<i32>), Error> {
        Ok(match store::load(tx, key).await.map_err(db_error("reading a claim"))? {
            Some((claim, version)) => (claim, Some(version)),
            None => (Claim::open(key), None),
        })
    }

    fn apply(
        &self,
        claim: &mut Claim,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
    ) -> Result<Applied<()>, Error> {
        Ok(Applied { steps: claim.apply(command, caller, now, self.policy)?, effects: () })
    }

    async fn save(
        &self,
        tx: &DatabaseTransaction,
        _before: &Claim,
        claim: &Claim,
        version: Option<i32>,
        now: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        store::save(tx, claim, version, now).await
    }

    async fn record(
        &self,
        tx: &DatabaseTransaction,
        change: write::Change<'_, Claim>,
        (): (),
    ) -> Result<Vec<write::Message>, Error> {
        let (before, claim, now) = (change.before, change.after, change.now);
        let mut messages = Vec::new();
        if before.state != State::Approved && claim.state == State::Approved {
            let (payout, mut resolved) = settled(self.case, claim, self.name, now);
            if let Payload::CaseResolved(resolved) = &mut resolved {
                resolved.steps = history::story(tx, change.key, ServiceName::Claims)
                    .await
                    .map_err(db_error("reading a claim's history"))?;
            }
            messages.push((ServiceName::Settlement, payout));
            messages.push((ServiceName::Intake, resolved));
            tracing::info!(claim = self.name, amount_fen = claim.agreed_amount_fen, "claim approved");
        }
        if claim.insurer_recovery != before.insurer_recovery
            && let Some(after) = &claim.insurer_recovery
        {
            let before = before.insurer_recovery.clone().unwrap_or_default();
            let recorded = InsurerRecoveryRecorded {
                claim: self.name.to_owned(),
                before_insurer: before.insurer,
                before_claimed_fen: before.claimed_fen,
                before_recovered_fen: before.recovered_fen,
                insurer: after.insurer.clone(),
                claimed_fen: after.claimed_fen,
                recovered_fen: after.recovered_fen,
                record_time: Some(to_timestamp(now)),
            };
            messages.push((ServiceName::Settlement, Payload::InsurerRecoveryRecorded(recorded)));
        }
        Ok(messages)
    }

    fn describe(&self, _key: &str) -> String {
        format!("the claim {}", self.name)
    }
}

/// The events of an approved claim: the payout (and deduction) for settlement, the result for intake.
fn settled(case: &routed::Model, claim: &Claim, name: &str, now: DateTime<Utc>) -> (Payload, Payload) {
    let complaint = format!("complaints/{}", case.case_number);
    let (kind, id) = claim
        .investigation
        .as_ref()
        .map(|i| (i.party_kind.as_str().to_owned(), i.party_id.clone()))
        .unwrap_or_else(|| ("company".into(), String::new()));
    let payout = ClaimApproved {
        claim: name.to_owned(),
        complaint: complaint.clone(),
        waybill_number: case.waybill_number.clone(),
        branch: case.branch.clone(),
        amount_fen: claim.agreed_amount_fen,
        responsible_kind: kind,
        responsible_id: id,
        responsible_share_fen: claim.responsible_share_fen,
        approve_time: Some(to_timestamp(now)),
    };
    let resolved = CaseResolved {
        complaint,
        owner: ServiceName::Claims.as_str().into(),
        owner_reference: name.to_owned(),
        resolution: format!(
            "compensation of {} agreed with the customer and approved; settlement pays it",
            Yuan(claim.agreed_amount_fen)
        ),
        resolve_time: Some(to_timestamp(now)),
        steps: Vec::new(),
        payments: vec![CasePayment {
            kind: "compensation".into(),
            party: "customer".into(),
            amount_fen: claim.agreed_amount_fen,
            time: Some(to_timestamp(now)),
        }],
    };
    (Payload::ClaimApproved(payout), Payload::CaseResolved(resolved))
}

fn claim_to_proto(case: &routed::Model, claim: Option<&Claim>, policy: &CompensationPolicy) -> pb::Claim {
    let mut view = pb::Claim {
        name: format!("{COLLECTION}/{}", case.case_number),
        complaint: Some(case.to_proto()),
        accept_time: Some(to_timestamp(case.accept_time)),
        state: pb::State::Open as i32,
        ..Default::default()
    };
    let Some(claim) = claim else { return view };
    view.state = match claim.state {
        State::Open => pb::State::Open,
        State::Negotiating => pb::State::Negotiating,
        State::AwaitingApproval => pb::State::AwaitingApproval,
        State::Approved => pb::State::Approved,
    } as i32;
    view.facts = claim.facts.as_ref().map(|facts| pb::ClaimFacts {
        claimant: claim.claimant.clone(),
        goods: claim.goods.clone(),
        compensation: Some(convert::facts_to_proto(facts)),
    });
    view.quote = claim.quote.as_ref().map(convert::quote_to_proto);
    view.missing_documents = claim.missing_documents.iter().map(|document| (*document).to_owned()).collect();
    view.investigation = claim.investigation.as_ref().map(|investigation| pb::Investigation {
        findings: investigation.findings.clone(),
        responsible_party: Some(pb::ResponsibleParty {
            kind: investigation.party_kind.as_str().into(),
            id: investigation.party_id.clone(),
        }),
        share_percent: investigation.share_percent,
    });
    view.offer_fen = claim.offer_fen;
    view.counter_offer_fen = claim.counter_offer_fen;
    view.agreed_amount_fen = claim.agreed_amount_fen;
    if claim.state == State::AwaitingApproval {
        view.approval_reasons = claim.approval_reasons(claim.agreed_amount_fen, policy);
    }
    view.approval = claim.approval.as_ref().map(|approval| pb::Approval {
        approved_by: approval.approved_by.clone(),
        reason: approval.reason.clone(),
        approve_time: Some(to_timestamp(approval.time)),
    });
    view.responsible_share_fen = claim.responsible_share_fen;
    view.insurer_recovery = claim.insurer_recovery.as_ref().map(|recovery| pb::InsurerRecovery {
        insurer: recovery.insurer.clone(),
        claimed_fen: recovery.claimed_fen,
        recovered_fen: recovery.recovered_fen,
    });
    view
}

fn evidence_to_proto(info: store::EvidenceInfo) -> pb::Evidence {
    pb::Evidence {
        name: format!("{COLLECTION}/{}/evidence/{}", info.case_number, info.seq),
        kind: info.kind,
        file_name: info.file_name,
        media_type: info.media_type,
        content: Vec::new(),
        size_bytes: info.size_bytes,
        sha256: info.sha256,
        uploaded_by: info.uploaded_by,
        create_time: Some(to_timestamp(info.create_time)),
    }
}

/// The parsed value, or every violation at once: `found` earlier, the parse's, the request id's.
fn checked_with<T>(found: FieldViolations, parsed: Result<T, FieldViolations>, request_id: &str) -> Result<T, Error> {
    collect_violations(found, parsed, request_id).map_err(Error::Invalid)
}

fn checked<T>(parsed: Result<T, FieldViolations>, request_id: &str) -> Result<T, Error> {
    checked_with(FieldViolations::new(), parsed, request_id)
}

#[tonic::async_trait]
impl claims_server::Claims for ClaimsApi {
    async fn quote_compensation(&self, request: Request<pb::QuoteCompensationRequest>) -> Reply<pb::CompensationQuote> {
        let facts = Facts::parse(convert::unchecked_facts(request.get_ref()), "").map_err(Error::Invalid)?;
        let quote = compensation::quote(&facts, &self.policy).map_err(Error::from)?;
        Ok(Response::new(convert::quote_to_proto(&quote)))
    }

    async fn get_claim(&self, request: Request<pb::GetClaimRequest>) -> Reply<pb::Claim> {
        let name = &request.get_ref().name;
        let case_number = routed::parse_name(name, COLLECTION)?;
        let case = self.case(case_number, name).await?;
        Ok(Response::new(self.view(case, None).await?))
    }

    /// Each claim without its evidence and history (GetClaim has them).
    async fn list_claims(&self, request: Request<pb::ListClaimsRequest>) -> Reply<pb::ListClaimsResponse> {
        let request = request.into_inner();
        let db = &self.context.db;
        let (cases, next_page_token) = routed::list_page(db, request.page_size, &request.page_token).await?;
        let numbers: Vec<&str> = cases.iter().map(|case| case.case_number.as_str()).collect();
        let claims = store::load_many(db, &numbers).await.map_err(db_error("listing claims"))?;
        let claims =
            cases.iter().map(|case| claim_to_proto(case, claims.get(&case.case_number), &self.policy)).collect();
        Ok(Response::new(pb::ListClaimsResponse { claims, next_page_token }))
    }

    async fn record_claim_facts(&self, request: Request<pb::RecordClaimFactsRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        let facts = request.facts.unwrap_or_default();
        let mut violations = FieldViolations::new();
        if facts.claimant.trim().is_empty() || facts.claimant.chars().count() > 128 {
            violations.add("facts.claimant", "required: who claims, at most 128 characters");
        }
        if facts.goods.trim().is_empty() || facts.goods.chars().count() > 1_000 {
            violations.add("facts.goods", "required: what the goods are, at most 1000 characters");
        }
        let parsed =
            Facts::parse(convert::unchecked_facts(&facts.compensation.unwrap_or_default()), "facts.compensation.");
        let command = Command::RecordFacts {
            claimant: facts.claimant,
            goods: facts.goods,
            facts: checked_with(violations, parsed, &request.request_id)?,
        };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn attach_evidence(&self, request: Request<pb::AttachEvidenceRequest>) -> Reply<pb::Evidence> {
        let (metadata, _, request) = request.into_parts();
        let caller = Caller::from_metadata(&metadata);
        let given = request.evidence.unwrap_or_default();
        let new = checked(
            NewEvidence::parse(given.kind, given.file_name, given.media_type, given.content),
            &request.request_id,
        )?;
        let case_number = routed::parse_name(&request.parent, COLLECTION)
            .map_err(|_| kefu_kit::error::invalid_field("parent", format!("expected {COLLECTION}/{{case_number}}")))?;
        self.case(case_number, &request.parent).await?;
        let db = &self.context.db;
        let request_id = request_id(&request.request_id);
        let existing = store::existing_evidence(db, case_number, &new.sha256, request_id);
        if let Some(info) = existing.await.map_err(db_error("reading evidence"))? {
            return Ok(Response::new(evidence_to_proto(info)));
        }
        let now = to_micros(self.context.clock.now());
        let day = evidence::company_day(now, self.context.time_zone);
        let attached =
            store::attach_evidence(db, case_number, request_id, new, &caller.user, now, &self.evidence_quota, day)
                .await
                .map_err(db_error("attaching evidence"))?;
        match attached {
            Ok(info) => Ok(Response::new(evidence_to_proto(info))),
            Err(exceeded) => {
                let subject =
                    if exceeded.is_daily() { format!("principal:{}", caller.user) } else { request.parent.clone() };
                let message = exceeded.message(day.1.with_timezone(&self.context.time_zone));
                tracing::info!(claim = %case_number, quota = ?exceeded, "evidence refused over its quota");
                Err(Error::Quota { subject, message }.into())
            }
        }
    }

    async fn get_evidence(&self, request: Request<pb::GetEvidenceRequest>) -> Reply<pb::Evidence> {
        let name = &request.get_ref().name;
        let parsed = name.strip_prefix("claims/").and_then(|rest| rest.split_once("/evidence/")).and_then(
            |(case_number, seq)| {
                kefu_kit::case_number::is_well_formed(case_number).then_some(())?;
                Some((case_number, seq.parse::<i64>().ok()?))
            },
        );
        let Some((case_number, seq)) = parsed else {
            return Err(kefu_kit::error::invalid_field("name", "expected claims/{case_number}/evidence/{id}"));
        };
        let row = store::evidence_content(&self.context.db, case_number, seq)
            .await
            .map_err(db_error("reading evidence"))?
            .ok_or_else(|| Error::NotFound(format!("no evidence named {name}")))?;
        let content = row.content.clone();
        Ok(Response::new(pb::Evidence { content, ..evidence_to_proto(row.into()) }))
    }

    async fn record_investigation(&self, request: Request<pb::RecordInvestigationRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        let given = request.investigation.unwrap_or_default();
        let party = given.responsible_party.unwrap_or_default();
        let investigation = Investigation::parse(given.findings, &party.kind, party.id, given.share_percent);
        let command = Command::RecordInvestigation(checked(investigation, &request.request_id)?);
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn make_offer(&self, request: Request<pb::MakeOfferRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = Command::MakeOffer { amount_fen: request.amount_fen, note: request.note };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn record_customer_response(&self, request: Request<pb::RecordCustomerResponseRequest>) -> Reply<pb::Claim> {
        use pb::record_customer_response_request::Response as Answer;
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = match request.response {
            Some(Answer::Accept(true)) => Command::Accept { note: request.note },
            Some(Answer::CounterOfferFen(amount_fen)) => Command::Counter { amount_fen, note: request.note },
            Some(Answer::Accept(false)) | None => {
                return Err(kefu_kit::error::invalid_field(
                    "response",
                    "required: accept = true, or counter_offer_fen with the amount the customer asks",
                ));
            }
        };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn approve_claim(&self, request: Request<pb::ApproveClaimRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = Command::Approve { reason: request.reason };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn refuse_claim(&self, request: Request<pb::RefuseClaimRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        checked(Ok(()), &request.request_id)?;
        let command = Command::Refuse { reason: request.reason };
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn record_insurer_recovery(&self, request: Request<pb::RecordInsurerRecoveryRequest>) -> Reply<pb::Claim> {
        let (metadata, _, request) = request.into_parts();
        let given = request.insurer_recovery.unwrap_or_default();
        let recovery = InsurerRecovery::parse(given.insurer, given.claimed_fen, given.recovered_fen);
        let command = Command::RecordInsurerRecovery(checked(recovery, &request.request_id)?);
        Ok(Response::new(self.act(&metadata, &request.name, request_id(&request.request_id), command).await?))
    }

    async fn get_monthly_claims_report(
        &self,
        request: Request<pb::GetMonthlyClaimsReportRequest>,
    ) -> Reply<pb::MonthlyClaimsReport> {
        let month = report::Month::parse(&request.get_ref().month, self.context.time_zone).map_err(Error::Invalid)?;
        let db = &self.context.db;
        let approved =
            store::approved_between(db, month.start, month.end).await.map_err(db_error("building the report"))?;
        let opened =
            store::opened_between(db, month.start, month.end).await.map_err(db_error("building the report"))?;
        let report = report::build(&month, opened as i64, &approved);
        let rows = |index: usize| {
            report.breakdowns[index]
                .1
                .iter()
                .map(|(key, totals)| pb::ReportRow {
                    key: key.clone(),
                    claims: totals.claims,
                    amount_fen: totals.amount_fen,
                    responsible_share_fen: totals.responsible_share_fen,
                    insurer_claimed_fen: totals.insurer_claimed_fen,
                    insurer_recovered_fen: totals.insurer_recovered_fen,
                })
                .collect()
        };
        Ok(Response::new(pb::MonthlyClaimsReport {
            month: report.month.clone(),
            claims_opened: report.claims_opened,
            claims_approved: report.total.claims,
            amount_fen: report.total.amount_fen,
            responsible_share_fen: report.total.responsible_share_fen,
            insurer_claimed_fen: report.total.insurer_claimed_fen,
            insurer_recovered_fen: report.total.insurer_recovered_fen,
            by_cause: rows(0),
            by_branch: rows(1),
            by_responsible_party: rows(2),
            by_insurer: rows(3),
            csv: report::to_csv(&report),
        }))
    }
}
