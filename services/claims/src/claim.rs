//! The life of a claim (理赔, `001 §10`, `002 理赔`): facts and evidence, investigation and
//! responsibility, offer and answer, approval, payout. [`Claim::apply`] is the one place each
//! transition's rule lives; it changes nothing on error and returns the steps to record.
//!
//! ```text
//! OPEN ──offer──> NEGOTIATING ──accept──> APPROVED            (within the standard and the authority limit)
//!                   ^   │  └────accept──> AWAITING_APPROVAL ──approve──> APPROVED
//!                   │   counter                │
//!                   └───────────refuse─────────┘
//! ```

use chrono::{DateTime, Utc};
use kefu_kit::{caller::Caller, error::FieldViolations};

use crate::{
    compensation::{self, Facts, MAX_FEN, Quote, QuoteError, Yuan},
    policy::CompensationPolicy,
};

pub use kefu_kit::caller::SUPERVISOR_ROLE;
/// Free text (findings, notes, reasons) at most this many characters.
pub const MAX_TEXT: usize = 4_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Open,
    Negotiating,
    AwaitingApproval,
    Approved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Negotiating => "negotiating",
            State::AwaitingApproval => "awaiting_approval",
            State::Approved => "approved",
        }
    }

    pub fn parse(value: &str) -> Option<State> {
        [State::Open, State::Negotiating, State::AwaitingApproval, State::Approved]
            .into_iter()
            .find(|state| state.as_str() == value)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartyKind {
    Person,
    Department,
    Branch,
    /// Nobody at fault (force majeure): the company bears the cost.
    Company,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Person => "person",
            PartyKind::Department => "department",
            PartyKind::Branch => "branch",
            PartyKind::Company => "company",
        }
    }

    pub fn parse(value: &str) -> Option<PartyKind> {
        [PartyKind::Person, PartyKind::Department, PartyKind::Branch, PartyKind::Company]
            .into_iter()
            .find(|kind| kind.as_str() == value)
    }
}

/// The findings, who is responsible (责任人), and their share of the cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Investigation {
    pub findings: String,
    pub party_kind: PartyKind,
    pub party_id: String,
    pub share_percent: i32,
}

impl Investigation {
    /// Checks an investigation as a caller states it; `party_kind` is the raw kind.
    pub fn parse(
        findings: String,
        party_kind: &str,
        party_id: String,
        share_percent: i32,
    ) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        if findings.trim().is_empty() || findings.chars().count() > MAX_TEXT {
            violations.add("investigation.findings", format!("required: what happened, at most {MAX_TEXT} characters"));
        }
        let kind = PartyKind::parse(party_kind);
        match kind {
            None => violations
                .add("investigation.responsible_party.kind", "required: person, department, branch or company"),
            Some(PartyKind::Company) if share_percent != 0 => violations
                .add("investigation.share_percent", "the company bears the cost itself: no share to deduct (0)"),
            Some(PartyKind::Company) => {}
            Some(_) if party_id.trim().is_empty() || party_id.len() > 64 => violations.add(
                "investigation.responsible_party.id",
                "required: the badge number, department code or branch code, at most 64 characters",
            ),
            Some(_) => {}
        }
        if !(0..=100).contains(&share_percent) {
            violations.add("investigation.share_percent", "a percentage from 0 to 100");
        }
        match kind {
            Some(party_kind) if violations.is_empty() => Ok(Investigation {
                findings,
                party_kind,
                party_id: if party_kind == PartyKind::Company { String::new() } else { party_id },
                share_percent,
            }),
            _ => Err(violations),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The approving user, or `policy` for an amount within the standard and the authority limit.
    pub approved_by: String,
    pub reason: String,
    pub time: DateTime<Utc>,
}

/// What is recoverable from the insurer, tracked apart from what the customer is paid (`002 理赔 4`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InsurerRecovery {
    pub insurer: String,
    pub claimed_fen: i64,
    pub recovered_fen: i64,
}

impl InsurerRecovery {
    pub fn parse(insurer: String, claimed_fen: i64, recovered_fen: i64) -> Result<Self, FieldViolations> {
        let mut violations = FieldViolations::new();
        if insurer.trim().is_empty() || insurer.chars().count() > 128 {
            violations.add("insurer_recovery.insurer", "required: the insurer's name, at most 128 characters");
        }
        if !(0..=MAX_FEN).contains(&claimed_fen) {
            violations.add("insurer_recovery.claimed_fen", format!("between 0 and {MAX_FEN} fen"));
        }
        if recovered_fen < 0 || recovered_fen > claimed_fen {
            violations.add("insurer_recovery.recovered_fen", "between 0 and what was claimed from the insurer");
        }
        if violations.is_empty() {
            Ok(InsurerRecovery { insurer, claimed_fen, recovered_fen })
        } else {
            Err(violations)
        }
    }
}

/// A change to a claim, as requested.
#[derive(Debug, Clone)]
pub enum Command {
    RecordFacts { claimant: String, goods: String, facts: Facts },
    RecordInvestigation(Investigation),
    MakeOffer { amount_fen: i64, note: String },
    Accept { note: String },
    Counter { amount_fen: i64, note: String },
    Approve { reason: String },
    Refuse { reason: String },
    RecordInsurerRecovery(InsurerRecovery),
}

pub use kefu_kit::history::Step;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    #[error("invalid request")]
    Invalid(FieldViolations),
    /// The rule needs the claim in another state, or something recorded first.
    #[error("{0}")]
    Precondition(String),
    /// Only a supervisor may do this.
    #[error("{0}")]
    NotSupervisor(String),
    /// Four eyes: the approver asked for what is approved.
    #[error("{0}")]
    FourEyes(String),
}

fn invalid(field: &str, description: impl Into<String>) -> ClaimError {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    ClaimError::Invalid(violations)
}

/// The claims department's record of a claim: everything but the complaint, the evidence and the
/// history, which are kept beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub case_number: String,
    pub state: State,
    pub claimant: String,
    pub goods: String,
    pub facts: Option<Facts>,
    pub quote: Option<Quote>,
    /// Documents the standards need before they give an amount (traffic accident, theft).
    pub missing_documents: Vec<&'static str>,
    pub investigation: Option<Investigation>,
    pub offer_fen: i64,
    pub counter_offer_fen: i64,
    pub agreed_amount_fen: i64,
    pub responsible_share_fen: i64,
    pub approval: Option<Approval>,
    pub insurer_recovery: Option<InsurerRecovery>,
    /// Who made the offer outstanding or agreed, and who recorded the customer's acceptance: the
    /// approver must be neither (four eyes).
    pub offer_by: String,
    pub accepted_by: String,
}

impl Claim {
    /// A claim just accepted from intake: nothing recorded yet.
    pub fn open(case_number: &str) -> Claim {
        Claim {
            case_number: case_number.to_owned(),
            state: State::Open,
            claimant: String::new(),
            goods: String::new(),
            facts: None,
            quote: None,
            missing_documents: Vec::new(),
            investigation: None,
            offer_fen: 0,
            counter_offer_fen: 0,
            agreed_amount_fen: 0,
            responsible_share_fen: 0,
            approval: None,
            insurer_recovery: None,
            offer_by: String::new(),
            accepted_by: String::new(),
        }
    }

    /// Why the agreed amount (or `amount_fen`) needs a supervisor's approval; empty if it does not.
    pub fn approval_reasons(&self, amount_fen: i64, policy: &CompensationPolicy) -> Vec<String> {
        let mut reasons = Vec::new();
        if let Some(quote) = &self.quote
            && amount_fen > quote.amount_fen
        {
            reasons.push(format!(
                "{} is above what the standards allow ({}, rule {})",
                Yuan(amount_fen),
                Yuan(quote.amount_fen),
                quote.rule.as_str()
            ));
        }
        if amount_fen > policy.authority_limit_fen {
            reasons.push(format!(
                "{} is above the authority limit of {}",
                Yuan(amount_fen),
                Yuan(policy.authority_limit_fen)
            ));
        }
        reasons
    }

    /// Applies `command` by `caller` at `now`. On success the claim has changed and the steps say
    /// how; on error nothing has changed.
    pub fn apply(
        &mut self,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &CompensationPolicy,
    ) -> Result<Vec<Step>, ClaimError> {
        let mut next = self.clone();
        let steps = next.transition(command, caller, now, policy)?;
        *self = next;
        Ok(steps)
    }

    fn transition(
        &mut self,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &CompensationPolicy,
    ) -> Result<Vec<Step>, ClaimError> {
        let step =
            |action: &'static str, detail: String| Step { action, actor: caller.user.clone(), time: now, detail };
        match command {
            Command::RecordFacts { claimant, goods, facts } => {
                self.require(&[State::Open, State::Negotiating], "record the facts")?;
                let (quote, missing) = match compensation::quote(&facts, policy) {
                    Ok(quote) => (Some(quote), Vec::new()),
                    Err(QuoteError::MissingDocuments(missing)) => (None, missing),
                    Err(QuoteError::Invalid(violations)) => {
                        return Err(ClaimError::Invalid(violations.prefixed("facts.compensation.")));
                    }
                };
                let detail = match (&quote, missing.is_empty()) {
                    (Some(quote), _) => format!("standard {}: {}", quote.rule.as_str(), Yuan(quote.amount_fen)),
                    (None, _) => format!("no amount until the shipper provides: {}", missing.join(", ")),
                };
                (self.claimant, self.goods, self.facts, self.quote, self.missing_documents) =
                    (claimant, goods, Some(facts), quote, missing);
                Ok(vec![step("facts_recorded", detail)])
            }
            Command::RecordInvestigation(investigation) => {
                self.require(&[State::Open, State::Negotiating], "record the investigation")?;
                let detail = format!(
                    "responsible: {}{}{}, share {}%",
                    investigation.party_kind.as_str(),
                    if investigation.party_id.is_empty() { "" } else { " " },
                    investigation.party_id,
                    investigation.share_percent
                );
                self.investigation = Some(investigation);
                Ok(vec![step("investigation_recorded", detail)])
            }
            Command::MakeOffer { amount_fen, note } => {
                self.require(&[State::Open, State::Negotiating], "make an offer")?;
                check_amount("amount_fen", amount_fen)?;
                check_text("note", &note)?;
                let Some(quote) = &self.quote else {
                    return Err(ClaimError::Precondition(if self.missing_documents.is_empty() {
                        "record the facts (RecordClaimFacts) before making an offer".into()
                    } else {
                        format!(
                            "the standards give no amount until the shipper provides: {}",
                            self.missing_documents.join(", ")
                        )
                    }));
                };
                if self.investigation.is_none() {
                    return Err(ClaimError::Precondition(
                        "record the investigation (responsible party and share) before making an offer".into(),
                    ));
                }
                let detail =
                    format!("{} offered (the standards allow {}) {note}", Yuan(amount_fen), Yuan(quote.amount_fen));
                self.offer_fen = amount_fen;
                self.offer_by = caller.user.clone();
                self.state = State::Negotiating;
                Ok(vec![step("offer_made", detail.trim_end().to_owned())])
            }
            Command::Counter { amount_fen, note } => {
                self.require(&[State::Negotiating], "record a counter-offer")?;
                check_amount("counter_offer_fen", amount_fen)?;
                check_text("note", &note)?;
                let detail =
                    format!("the customer asks {} instead of {} {note}", Yuan(amount_fen), Yuan(self.offer_fen));
                self.counter_offer_fen = amount_fen;
                self.offer_fen = 0;
                Ok(vec![step("counter_offered", detail.trim_end().to_owned())])
            }
            Command::Accept { note } => {
                self.require(&[State::Negotiating], "accept an offer")?;
                check_text("note", &note)?;
                if self.offer_fen == 0 {
                    return Err(ClaimError::Precondition(
                        "there is no outstanding offer to accept: make one (MakeOffer) first".into(),
                    ));
                }
                let agreed = self.offer_fen;
                let mut steps =
                    vec![step("offer_accepted", format!("{} agreed {note}", Yuan(agreed)).trim_end().to_owned())];
                self.agreed_amount_fen = agreed;
                self.offer_fen = 0;
                self.accepted_by = caller.user.clone();
                let reasons = self.approval_reasons(agreed, policy);
                if reasons.is_empty() {
                    let reason =
                        format!("within the standard and the authority limit of {}", Yuan(policy.authority_limit_fen));
                    steps.push(Step { actor: "policy".into(), ..step("approved", reason.clone()) });
                    self.approve("policy".into(), reason, now);
                } else {
                    self.state = State::AwaitingApproval;
                    steps.push(step("approval_needed", reasons.join("; ")));
                }
                Ok(steps)
            }
            Command::Approve { reason } => {
                self.require(&[State::AwaitingApproval], "approve")?;
                require_supervisor(caller, "approve a claim")?;
                self.require_other_eyes(caller)?;
                check_reason(&reason)?;
                self.approve(caller.user.clone(), reason.clone(), now);
                Ok(vec![step("approved", reason)])
            }
            Command::Refuse { reason } => {
                self.require(&[State::AwaitingApproval], "refuse")?;
                require_supervisor(caller, "refuse a claim")?;
                check_reason(&reason)?;
                self.state = State::Negotiating;
                self.agreed_amount_fen = 0;
                Ok(vec![step("refused", reason)])
            }
            Command::RecordInsurerRecovery(recovery) => {
                let Some(facts) = &self.facts else {
                    return Err(ClaimError::Precondition("record the facts before the insurer's part".into()));
                };
                if !facts.insured && !facts.accident.involves_insurer() {
                    return Err(ClaimError::Precondition(
                        "the insurer has no part in this claim: neither insured transport nor a traffic accident or theft".into(),
                    ));
                }
                let detail = format!(
                    "{}: claimed {}, recovered {}",
                    recovery.insurer,
                    Yuan(recovery.claimed_fen),
                    Yuan(recovery.recovered_fen)
                );
                self.insurer_recovery = Some(recovery);
                Ok(vec![step("insurer_recovery_recorded", detail)])
            }
        }
    }

    fn approve(&mut self, approved_by: String, reason: String, now: DateTime<Utc>) {
        let share = self.investigation.as_ref().map_or(0, |investigation| investigation.share_percent);
        // The responsible party's share, rounded half up to the fen.
        self.responsible_share_fen = ((i128::from(self.agreed_amount_fen) * i128::from(share) * 2 + 100) / 200) as i64;
        self.approval = Some(Approval { approved_by, reason, time: now });
        self.state = State::Approved;
    }

    /// Four eyes: who made the offer or recorded the customer's acceptance does not approve it.
    fn require_other_eyes(&self, caller: &Caller) -> Result<(), ClaimError> {
        let own = |who: &str| !who.is_empty() && who == caller.user;
        if own(&self.offer_by) || own(&self.accepted_by) {
            return Err(ClaimError::FourEyes(format!(
                "four eyes: {} made the offer or recorded the customer's acceptance of this claim, so another supervisor approves it",
                caller.user
            )));
        }
        Ok(())
    }

    fn require(&self, states: &[State], what: &str) -> Result<(), ClaimError> {
        if states.contains(&self.state) {
            return Ok(());
        }
        let allowed: Vec<&str> = states.iter().map(|state| state.as_str()).collect();
        Err(ClaimError::Precondition(format!(
            "cannot {what}: the claim is {}, and that needs it {}",
            self.state.as_str(),
            allowed.join(" or ")
        )))
    }
}

fn require_supervisor(caller: &Caller, what: &str) -> Result<(), ClaimError> {
    if caller.is_supervisor() {
        Ok(())
    } else {
        Err(ClaimError::NotSupervisor(format!(
            "only a supervisor may {what}: the caller's roles do not include {SUPERVISOR_ROLE}"
        )))
    }
}

fn check_amount(field: &str, amount_fen: i64) -> Result<(), ClaimError> {
    if (1..=MAX_FEN).contains(&amount_fen) {
        Ok(())
    } else {
        Err(invalid(field, format!("between 1 and {MAX_FEN} fen")))
    }
}

fn check_text(field: &str, text: &str) -> Result<(), ClaimError> {
    if text.chars().count() <= MAX_TEXT {
        Ok(())
    } else {
        Err(invalid(field, format!("at most {MAX_TEXT} characters")))
    }
}

fn check_reason(reason: &str) -> Result<(), ClaimError> {
    if reason.trim().is_empty() {
        return Err(invalid("reason", "required: why, in a sentence, for the record"));
    }
    check_text("reason", reason)
}

#[cfg(test)]
mod tests;
