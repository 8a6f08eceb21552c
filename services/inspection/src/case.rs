//! The life of an inspection case, each rule of the handbook in [`Case::apply`]:
//!
//! - the person or unit complained about writes a report (书面报告); once it is in, the case is
//!   handled within 24 hours (`001 §8 4.5`), and no decision is made without it;
//! - the investigation records its findings and divides responsibility (事故责任划分) among persons,
//!   departments and branches, the shares adding up to 100;
//! - the decision fines by the standards table (`001 §7.1`, `001 第三节`), warns or criticizes
//!   (`001 §7.2`) — only parties found responsible, each fine within its range;
//! - a second complaint, or the same kind of problem again in the same department, is an incident
//!   (二次投诉就是事故, `001 §8 4.10`): escalated at once, the unit and the person each fined, and
//!   both lose the month's award eligibility (一票否决);
//! - rectification (整改) is a task for the responsible unit with a due date, checked afterwards.
//!
//! Nothing here reads a clock or a database: the time comes in, and what the change means for
//! other services goes out as [`Effect`]s.

use chrono::{DateTime, Utc};
use kefu_kit::{caller::Caller, error::FieldViolations};
use serde::{Deserialize, Serialize};

use crate::policy::InspectionPolicy;

#[cfg(test)]
mod tests;

/// The longest free text a step accepts.
const MAX_TEXT: usize = 4_000;
const MAX_SHORT: usize = 64;
/// The most parties one case may name.
const MAX_PARTIES: usize = 20;
const MAX_EVIDENCE: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartyKind {
    Person,
    Department,
    Branch,
}

impl PartyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PartyKind::Person => "person",
            PartyKind::Department => "department",
            PartyKind::Branch => "branch",
        }
    }

    pub fn parse(text: &str) -> Option<PartyKind> {
        match text {
            "person" => Some(PartyKind::Person),
            "department" => Some(PartyKind::Department),
            "branch" => Some(PartyKind::Branch),
            _ => None,
        }
    }

    /// Departments and branches are units; a person is not.
    pub fn is_unit(self) -> bool {
        self != PartyKind::Person
    }
}

/// A person (badge number), department or branch (code) named on a case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Party {
    pub kind: PartyKind,
    pub id: String,
}

impl Party {
    /// Checks a party given as `kind` and `id`; violations are named under `field`.
    pub fn parse(kind: &str, id: &str, field: &str, violations: &mut FieldViolations) -> Option<Party> {
        let parsed_kind = PartyKind::parse(kind);
        if parsed_kind.is_none() {
            violations.add(format!("{field}.kind"), "required: person, department or branch");
        }
        let id = id.trim();
        if id.is_empty() || id.len() > MAX_SHORT || id.contains([',', ':']) {
            violations.add(
                format!("{field}.id"),
                "required: a badge number, department or branch code, at most 64 characters, without , or :",
            );
            return None;
        }
        Some(Party { kind: parsed_kind?, id: id.to_owned() })
    }
}

impl std::fmt::Display for Party {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Complaint,
    Audit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Open,
    Investigating,
    Decided,
    Resolved,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Investigating => "investigating",
            State::Decided => "decided",
            State::Resolved => "resolved",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyKind {
    Fine,
    Warning,
    /// 通报批评.
    Criticism,
    /// 一票否决: the month's award eligibility is lost.
    AwardVeto,
}

impl PenaltyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PenaltyKind::Fine => "fine",
            PenaltyKind::Warning => "warning",
            PenaltyKind::Criticism => "criticism",
            PenaltyKind::AwardVeto => "award_veto",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Penalty {
    pub party: Party,
    pub kind: PenaltyKind,
    /// The standards table's code, for a fine.
    pub violation: String,
    pub amount_fen: i64,
    pub note: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportRequest {
    pub from: Party,
    pub time: DateTime<Utc>,
    pub due: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrittenReport {
    pub author: Party,
    pub content: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Findings {
    pub facts: String,
    pub evidence: Vec<String>,
    pub recorded_by: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub party: Party,
    pub percent: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub penalties: Vec<Penalty>,
    pub note: String,
    pub decided_by: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    pub done: bool,
    pub note: String,
    pub checked_by: String,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rectification {
    pub unit: Party,
    pub task: String,
    pub due: DateTime<Utc>,
    pub done: bool,
    pub checks: Vec<Check>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IncidentReason {
    /// The same customer about the same event again.
    SecondComplaint,
    /// The same kind of problem again in the same department within the policy's window.
    Recurrence,
}

impl IncidentReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IncidentReason::SecondComplaint => "second_complaint",
            IncidentReason::Recurrence => "recurrence",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    /// `complaints/{case_number}`.
    pub first_complaint: String,
    pub reason: IncidentReason,
    pub escalated_to: Vec<String>,
    pub time: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Audit {
    pub kind: AuditKind,
    pub subject: String,
    pub findings: String,
}

/// What inspection spot-checks (`002 监察主管 4, 8, 9`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    FreightRate,
    ServiceStandard,
    RemittanceTimeliness,
    CodHandIn,
    Appearance,
}

impl AuditKind {
    pub const ALL: [AuditKind; 5] = [
        AuditKind::FreightRate,
        AuditKind::ServiceStandard,
        AuditKind::RemittanceTimeliness,
        AuditKind::CodHandIn,
        AuditKind::Appearance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::FreightRate => "freight_rate",
            AuditKind::ServiceStandard => "service_standard",
            AuditKind::RemittanceTimeliness => "remittance_timeliness",
            AuditKind::CodHandIn => "cod_hand_in",
            AuditKind::Appearance => "appearance",
        }
    }
}

impl Audit {
    /// Checks an audit as given; `branch` must name the branch audited.
    pub fn parse(kind: &str, branch: &str, subject: String, findings: String) -> Result<Audit, FieldViolations> {
        let mut violations = FieldViolations::new();
        let kind = AuditKind::ALL.into_iter().find(|known| known.as_str() == kind);
        if kind.is_none() {
            violations.add(
                "audit.kind",
                "required: freight_rate, service_standard, remittance_timeliness, cod_hand_in or appearance",
            );
        }
        if !kefu_kit::text::is_branch(branch.trim()) {
            violations.add("audit.branch", format!("required, the branch audited: {}", kefu_kit::text::BRANCH_RULE));
        }
        check_text(&mut violations, "audit.subject", &subject, "what was checked");
        check_text(&mut violations, "audit.findings", &findings, "what the check found");
        match kind {
            Some(kind) if violations.is_empty() => Ok(Audit { kind, subject, findings }),
            _ => Err(violations),
        }
    }
}

fn check_text(violations: &mut FieldViolations, field: &str, text: &str, what: &str) {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        violations.add(field, format!("required: {what}, at most {MAX_TEXT} characters"));
    }
}

/// A case as inspection keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Case {
    pub case_number: String,
    pub kind: Kind,
    pub category: String,
    pub branch: String,
    pub state: State,
    /// When handling must be finished, and why then.
    pub deadline: DateTime<Utc>,
    pub deadline_reason: String,
    /// True once the case was chased for its present deadline.
    pub chased: bool,
    pub report_request: Option<ReportRequest>,
    pub report: Option<WrittenReport>,
    pub findings: Option<Findings>,
    /// `None` until divided; empty when nobody was found responsible.
    pub responsibility: Option<Vec<Share>>,
    pub decision: Option<Decision>,
    pub rectifications: Vec<Rectification>,
    pub incident: Option<Incident>,
    pub resolution: Option<String>,
    pub resolve_time: Option<DateTime<Utc>>,
    pub audit: Option<Audit>,
}

/// A change asked of a case.
#[derive(Debug, Clone)]
pub enum Command {
    RequestReport {
        from: Party,
    },
    RecordReport {
        author: Party,
        content: String,
    },
    RecordFindings {
        facts: String,
        evidence: Vec<String>,
    },
    /// `recurs` is the earlier complaint in which one of these units was found responsible for the
    /// same category within the policy's window, if the store found one.
    DivideResponsibility {
        shares: Vec<Share>,
        recurs: Option<String>,
    },
    Decide {
        penalties: Vec<Penalty>,
        note: String,
    },
    AssignRectification {
        unit: Party,
        task: String,
        due: DateTime<Utc>,
    },
    CheckRectification {
        index: usize,
        done: bool,
        note: String,
        new_due: Option<DateTime<Utc>>,
    },
    Resolve {
        resolution: String,
    },
    /// The case is past its deadline: inspection chases the owner of the next step.
    Chase,
}

/// What a change means outside inspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Escalated as an incident: intake shows it.
    Escalated,
    /// The complaint's deadline moved.
    DeadlineMoved,
    /// Fines for settlement to deduct: the positions of the penalties in the decision.
    Fined(Vec<usize>),
    /// Finished: intake tells the customer.
    Resolved,
}

pub use kefu_kit::history::Step;

/// Who records the steps inspection takes by itself.
pub const SYSTEM_ACTOR: &str = "inspection";

#[derive(Debug, Clone, PartialEq)]
pub enum CaseError {
    /// `INVALID_ARGUMENT`.
    Invalid(FieldViolations),
    /// `FAILED_PRECONDITION`.
    Precondition(String),
}

impl From<FieldViolations> for CaseError {
    fn from(violations: FieldViolations) -> CaseError {
        CaseError::Invalid(violations)
    }
}

fn invalid(field: &str, description: impl Into<String>) -> CaseError {
    let mut violations = FieldViolations::new();
    violations.add(field, description);
    CaseError::Invalid(violations)
}

/// Amounts as the handbook writes them: `50.00 yuan`.
pub use kefu_kit::money::yuan;

impl Case {
    /// A complaint routed to inspection. A complaint intake found to repeat an earlier one is an
    /// incident from the start.
    pub fn complaint(
        case_number: &str,
        category: &str,
        branch: &str,
        deadline: DateTime<Utc>,
        first_complaint: &str,
        policy: &InspectionPolicy,
        now: DateTime<Utc>,
    ) -> (Case, Vec<Step>, Vec<Effect>) {
        let mut case = Case {
            case_number: case_number.to_owned(),
            kind: Kind::Complaint,
            category: category.to_owned(),
            branch: branch.to_owned(),
            state: State::Open,
            deadline,
            deadline_reason: "the deadline intake set when it routed the complaint".into(),
            chased: false,
            report_request: None,
            report: None,
            findings: None,
            responsibility: None,
            decision: None,
            rectifications: Vec::new(),
            incident: None,
            resolution: None,
            resolve_time: None,
            audit: None,
        };
        let mut steps = vec![Step {
            action: "accepted",
            actor: SYSTEM_ACTOR.into(),
            time: now,
            detail: format!("{category} complaint from branch {branch}"),
        }];
        let mut effects = Vec::new();
        if !first_complaint.is_empty() {
            steps.push(case.escalate(first_complaint, IncidentReason::SecondComplaint, SYSTEM_ACTOR, policy, now));
            effects.push(Effect::Escalated);
        }
        (case, steps, effects)
    }

    /// Inspection's own spot check: the findings are in, the decision is due within the hours the
    /// policy gives after a written report.
    pub fn audit(
        case_number: &str,
        branch: &str,
        audit: Audit,
        caller: &Caller,
        policy: &InspectionPolicy,
        now: DateTime<Utc>,
    ) -> (Case, Vec<Step>) {
        let step = Step {
            action: "audited",
            actor: caller.user.clone(),
            time: now,
            detail: format!("{} audit of branch {branch}: {}", audit.kind.as_str(), audit.subject),
        };
        let case = Case {
            case_number: case_number.to_owned(),
            kind: Kind::Audit,
            category: format!("audit_{}", audit.kind.as_str()),
            branch: branch.to_owned(),
            state: State::Investigating,
            deadline: now + policy.handling_after_report,
            deadline_reason: "audit findings recorded: decide within the hours after a report".into(),
            chased: false,
            report_request: None,
            report: None,
            findings: Some(Findings {
                facts: audit.findings.clone(),
                evidence: Vec::new(),
                recorded_by: caller.user.clone(),
                time: now,
            }),
            responsibility: None,
            decision: None,
            rectifications: Vec::new(),
            incident: None,
            resolution: None,
            resolve_time: None,
            audit: Some(audit),
        };
        (case, vec![step])
    }

    /// Marks the case an incident and escalates it as the policy says (`001 §8 4.10.2`).
    fn escalate(
        &mut self,
        first_complaint: &str,
        reason: IncidentReason,
        actor: &str,
        policy: &InspectionPolicy,
        now: DateTime<Utc>,
    ) -> Step {
        let escalated_to = policy.escalate_to.clone();
        let detail = format!(
            "incident ({}): repeats {first_complaint}; escalated to {}",
            reason.as_str(),
            escalated_to.join(" and ")
        );
        self.incident = Some(Incident { first_complaint: first_complaint.to_owned(), reason, escalated_to, time: now });
        Step { action: "escalated", actor: actor.to_owned(), time: now, detail }
    }

    fn set_deadline(&mut self, deadline: DateTime<Utc>, reason: String) {
        self.deadline = deadline;
        self.deadline_reason = reason;
        self.chased = false;
    }

    /// Past its deadline and not resolved.
    pub fn is_overdue(&self, now: DateTime<Utc>) -> bool {
        self.state != State::Resolved && self.deadline < now
    }

    /// The parties found responsible, if responsibility was divided.
    fn responsible(&self) -> &[Share] {
        self.responsibility.as_deref().unwrap_or_default()
    }

    /// Applies `command` as `caller` at `now`: the steps to record and what it means outside.
    pub fn apply(
        &mut self,
        command: Command,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &InspectionPolicy,
    ) -> Result<(Vec<Step>, Vec<Effect>), CaseError> {
        if self.state == State::Resolved
            && !matches!(command, Command::AssignRectification { .. } | Command::CheckRectification { .. })
        {
            return Err(CaseError::Precondition(format!(
                "case {} is resolved; only its rectification can still be assigned and checked",
                self.case_number
            )));
        }
        let step =
            |action: &'static str, detail: String| Step { action, actor: caller.user.clone(), time: now, detail };
        match command {
            Command::RequestReport { from } => {
                self.need_complaint("a written report")?;
                if self.report.is_some() {
                    return Err(CaseError::Precondition("the written report is already in".into()));
                }
                let due = now + policy.written_report_due;
                self.report_request = Some(ReportRequest { from: from.clone(), time: now, due });
                self.set_deadline(due, format!("written report due from {from}"));
                Ok((vec![step("report_requested", format!("written report asked of {from}, due {due}"))], vec![]))
            }
            Command::RecordReport { author, content } => {
                self.need_complaint("a written report")?;
                if self.report.is_some() {
                    return Err(CaseError::Precondition("the written report is already in".into()));
                }
                check_content(&content, "content")?;
                let deadline = now + policy.handling_after_report;
                let hours = policy.handling_after_report.num_hours();
                self.report = Some(WrittenReport { author: author.clone(), content, time: now });
                self.state = State::Investigating;
                self.set_deadline(deadline, format!("{hours} hours after the written report (001 §8 4.5)"));
                Ok((
                    vec![step(
                        "report_received",
                        format!("written report from {author}; to be handled within {hours} hours"),
                    )],
                    vec![Effect::DeadlineMoved],
                ))
            }
            Command::RecordFindings { facts, evidence } => {
                self.need_undecided()?;
                check_content(&facts, "facts")?;
                if evidence.len() > MAX_EVIDENCE
                    || evidence.iter().any(|e| e.trim().is_empty() || e.chars().count() > 256)
                {
                    return Err(invalid(
                        "evidence",
                        format!("at most {MAX_EVIDENCE} references, each 1 to 256 characters"),
                    ));
                }
                let detail = format!("{} piece(s) of evidence", evidence.len());
                self.findings = Some(Findings { facts, evidence, recorded_by: caller.user.clone(), time: now });
                Ok((vec![step("findings_recorded", detail)], vec![]))
            }
            Command::DivideResponsibility { shares, recurs } => {
                self.need_undecided()?;
                if self.findings.is_none() {
                    return Err(CaseError::Precondition("record the findings before dividing responsibility".into()));
                }
                check_shares(&shares)?;
                let detail = if shares.is_empty() {
                    "nobody found responsible: the complaint was not borne out".to_owned()
                } else {
                    shares
                        .iter()
                        .map(|share| format!("{} {}%", share.party, share.percent))
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                self.responsibility = Some(shares);
                let mut steps = vec![step("responsibility_divided", detail)];
                let mut effects = vec![];
                if let Some(first) = recurs.filter(|_| self.incident.is_none()) {
                    steps.push(self.escalate(&first, IncidentReason::Recurrence, &caller.user, policy, now));
                    effects.push(Effect::Escalated);
                }
                Ok((steps, effects))
            }
            Command::Decide { penalties, note } => self.decide(penalties, note, caller, now, policy),
            Command::AssignRectification { unit, task, due } => {
                if self.decision.is_none() {
                    return Err(CaseError::Precondition("rectification follows the decision: decide first".into()));
                }
                if !unit.kind.is_unit() {
                    return Err(invalid("unit.kind", "rectification is the task of a department or branch"));
                }
                check_content(&task, "task")?;
                if due <= now {
                    return Err(invalid("due_time", "required: a due date in the future"));
                }
                let detail = format!("{unit} to rectify by {due}");
                self.rectifications.push(Rectification { unit, task, due, done: false, checks: Vec::new() });
                Ok((vec![step("rectification_assigned", detail)], vec![]))
            }
            Command::CheckRectification { index, done, note, new_due } => {
                let count = self.rectifications.len();
                let Some(rectification) = self.rectifications.get_mut(index) else {
                    return Err(invalid(
                        "rectification",
                        format!("the case has {count} rectification(s), numbered from 0"),
                    ));
                };
                if rectification.done {
                    return Err(CaseError::Precondition("that rectification was already found done".into()));
                }
                check_content(&note, "note")?;
                if let Some(new_due) = new_due {
                    if done || new_due <= now {
                        return Err(invalid("new_due_time", "only for a rectification not done, and in the future"));
                    }
                    rectification.due = new_due;
                }
                rectification.done = done;
                rectification.checks.push(Check { done, note, checked_by: caller.user.clone(), time: now });
                let detail = format!("{} rectification {}", rectification.unit, if done { "done" } else { "not done" });
                Ok((vec![step("rectification_checked", detail)], vec![]))
            }
            Command::Resolve { resolution } => {
                if self.decision.is_none() {
                    return Err(CaseError::Precondition("a case is resolved after its decision: decide first".into()));
                }
                check_content(&resolution, "resolution")?;
                self.state = State::Resolved;
                self.resolution = Some(resolution);
                self.resolve_time = Some(now);
                let effects = if self.kind == Kind::Complaint { vec![Effect::Resolved] } else { vec![] };
                Ok((vec![step("resolved", "the customer is told the resolution".into())], effects))
            }
            Command::Chase => {
                if !self.is_overdue(now) || self.chased {
                    return Err(CaseError::Precondition(
                        "the case is not overdue, or was chased for this deadline".into(),
                    ));
                }
                self.chased = true;
                let whom = match (&self.report_request, &self.report) {
                    (Some(request), None) => format!("the written report from {}", request.from),
                    _ => "handling of the case".to_owned(),
                };
                Ok((vec![step("chased", format!("overdue since {}: chasing {whom}", self.deadline))], vec![]))
            }
        }
    }

    fn need_complaint(&self, what: &str) -> Result<(), CaseError> {
        match self.kind {
            Kind::Complaint => Ok(()),
            Kind::Audit => {
                Err(CaseError::Precondition(format!("an audit needs no {what}: its findings are its record")))
            }
        }
    }

    fn need_undecided(&self) -> Result<(), CaseError> {
        match self.decision {
            None => Ok(()),
            Some(_) => {
                Err(CaseError::Precondition("the case is decided; its findings and responsibility stand".into()))
            }
        }
    }

    /// The decision: penalties by the standards, and for an incident the fines on both unit and
    /// person (`001 §8 4.10.3`) and the award veto (`4.10.4`).
    fn decide(
        &mut self,
        mut penalties: Vec<Penalty>,
        note: String,
        caller: &Caller,
        now: DateTime<Utc>,
        policy: &InspectionPolicy,
    ) -> Result<(Vec<Step>, Vec<Effect>), CaseError> {
        if self.decision.is_some() {
            return Err(CaseError::Precondition("the case is already decided; a decision is made once".into()));
        }
        if self.kind == Kind::Complaint && self.report.is_none() {
            return Err(CaseError::Precondition(
                "no decision before the written report of the person complained about is in (001 §8 4.5)".into(),
            ));
        }
        let Some(responsible) = self.responsibility.as_ref() else {
            return Err(CaseError::Precondition("divide responsibility before deciding".into()));
        };
        if note.chars().count() > MAX_TEXT {
            return Err(invalid("note", format!("at most {MAX_TEXT} characters")));
        }
        check_penalties(&penalties, responsible, policy)?;
        if responsible.is_empty() && !penalties.is_empty() {
            return Err(CaseError::Precondition(
                "nobody was found responsible: penalties follow only a verified complaint (001 §7.1)".into(),
            ));
        }
        if self.incident.is_some() {
            let fined =
                |unit: bool| penalties.iter().any(|p| p.kind == PenaltyKind::Fine && p.party.kind.is_unit() == unit);
            if !fined(true) || !fined(false) {
                return Err(CaseError::Precondition(
                    "an incident fines both the responsible unit and the responsible person (001 §8 4.10.3); \
                     divide responsibility so that both are named, and fine each"
                        .into(),
                ));
            }
            for share in self.responsible() {
                penalties.push(Penalty {
                    party: share.party.clone(),
                    kind: PenaltyKind::AwardVeto,
                    violation: String::new(),
                    amount_fen: 0,
                    note: "一票否决: no award this month (001 §8 4.10.4)".into(),
                });
            }
        }
        let fines: Vec<usize> =
            penalties.iter().enumerate().filter(|(_, p)| p.kind == PenaltyKind::Fine).map(|(index, _)| index).collect();
        let detail = if penalties.is_empty() {
            "no penalty".to_owned()
        } else {
            penalties
                .iter()
                .map(|p| match p.kind {
                    PenaltyKind::Fine => format!("{} fined {} ({})", p.party, yuan(p.amount_fen), p.violation),
                    kind => format!("{} {}", p.party, kind.as_str()),
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        self.decision = Some(Decision { penalties, note, decided_by: caller.user.clone(), time: now });
        self.state = State::Decided;
        let effects = if fines.is_empty() { vec![] } else { vec![Effect::Fined(fines)] };
        Ok((vec![Step { action: "decided", actor: caller.user.clone(), time: now, detail }], effects))
    }
}

fn check_content(text: &str, field: &str) -> Result<(), CaseError> {
    let mut violations = FieldViolations::new();
    check_text(&mut violations, field, text, "the text");
    if violations.is_empty() { Ok(()) } else { Err(CaseError::Invalid(violations)) }
}

/// Shares of 1–100 percent, adding up to 100, each party once; or none at all.
fn check_shares(shares: &[Share]) -> Result<(), CaseError> {
    let mut violations = FieldViolations::new();
    if shares.len() > MAX_PARTIES {
        violations.add("shares", format!("at most {MAX_PARTIES} parties"));
    }
    for (index, share) in shares.iter().enumerate() {
        if !(1..=100).contains(&share.percent) {
            violations.add(format!("shares[{index}].share_percent"), "from 1 to 100");
        }
        if shares[..index].iter().any(|earlier| earlier.party == share.party) {
            violations.add(format!("shares[{index}].party"), format!("{} is named twice", share.party));
        }
    }
    let total: i64 = shares.iter().map(|share| i64::from(share.percent)).sum();
    if !shares.is_empty() && total != 100 {
        violations.add("shares", format!("the shares add up to {total}%, not 100%"));
    }
    if violations.is_empty() { Ok(()) } else { Err(CaseError::Invalid(violations)) }
}

/// Each penalty: a party found responsible; a fine by a known violation within its range.
fn check_penalties(penalties: &[Penalty], responsible: &[Share], policy: &InspectionPolicy) -> Result<(), CaseError> {
    let mut violations = FieldViolations::new();
    if penalties.len() > MAX_PARTIES * 3 {
        violations.add("penalties", format!("at most {} penalties", MAX_PARTIES * 3));
    }
    for (index, penalty) in penalties.iter().enumerate() {
        let field = |name: &str| format!("penalties[{index}].{name}");
        if !responsible.is_empty() && !responsible.iter().any(|share| share.party == penalty.party) {
            violations.add(field("party"), format!("{} was not found responsible for this case", penalty.party));
        }
        if penalty.note.chars().count() > MAX_TEXT {
            violations.add(field("note"), format!("at most {MAX_TEXT} characters"));
        }
        match penalty.kind {
            PenaltyKind::Fine => match policy.violation(&penalty.violation) {
                None => violations.add(
                    field("violation"),
                    format!("required for a fine: one of the standards' codes: {}", policy.codes()),
                ),
                Some(standard) => match standard.range_fen {
                    Some((min, max)) if !(min..=max).contains(&penalty.amount_fen) => {
                        let range = if min == max { yuan(min) } else { format!("{} to {}", yuan(min), yuan(max)) };
                        violations.add(
                            field("amount_fen"),
                            format!(
                                "{} is fined {range} ({}); not {} fen",
                                standard.code, standard.source, penalty.amount_fen
                            ),
                        );
                    }
                    Some(_) => {}
                    None => {
                        if !(1..=10_000_000).contains(&penalty.amount_fen) {
                            violations.add(field("amount_fen"), "from 1 fen to 100,000 yuan");
                        }
                        if penalty.note.trim().is_empty() {
                            violations.add(
                                field("note"),
                                format!("{} is decided case by case: say why this amount", standard.code),
                            );
                        }
                    }
                },
            },
            PenaltyKind::Warning | PenaltyKind::Criticism => {
                if penalty.amount_fen != 0 {
                    violations.add(field("amount_fen"), "only a fine has an amount");
                }
            }
            PenaltyKind::AwardVeto => {
                violations.add(field("kind"), "the award veto follows from an incident; it is not given by hand");
            }
        }
    }
    if violations.is_empty() { Ok(()) } else { Err(CaseError::Invalid(violations)) }
}
