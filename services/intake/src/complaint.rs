//! The complaint, intake's aggregate, and every rule of its life after registration in one
//! [`Complaint::apply`]: a [`Command`] applied to the case as it was read yields the steps for its
//! history and its [`Effects`] — events for other services, replies to the customer and the
//! departments, visits to plan or record — or an [`Error`] that refuses it. No I/O: the keeper
//! (`keeper.rs`) reads and writes, the kit's write path (`kefu_kit::write`) commits.
//!
//! ```text
//! ROUTED ─accepted─▶ ACCEPTED ─resolved─▶ RESOLVED ─told─▶ NOTIFIED ─closed─▶ CLOSED
//!    │                   │       │  (serious, critical)        │   ▲      │
//!    │                   │       └──▶ AWAITING_APPROVAL ─approved┘   │      │
//!    └── linked ─▶ DUPLICATE ─unlinked─▶ (back)          REOPENED ◀─not satisfied
//! ```
//!
//! The aggregate is the `complaints` row itself ([`crate::store::Model`]), typed: its state, kind,
//! severity, channel and deadline counting are enums, stored by name and never read back with a
//! default. Registration's rules (a new case, its duplicate or second complaint) are in
//! `registration.rs`.
//!
//! Invariant — one writer of the deadline: the deadline is set only by [`Complaint::start_deadline`]
//! (a new rule: registration, conversion, reopening, an owner's moved deadline) and
//! [`Complaint::recompute_deadline`] (the same rule after a pause or a change of severity), both
//! from what the case keeps, so [`Complaint::computed_deadline`] always explains it.

#[cfg(test)]
mod tests;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{
    caller::Caller, config::ServiceName, history::Step, time::to_timestamp, write::Applied, write::Message,
};
use kefu_proto::events::v1::{CaseNotice, CaseRouted, event::Payload};

use crate::{
    convert::routed_complaint,
    deadline::{self, Rule},
    domain::{Kind, Severity, State},
    error::Error,
    registration::Registration,
    replies::{self, NewReply},
    visits::{self, NewVisit},
};

pub use crate::store::Model as Complaint;

/// Roles that may approve the outcome of a serious or critical complaint (业务经理, 总经理).
pub const APPROVER_ROLES: [&str; 3] = ["department_head", "business_manager", "general_manager"];

/// What a rule knows besides the case: the time, the company's time zone, and who asks.
pub struct Now<'a> {
    pub time: DateTime<Utc>,
    pub time_zone: Tz,
    pub caller: &'a Caller,
}

/// Everything that can happen to a case after registration.
#[derive(Debug)]
pub enum Command {
    // What its owner reports (the owners' events).
    /// The owner holds its own record of the case (`case_accepted`).
    Accept {
        owner: String,
        owner_reference: String,
        accept_time: DateTime<Utc>,
    },
    /// The owner's outcome (`case_resolved`), with its story (the encoded event) for the case file.
    OwnerResolved {
        owner: String,
        resolution: String,
        resolve_time: DateTime<Utc>,
        story: Vec<u8>,
    },
    /// The owner escalated the case as an incident (`case_escalated`).
    Escalate {
        owner: String,
        escalated_to: Vec<String>,
        first_complaint: String,
        reason: String,
        time: DateTime<Utc>,
    },
    /// The owner set the case's deadline (`case_deadline_changed`).
    MoveDeadline {
        owner: String,
        deadline: DateTime<Utc>,
        reason: String,
    },

    // What the service center does.
    /// It resolves a case it holds.
    Resolve {
        resolution: String,
        cause: String,
    },
    /// A manager approves a serious or critical complaint's outcome.
    Approve {
        written_answer: String,
    },
    /// The customer is not satisfied.
    Reopen {
        reason: String,
    },
    WaitForCustomer {
        reason: String,
    },
    Resume {
        note: String,
    },
    ChangeSeverity {
        to: Severity,
        reason: String,
    },
    /// The same complaint as `original` (read by the handler), by another channel.
    LinkDuplicate {
        original: Box<Complaint>,
        reason: String,
    },
    UnlinkDuplicate {
        reason: String,
    },
    /// Past its deadline: its owner is chased, a supervisor told.
    Chase,
    Close {
        note: String,
        request_id: Option<String>,
    },
    /// An inquiry or consultation turns into a complaint (`RegisterComplaint` with `from_request`).
    Convert {
        into: Box<Registration>,
        from_request: String,
    },
    PlanVisit {
        visit: NewVisit,
    },
    /// A planned visit (read by the handler) is recorded.
    RecordVisit {
        visit: Box<visits::Model>,
        service: &'static str,
        product: &'static str,
        opinions: String,
        counter_measures: String,
    },
    /// An attempt to deliver a reply (read by the handler); a result that reached the customer tells them.
    RecordReplyAttempt {
        reply: Box<replies::Model>,
        reached: bool,
        note: String,
    },
}

/// What a command implies besides the case and its history.
#[derive(Debug, Default)]
pub struct Effects {
    /// Events for other services.
    pub events: Vec<Message>,
    pub replies: Vec<NewReply>,
    pub visits: Vec<NewVisit>,
    /// Steps recorded on other cases (the complaint a duplicate is linked to).
    pub other_steps: Vec<(String, Step)>,
    /// A visit as recorded, written over its planned state.
    pub recorded_visit: Option<visits::Model>,
    /// A reply delivery attempt to record: the reply, whether it reached, the note.
    pub reply_attempt: Option<(replies::Model, bool, String)>,
    /// The case's story goes to archives (`case_closed`), read from its history once this change's
    /// steps are recorded.
    pub story_to_archives: bool,
}

/// A command's result as the rules build it: the steps and the effects.
pub(crate) struct Outcome {
    pub steps: Vec<Step>,
    pub effects: Effects,
}

impl Outcome {
    fn new() -> Outcome {
        Outcome { steps: Vec::new(), effects: Effects::default() }
    }

    fn step(mut self, action: &'static str, actor: &str, time: DateTime<Utc>, detail: impl Into<String>) -> Outcome {
        self.steps.push(Step { action, actor: actor.to_owned(), time, detail: detail.into() });
        self
    }

    fn event(mut self, event: Option<Message>) -> Outcome {
        self.effects.events.extend(event);
        self
    }
}

impl Complaint {
    /// `complaints/{case_number}`.
    pub fn name(&self) -> String {
        kefu_kit::names::complaint_name(&self.case_number)
    }

    fn refused(&self, why: impl Into<String>) -> Error {
        Error::refused(&self.name(), self.state, why)
    }

    /// Applies `command`, or refuses it and leaves the case as it was.
    pub fn apply(&mut self, command: Command, now: &Now<'_>) -> Result<Applied<Effects>, Error> {
        let mut after = self.clone();
        let outcome = match command {
            Command::Accept { owner, owner_reference, accept_time } => {
                after.accept(&owner, owner_reference, accept_time)?
            }
            Command::OwnerResolved { owner, resolution, resolve_time, story } => {
                after.owner_resolved(&owner, resolution, resolve_time, story, now)?
            }
            Command::Escalate { owner, escalated_to, first_complaint, reason, time } => {
                after.escalate(&owner, &escalated_to, first_complaint, &reason, time)?
            }
            Command::MoveDeadline { owner, deadline, reason } => after.move_deadline(&owner, deadline, &reason, now)?,
            Command::Resolve { resolution, cause } => after.resolve_here(&resolution, &cause, now)?,
            Command::Approve { written_answer } => after.approve(written_answer, now)?,
            Command::Reopen { reason } => after.reopen(&reason, now)?,
            Command::WaitForCustomer { reason } => after.wait_for_customer(reason, now)?,
            Command::Resume { note } => after.resume(&note, now)?,
            Command::ChangeSeverity { to, reason } => after.change_severity(to, &reason, now)?,
            Command::LinkDuplicate { original, reason } => after.link_duplicate(&original, &reason, now)?,
            Command::UnlinkDuplicate { reason } => after.unlink_duplicate(&reason, now)?,
            Command::Chase => after.chase(now)?,
            Command::Close { note, request_id } => after.close(note, request_id, now)?,
            Command::Convert { into, from_request } => after.convert(*into, &from_request, now)?,
            Command::PlanVisit { visit } => after.plan_visit(visit, now)?,
            Command::RecordVisit { visit, service, product, opinions, counter_measures } => {
                after.record_visit(*visit, service, product, opinions, counter_measures, now)?
            }
            Command::RecordReplyAttempt { reply, reached, note } => {
                after.record_reply_attempt(*reply, reached, note, now)?
            }
        };
        *self = after;
        Ok(Applied { steps: outcome.steps, effects: outcome.effects })
    }

    // The deadline, its one writer.

    /// The case's deadline rule, as kept on it.
    pub fn rule(&self) -> Rule {
        Rule {
            name: self.deadline_rule.clone(),
            allowed: Duration::seconds(self.deadline_allowed_secs),
            counting: self.deadline_counting,
        }
    }

    /// The deadline computed from what the case keeps, with its steps in words.
    pub fn computed_deadline(&self, time_zone: Tz) -> deadline::Computed {
        let rule = self.rule();
        let inputs = deadline::Inputs {
            start: self.deadline_start,
            rule: &rule,
            severity: self.severity,
            grade: &self.customer_grade,
            paused: Duration::seconds(self.paused_secs),
        };
        deadline::compute(&inputs, time_zone)
    }

    /// Sets the deadline from the case's rule, and when to chase it.
    pub fn recompute_deadline(&mut self, time_zone: Tz) {
        self.deadline = kefu_kit::time::to_micros(self.computed_deadline(time_zone).deadline);
        self.chase_at = self.next_chase();
    }

    /// Starts the case's time anew under `rule`.
    pub fn start_deadline(&mut self, rule: &Rule, start: DateTime<Utc>, time_zone: Tz) {
        self.deadline_start = start;
        self.deadline_rule = rule.name.clone();
        self.deadline_allowed_secs = rule.allowed.num_seconds();
        self.deadline_counting = rule.counting;
        self.paused_secs = 0;
        self.recompute_deadline(time_zone);
    }

    /// When an open case not waiting on the customer is to be chased: at its deadline.
    fn next_chase(&self) -> Option<DateTime<Utc>> {
        (self.state.is_open() && self.waiting_since.is_none()).then_some(self.deadline)
    }

    /// The owner hears of what the service center did to a case it was sent.
    fn notice(&self, action: &str, detail: String, time: DateTime<Utc>) -> Option<Message> {
        let owner = self.owner.parse::<ServiceName>().ok().filter(|owner| *owner != ServiceName::Intake)?;
        self.handed_off.then(|| {
            let notice = CaseNotice {
                complaint: self.name(),
                owner: self.owner.clone(),
                action: action.into(),
                detail,
                notice_time: Some(to_timestamp(time)),
            };
            (owner, Payload::CaseNotice(notice))
        })
    }

    /// An owner's event is about a case routed to it.
    fn routed_to(&self, owner: &str) -> Result<(), Error> {
        if self.owner == owner {
            Ok(())
        } else {
            Err(Error::Precondition(format!("no complaint {} routed to {owner}", self.name())))
        }
    }

    // The rules, one per command.

    fn accept(&mut self, owner: &str, owner_reference: String, accept_time: DateTime<Utc>) -> Result<Outcome, Error> {
        self.routed_to(owner)?;
        let detail = format!("as {owner_reference}");
        self.owner_reference = Some(owner_reference);
        self.accept_time = Some(accept_time);
        // A resolution (or anything after it) may come before the acceptance it follows: it is not undone.
        if self.state == State::Routed {
            self.state = State::Accepted;
        }
        Ok(Outcome::new().step("accepted", owner, accept_time, detail))
    }

    fn owner_resolved(
        &mut self,
        owner: &str,
        resolution: String,
        resolve_time: DateTime<Utc>,
        story: Vec<u8>,
        now: &Now<'_>,
    ) -> Result<Outcome, Error> {
        self.routed_to(owner)?;
        self.owner_story = Some(story);
        let now = Now { time: resolve_time, time_zone: now.time_zone, caller: now.caller };
        Ok(match self.state {
            // Told, closed or linked: the outcome and story are kept, the state stays.
            State::Notified | State::Closed | State::Duplicate => {
                self.resolve_time = Some(resolve_time);
                let outcome = Outcome::new().step("resolved", owner, resolve_time, resolution.clone());
                self.resolution = Some(resolution);
                outcome
            }
            _ => self.resolved(&resolution, owner, &now),
        })
    }

    fn escalate(
        &mut self,
        owner: &str,
        escalated_to: &[String],
        first_complaint: String,
        reason: &str,
        time: DateTime<Utc>,
    ) -> Result<Outcome, Error> {
        self.routed_to(owner)?;
        self.incident = true;
        self.escalated_to = escalated_to.join(",");
        if !first_complaint.is_empty() {
            self.first_complaint = Some(first_complaint);
        }
        let first = self.first_complaint.clone().unwrap_or_else(|| "an earlier complaint".into());
        let detail = format!("incident repeating {first}, escalated to {}: {reason}", self.escalated_to);
        Ok(Outcome::new().step("escalated", owner, time, detail))
    }

    fn move_deadline(
        &mut self,
        owner: &str,
        deadline: DateTime<Utc>,
        reason: &str,
        now: &Now<'_>,
    ) -> Result<Outcome, Error> {
        self.routed_to(owner)?;
        self.start_deadline(&Rule::set_by_owner(owner, reason), deadline, now.time_zone);
        let detail = format!("to {}: {reason}", local(deadline, now.time_zone));
        Ok(Outcome::new().step("deadline_moved", owner, now.time, detail))
    }

    /// The outcome is in — the owner's or the service center's own. A serious or critical complaint
    /// waits for a manager's approval; otherwise the customer's result reply is due.
    fn resolved(&mut self, resolution: &str, actor: &str, now: &Now<'_>) -> Outcome {
        let before = self.state;
        self.resolution = Some(resolution.to_owned());
        self.resolve_time = Some(now.time);
        self.waiting_since = None;
        self.waiting_reason = None;
        self.chase_at = None;
        let needs_approval =
            self.kind == Kind::Complaint && self.severity.needs_approval() && self.approve_time.is_none();
        self.state = if needs_approval { State::AwaitingApproval } else { State::Resolved };
        let mut outcome = Outcome::new().step("resolved", actor, now.time, resolution);
        if needs_approval {
            outcome = outcome.step(
                "awaiting_approval",
                "intake",
                now.time,
                format!(
                    "a {} complaint: a manager approves the outcome and the customer is answered in writing (000 §12)",
                    self.severity
                ),
            );
        } else if before != State::Resolved {
            outcome.effects.replies.push(replies::result(self, now.time_zone));
            if self.kind == Kind::Complaint {
                outcome.effects.visits.push(visits::after_resolution(now.time));
            }
        }
        outcome
    }

    /// The service center resolves a case it holds: an inquiry's answer, a consultation, a
    /// suggestion, a change request or complaint it owns, or a reopened case.
    fn resolve_here(&mut self, resolution: &str, cause: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        let holds = self.state == State::Reopened
            || (self.owner == ServiceName::Intake.as_str() && self.state == State::Accepted);
        if !holds {
            return Err(self.refused(format!(
                "the service center resolves only what it holds (cases it owns while open, and reopened cases); {} resolves this one",
                self.owner
            )));
        }
        let outcome = self.resolved(resolution, &now.caller.user, now);
        if !cause.is_empty() {
            self.cause = cause.to_owned();
        }
        Ok(outcome)
    }

    /// A manager approves a serious or critical complaint's outcome with the written answer.
    fn approve(&mut self, written_answer: String, now: &Now<'_>) -> Result<Outcome, Error> {
        if !APPROVER_ROLES.iter().any(|role| now.caller.has_role(role)) {
            return Err(Error::NotAllowed(format!(
                "approving the outcome of a {} complaint takes a manager (role department_head, business_manager or general_manager; 000 §12)",
                self.severity
            )));
        }
        if self.state != State::AwaitingApproval {
            return Err(self.refused("only an outcome awaiting approval can be approved"));
        }
        self.state = State::Resolved;
        self.approve_time = Some(now.time);
        self.approved_by = Some(now.caller.user.clone());
        let mut outcome = Outcome::new().step("approved", &now.caller.user, now.time, written_answer.clone());
        self.written_answer = Some(written_answer);
        outcome.effects.replies.push(replies::result(self, now.time_zone));
        outcome.effects.visits.push(visits::after_resolution(now.time));
        Ok(outcome)
    }

    /// The customer was told the outcome (their result reply reached them).
    fn notified(&mut self, actor: &str, now: &Now<'_>) -> Outcome {
        if self.state != State::Resolved {
            return Outcome::new();
        }
        self.state = State::Notified;
        self.notify_time = Some(now.time);
        Outcome::new().step("notified", actor, now.time, "the customer was told the outcome")
    }

    /// The customer is not satisfied: the case goes on until they are (001 §8 4.5). The service
    /// center holds it, with 24 hours, and tells the owner.
    fn reopen(&mut self, reason: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        match self.state {
            State::Resolved | State::Notified => {}
            State::Closed => {
                return Err(self.refused(
                    "a closed case is in archives' keeping; register the customer's new complaint, which is linked to this one as a second complaint (二次投诉)",
                ));
            }
            _ => return Err(self.refused("only a resolved case can be reopened")),
        }
        let before = self.clone();
        self.state = State::Reopened;
        self.reopen_count += 1;
        self.approve_time = None;
        self.approved_by = None;
        self.written_answer = None;
        self.notify_time = None;
        self.start_deadline(&Rule::reopened(), now.time, now.time_zone);
        let detail = format!(
            "the customer is not satisfied: {reason}; handled again by {}",
            local(self.deadline, now.time_zone)
        );
        Ok(Outcome::new()
            .step("reopened", &now.caller.user, now.time, detail.clone())
            .event(before.notice("reopened", detail, now.time)))
    }

    /// The case waits on the customer: its deadline is paused.
    fn wait_for_customer(&mut self, reason: String, now: &Now<'_>) -> Result<Outcome, Error> {
        if !self.state.is_open() {
            return Err(self.refused("only an open case can wait on the customer"));
        }
        if self.waiting_since.is_some() {
            return Err(self.refused("it already waits on the customer; resume it first"));
        }
        self.waiting_since = Some(now.time);
        self.chase_at = None;
        let outcome = Outcome::new().step("waiting_on_customer", &now.caller.user, now.time, reason.clone());
        self.waiting_reason = Some(reason);
        Ok(outcome)
    }

    /// The customer answered: the deadline runs again, moved by the time waited (counted as the
    /// rule counts).
    fn resume(&mut self, note: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        let Some(since) = self.waiting_since else {
            return Err(self.refused("it does not wait on the customer"));
        };
        let waited = deadline::elapsed(since, now.time, self.deadline_counting, now.time_zone);
        self.paused_secs += waited.num_seconds();
        self.waiting_since = None;
        self.waiting_reason = None;
        self.recompute_deadline(now.time_zone);
        let detail = format!(
            "waited {} on the customer; deadline now {}{}",
            deadline::words(waited),
            local(self.deadline, now.time_zone),
            if note.is_empty() { String::new() } else { format!(": {note}") }
        );
        Ok(Outcome::new().step("resumed", &now.caller.user, now.time, detail))
    }

    /// A complaint's severity changes, with the reason; its deadline follows.
    fn change_severity(&mut self, to: Severity, reason: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        if self.kind != Kind::Complaint {
            return Err(self.refused(format!("severity is graded for complaints; this is a {}", self.kind)));
        }
        if !self.state.is_open() {
            return Err(self.refused("severity can be changed only while the complaint is being handled"));
        }
        let from = self.severity;
        if from == to {
            return Err(self.refused(format!("its severity is already {to}")));
        }
        self.severity = to;
        self.recompute_deadline(now.time_zone);
        let detail = format!("{from} → {to}: {reason}; deadline now {}", local(self.deadline, now.time_zone));
        Ok(Outcome::new().step("severity_changed", &now.caller.user, now.time, detail))
    }

    /// The same complaint as `original`, by another channel: linked, not handled twice.
    fn link_duplicate(&mut self, original: &Complaint, reason: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        if !matches!(self.state, State::Routed | State::Accepted) {
            return Err(self.refused("only a complaint not yet handled can be linked as a duplicate"));
        }
        if original.case_number == self.case_number {
            return Err(Error::Invalid(kefu_kit::error::FieldViolations::of(
                "duplicate_of",
                "a complaint cannot duplicate itself",
            )));
        }
        if original.state == State::Duplicate {
            return Err(Error::Precondition(format!(
                "{} is itself a duplicate of {}: link to that one",
                original.name(),
                original.duplicate_of.as_deref().unwrap_or_default()
            )));
        }
        if original.waybill_number != self.waybill_number || original.kind != self.kind {
            return Err(Error::Precondition(format!(
                "{} is about waybill {} ({}), {} about {} ({}): not the same complaint",
                original.name(),
                original.waybill_number,
                original.kind,
                self.name(),
                self.waybill_number,
                self.kind
            )));
        }
        Ok(self.linked(original, &now.caller.user, reason, now.time))
    }

    /// Links this complaint to `original` (also at registration, where intake finds the duplicate itself).
    pub(crate) fn linked(&mut self, original: &Complaint, actor: &str, reason: &str, time: DateTime<Utc>) -> Outcome {
        let before = self.clone();
        self.state = State::Duplicate;
        self.duplicate_of = Some(original.name());
        self.chase_at = None;
        let detail = format!("the same complaint as {} (by {}): {reason}", original.name(), original.channel);
        let mut outcome = Outcome::new().step("linked_duplicate", actor, time, detail.clone()).event(before.notice(
            "linked_duplicate",
            detail,
            time,
        ));
        outcome.effects.other_steps.push((
            original.case_number.clone(),
            Step {
                action: "duplicate_linked",
                actor: actor.to_owned(),
                time,
                detail: format!("{} (by {}) is the same complaint", self.name(), self.channel),
            },
        ));
        outcome
    }

    /// Undoes a link: the complaint stands on its own again; if its owner was never sent it, it is now.
    fn unlink_duplicate(&mut self, reason: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        if self.state != State::Duplicate {
            return Err(self.refused("only a complaint linked as a duplicate can be unlinked"));
        }
        let before = self.clone();
        self.state = if self.owner_reference.is_some() { State::Accepted } else { State::Routed };
        let was = self.duplicate_of.take().unwrap_or_default();
        self.chase_at = self.next_chase();
        let detail = format!("no longer the same complaint as {was}: {reason}");
        let outcome = Outcome::new().step("unlinked_duplicate", &now.caller.user, now.time, detail.clone());
        if !before.handed_off
            && let Ok(owner) = self.owner.parse::<ServiceName>()
            && owner != ServiceName::Intake
        {
            self.handed_off = true;
            let routed = Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(self)) });
            Ok(outcome.event(Some((owner, routed))))
        } else {
            Ok(outcome.event(before.notice("unlinked_duplicate", detail, now.time)))
        }
    }

    /// An open case past its deadline: its owner is chased and a supervisor told; it is chased
    /// again a day later while it stays overdue.
    fn chase(&mut self, now: &Now<'_>) -> Result<Outcome, Error> {
        if !self.state.is_open() || self.waiting_since.is_some() || self.deadline > now.time {
            return Err(Error::Precondition(format!("{} is no longer overdue", self.name())));
        }
        self.chase_at = Some(now.time + Duration::days(1));
        let overdue = deadline::words(now.time - self.deadline);
        let deadline = local(self.deadline, now.time_zone);
        let mut outcome = Outcome::new()
            .step(
                "chased",
                "intake",
                now.time,
                format!("{overdue} past the deadline {deadline}: {} chased, a supervisor told", self.owner),
            )
            // The owner hears of it in its own case, besides the chase in intake's replies.
            .event(self.notice("chased", format!("{overdue} past the deadline {deadline} (催办)"), now.time));
        outcome.effects.replies.push(replies::chase(self, now.time_zone));
        outcome.effects.replies.push(replies::overdue_notice(self, now.time_zone));
        Ok(outcome)
    }

    /// Closes a resolved case once the customer has been told; its story goes to archives.
    fn close(&mut self, note: String, request_id: Option<String>, now: &Now<'_>) -> Result<Outcome, Error> {
        match self.state {
            State::Resolved | State::Notified => {}
            State::Closed => {
                let by = self.closed_by.as_deref().unwrap_or("someone");
                return Err(self.refused(format!("it was closed before, by {by}")));
            }
            State::AwaitingApproval => return Err(self.refused("a manager must approve its outcome first (000 §12)")),
            _ => {
                return Err(self.refused(format!("only a case its owner ({}) has resolved can be closed", self.owner)));
            }
        }
        self.state = State::Closed;
        self.close_time = Some(now.time);
        self.closed_by = Some(now.caller.user.clone());
        self.chase_at = None;
        self.close_request_id = request_id;
        let mut outcome = Outcome::new().step("closed", &now.caller.user, now.time, note.clone());
        self.close_note = Some(note);
        outcome.effects.story_to_archives = true;
        Ok(outcome)
    }

    /// An inquiry or consultation turns into a complaint, keeping its case number and history.
    fn convert(&mut self, into: Registration, from_request: &str, now: &Now<'_>) -> Result<Outcome, Error> {
        if now.caller.cannot_see_branch(&self.branch) {
            return Err(Error::no_complaint(from_request));
        }
        if !matches!(self.kind, Kind::Inquiry | Kind::Consultation) {
            return Err(Error::Precondition(format!(
                "{from_request} is a {}: only an inquiry or a consultation turns into a complaint",
                self.kind
            )));
        }
        if matches!(self.state, State::Closed | State::Duplicate) {
            return Err(Error::Precondition(format!(
                "{from_request} is {}: register a new complaint instead",
                self.state
            )));
        }
        let before = self.clone();
        let mut fresh = into.new_complaint(&before.case_number, before.request_id.clone(), now.caller, now.time);
        fresh.seq = before.seq;
        fresh.version = before.version;
        fresh.create_time = before.create_time;
        fresh.channel = before.channel;
        fresh.received_by = before.received_by.clone();
        fresh.received_by_department = before.received_by_department.clone();
        fresh.customer_grade = before.customer_grade.clone();
        if fresh.contact_phone.is_empty() {
            fresh.contact_name = before.contact_name.clone();
            fresh.contact_phone = before.contact_phone.clone();
        }
        if fresh.branch.is_empty() {
            fresh.branch = before.branch.clone();
        }
        fresh.start_deadline(&into.rule, now.time, now.time_zone);
        *self = fresh;
        let detail = format!(
            "the {} turned into a complaint: {} — {}",
            before.kind,
            self.registered_detail(now.time_zone),
            before.resolution.as_deref().map(|answer| format!("answered before: {answer}")).unwrap_or_default()
        );
        let routed = (into.owner != ServiceName::Intake)
            .then(|| (into.owner, Payload::CaseRouted(CaseRouted { complaint: Some(routed_complaint(self)) })));
        let mut outcome = Outcome::new().step("converted", &now.caller.user, now.time, detail).event(routed);
        outcome.effects.replies.push(replies::acknowledgement(self, now.time_zone));
        Ok(outcome)
    }

    /// A follow-up visit is planned; a face-to-face one is announced three days ahead.
    fn plan_visit(&mut self, visit: NewVisit, now: &Now<'_>) -> Result<Outcome, Error> {
        if visit.method == "in_person" && visit.plan_time < now.time + visits::IN_PERSON_NOTICE {
            return Err(Error::Precondition(
                "a face-to-face visit is announced 3 days ahead (003 第4条): plan it at least 3 days from now".into(),
            ));
        }
        let detail = format!("by {} on {}: {}", visit.method, local(visit.plan_time, now.time_zone), visit.purpose);
        let mut outcome = Outcome::new().step("visit_planned", &now.caller.user, now.time, detail);
        outcome.effects.visits.push(visit);
        Ok(outcome)
    }

    /// A planned visit is recorded; a customer not satisfied with the service reopens a resolved case.
    fn record_visit(
        &mut self,
        visit: visits::Model,
        service: &'static str,
        product: &'static str,
        opinions: String,
        counter_measures: String,
        now: &Now<'_>,
    ) -> Result<Outcome, Error> {
        let visit_name = format!("{}/visits/{}", self.name(), visit.seq);
        if visit.state != visits::PLANNED {
            return Err(Error::Precondition(format!("{visit_name} was {} before", visit.state)));
        }
        let reopen = visits::unsatisfied(service) && matches!(self.state, State::Resolved | State::Notified);
        let recorded = visits::Model {
            state: visits::RECORDED.into(),
            service_satisfaction: service.into(),
            product_satisfaction: product.into(),
            opinions,
            counter_measures,
            visit_time: Some(now.time),
            recorded_by: now.caller.user.clone(),
            reopened: reopen,
            ..visit
        };
        let detail = format!("service {service}, product {product}: {}", recorded.opinions);
        let mut outcome = if reopen {
            let reason =
                format!("follow-up visit: the customer is not satisfied (service {service}): {}", recorded.opinions);
            self.reopen(&reason, now)?
        } else {
            Outcome::new()
        };
        outcome = outcome.step("visited", &now.caller.user, now.time, detail);
        outcome.effects.recorded_visit = Some(recorded);
        Ok(outcome)
    }

    /// An attempt to deliver a reply; the result reaching the customer tells them the outcome.
    fn record_reply_attempt(
        &mut self,
        reply: replies::Model,
        reached: bool,
        note: String,
        now: &Now<'_>,
    ) -> Result<Outcome, Error> {
        if reply.state == replies::DELIVERED {
            return Err(Error::Precondition(format!("{}/replies/{} was delivered before", self.name(), reply.seq)));
        }
        let told = reached && reply.purpose == replies::Purpose::Result.as_str();
        let mut outcome = if told { self.notified(&now.caller.user, now) } else { Outcome::new() };
        outcome.effects.reply_attempt = Some((reply, reached, note));
        Ok(outcome)
    }

    /// The registration step in words (no personal data).
    pub fn registered_detail(&self, time_zone: Tz) -> String {
        let kind = if self.kind == Kind::Complaint { self.category.clone() } else { self.kind.to_string() };
        format!(
            "{kind} ({}) by {} at branch {}, to {} ({}); deadline {}",
            self.severity,
            self.channel,
            if self.branch.is_empty() { "-" } else { &self.branch },
            self.owner,
            self.responsible_unit,
            local(self.deadline, time_zone)
        )
    }
}

/// A time as the company's staff read it.
pub fn local(time: DateTime<Utc>, time_zone: Tz) -> String {
    time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string()
}
