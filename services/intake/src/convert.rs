//! Proto ⇄ domain: a complaint, a visit, a reply and a deadline's explanation as the API shows
//! them, and the API's enums as intake's. No rules and no I/O.

use chrono::{DateTime, Duration, Utc};
use kefu_kit::{
    error::FieldViolations,
    time::{to_duration, to_timestamp},
};
use kefu_proto::{intake::v1 as pb, types::v1::RoutedComplaint};
use prost::Message;

use crate::{
    complaint::{Complaint, local},
    deadline,
    domain::{Channel, Kind, Severity, State},
    replies, visits,
};

/// The facts of a complaint as its owner receives them, from the recorded row.
pub fn routed_complaint(row: &Complaint) -> RoutedComplaint {
    RoutedComplaint {
        complaint: row.name(),
        category: row.category.clone(),
        waybill_number: row.waybill_number.clone(),
        channel: row.channel.to_string(),
        description: row.description.clone(),
        customer_request: row.customer_request.clone(),
        contact_name: row.contact_name.clone(),
        contact_phone: row.contact_phone.clone(),
        branch: row.branch.clone(),
        responsible_unit: row.responsible_unit.clone(),
        create_time: Some(to_timestamp(row.create_time)),
        deadline: Some(to_timestamp(row.deadline)),
        received_by: row.received_by.clone(),
        first_complaint: row.first_complaint.clone().unwrap_or_default(),
    }
}

pub fn channel_from_proto(channel: i32) -> Option<Channel> {
    match pb::Channel::try_from(channel).ok()? {
        pb::Channel::Unspecified => Some(Channel::Unspecified),
        pb::Channel::Phone => Some(Channel::Phone),
        pb::Channel::Letter => Some(Channel::Letter),
        pb::Channel::InPerson => Some(Channel::InPerson),
        pb::Channel::Online => Some(Channel::Online),
    }
}

fn channel_to_proto(channel: Channel) -> pb::Channel {
    match channel {
        Channel::Phone => pb::Channel::Phone,
        Channel::Letter => pb::Channel::Letter,
        Channel::InPerson => pb::Channel::InPerson,
        Channel::Online => pb::Channel::Online,
        Channel::Unspecified => pb::Channel::Unspecified,
    }
}

fn state_to_proto(state: State) -> pb::State {
    match state {
        State::Routed => pb::State::Routed,
        State::Accepted => pb::State::Accepted,
        State::AwaitingApproval => pb::State::AwaitingApproval,
        State::Resolved => pb::State::Resolved,
        State::Notified => pb::State::Notified,
        State::Reopened => pb::State::Reopened,
        State::Duplicate => pb::State::Duplicate,
        State::Closed => pb::State::Closed,
    }
}

pub fn to_proto(row: Complaint) -> pb::Complaint {
    pb::Complaint {
        name: row.name(),
        category: row.category,
        waybill_number: row.waybill_number,
        channel: channel_to_proto(row.channel) as i32,
        description: row.description,
        customer_request: row.customer_request,
        contact: Some(pb::Contact { name: row.contact_name, phone: row.contact_phone }),
        branch: row.branch,
        owner: row.owner,
        responsible_unit: row.responsible_unit,
        owner_reference: row.owner_reference.unwrap_or_default(),
        state: state_to_proto(row.state) as i32,
        create_time: Some(to_timestamp(row.create_time)),
        deadline: Some(to_timestamp(row.deadline)),
        accept_time: row.accept_time.map(to_timestamp),
        received_by: row.received_by,
        resolution: row.resolution.unwrap_or_default(),
        resolve_time: row.resolve_time.map(to_timestamp),
        incident: row.incident,
        first_complaint: row.first_complaint.unwrap_or_default(),
        escalated_to: row.escalated_to.split(',').filter(|to| !to.is_empty()).map(str::to_owned).collect(),
        close_time: row.close_time.map(to_timestamp),
        closed_by: row.closed_by.unwrap_or_default(),
        kind: kind_to_proto(row.kind) as i32,
        severity: severity_to_proto(row.severity) as i32,
        change: row.change_request.as_deref().and_then(|bytes| pb::ChangeRequest::decode(bytes).ok()),
        waiting_since: row.waiting_since.map(to_timestamp),
        duplicate_of: row.duplicate_of.unwrap_or_default(),
        approve_time: row.approve_time.map(to_timestamp),
        approved_by: row.approved_by.unwrap_or_default(),
        written_answer: row.written_answer.unwrap_or_default(),
        notify_time: row.notify_time.map(to_timestamp),
        reopen_count: row.reopen_count,
        customer_grade: row.customer_grade,
        cause: row.cause,
    }
}

pub fn severity_from_proto(severity: i32) -> Result<Severity, FieldViolations> {
    match pb::Severity::try_from(severity) {
        Ok(pb::Severity::Unspecified | pb::Severity::General) => Ok(Severity::General),
        Ok(pb::Severity::Serious) => Ok(Severity::Serious),
        Ok(pb::Severity::Critical) => Ok(Severity::Critical),
        Err(_) => {
            let mut violations = FieldViolations::new();
            violations.add("complaint.severity", "GENERAL, SERIOUS or CRITICAL");
            Err(violations)
        }
    }
}

pub fn visit_method(method: i32) -> Option<&'static str> {
    match pb::VisitMethod::try_from(method).ok()? {
        pb::VisitMethod::VisitPhone => Some("phone"),
        pb::VisitMethod::VisitEmail => Some("email"),
        pb::VisitMethod::VisitInPerson => Some("in_person"),
        pb::VisitMethod::VisitInstantMessage => Some("instant_message"),
        pb::VisitMethod::Unspecified => None,
    }
}

pub fn satisfaction(level: i32) -> Option<&'static str> {
    match pb::Satisfaction::try_from(level).ok()? {
        pb::Satisfaction::VeryGood => Some("very_good"),
        pb::Satisfaction::Good => Some("good"),
        pb::Satisfaction::Fair => Some("fair"),
        pb::Satisfaction::Poor => Some("poor"),
        pb::Satisfaction::VeryPoor => Some("very_poor"),
        pb::Satisfaction::Unspecified => None,
    }
}

pub fn visit_to_proto(row: visits::Model) -> pb::Visit {
    let method = match row.method.as_str() {
        "phone" => pb::VisitMethod::VisitPhone,
        "email" => pb::VisitMethod::VisitEmail,
        "in_person" => pb::VisitMethod::VisitInPerson,
        "instant_message" => pb::VisitMethod::VisitInstantMessage,
        _ => pb::VisitMethod::Unspecified,
    };
    let level = |text: &str| match text {
        "very_good" => pb::Satisfaction::VeryGood,
        "good" => pb::Satisfaction::Good,
        "fair" => pb::Satisfaction::Fair,
        "poor" => pb::Satisfaction::Poor,
        "very_poor" => pb::Satisfaction::VeryPoor,
        _ => pb::Satisfaction::Unspecified,
    };
    let state = match row.state.as_str() {
        visits::PLANNED => pb::VisitState::Planned,
        visits::RECORDED => pb::VisitState::Recorded,
        visits::SIGNED => pb::VisitState::Signed,
        _ => pb::VisitState::Unspecified,
    };
    pb::Visit {
        name: format!("complaints/{}/visits/{}", row.case_number, row.seq),
        method: method as i32,
        visitor: row.visitor,
        plan_time: Some(to_timestamp(row.plan_time)),
        purpose: row.purpose,
        state: state as i32,
        service_satisfaction: level(&row.service_satisfaction) as i32,
        product_satisfaction: level(&row.product_satisfaction) as i32,
        opinions: row.opinions,
        counter_measures: row.counter_measures,
        visit_time: row.visit_time.map(to_timestamp),
        recorded_by: row.recorded_by,
        signed_by: row.signed_by,
        sign_time: row.sign_time.map(to_timestamp),
        reopened: row.reopened,
    }
}

pub fn reply_to_proto(row: replies::Model) -> pb::Reply {
    let purpose = match row.purpose.as_str() {
        "acknowledgement" => pb::ReplyPurpose::Acknowledgement,
        "result" => pb::ReplyPurpose::Result,
        "chase" => pb::ReplyPurpose::Chase,
        "overdue_notice" => pb::ReplyPurpose::OverdueNotice,
        _ => pb::ReplyPurpose::Unspecified,
    };
    let state = match row.state.as_str() {
        replies::PENDING => pb::ReplyState::Pending,
        replies::DELIVERED => pb::ReplyState::Delivered,
        replies::UNREACHED => pb::ReplyState::Unreached,
        _ => pb::ReplyState::Unspecified,
    };
    pb::Reply {
        name: format!("complaints/{}/replies/{}", row.case_number, row.seq),
        purpose: purpose as i32,
        recipient: row.recipient,
        channel: row.channel,
        text: row.text,
        state: state as i32,
        attempts: row.attempts,
        due_time: Some(to_timestamp(row.due_time)),
        deliver_time: row.deliver_time.map(to_timestamp),
        create_time: Some(to_timestamp(row.create_time)),
        last_note: row.last_note,
    }
}

/// How the case's deadline was computed.
pub fn explain(row: &Complaint, time_zone: chrono_tz::Tz) -> pb::DeadlineExplanation {
    let name = format!("complaints/{}", row.case_number);
    if row.deadline_rule.is_empty() {
        return pb::DeadlineExplanation {
            complaint: name,
            deadline: Some(to_timestamp(row.deadline)),
            rule: "registration time plus the routing policy's handling time (registered before rules were kept)"
                .into(),
            working_hours: false,
            steps: vec![],
            paused: Some(to_duration(Duration::zero())),
        };
    }
    let computed = row.computed_deadline(time_zone);
    let mut steps = computed.steps;
    let local = |time: DateTime<Utc>| local(time, time_zone);
    if computed.deadline != row.deadline {
        steps.push(format!("moved by {} to {} (see the timeline)", row.owner, local(row.deadline)));
    }
    if let Some(since) = row.waiting_since {
        steps.push(format!(
            "waiting on the customer since {}: the deadline is paused, and the time waited is added when the case resumes",
            local(since)
        ));
    }
    let rule = row.rule();
    pb::DeadlineExplanation {
        complaint: name,
        deadline: Some(to_timestamp(row.deadline)),
        rule: rule.name,
        working_hours: rule.counting == deadline::Counting::WorkingHours,
        steps,
        paused: Some(to_duration(Duration::seconds(row.paused_secs))),
    }
}

fn kind_to_proto(kind: Kind) -> pb::Kind {
    match kind {
        Kind::Complaint => pb::Kind::Complaint,
        Kind::Inquiry => pb::Kind::Inquiry,
        Kind::Consultation => pb::Kind::Consultation,
        Kind::Suggestion => pb::Kind::Suggestion,
        Kind::ChangeRequest => pb::Kind::ChangeRequest,
    }
}

fn severity_to_proto(severity: Severity) -> pb::Severity {
    match severity {
        Severity::General => pb::Severity::General,
        Severity::Serious => pb::Severity::Serious,
        Severity::Critical => pb::Severity::Critical,
    }
}
