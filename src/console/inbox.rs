//! The console's inbox and case page: complaints as the gateway gives them to the person signed
//! in, with what only the server should say about them — each case's SLA badge, by the server's
//! clock in the company's time zone, and how many cases each view holds.
//!
//! A badge is [`Sla`]: `overdue`, `due_today`, `on_time` or `paused` while a case is open;
//! `met` or `missed` once the owner has resolved it (by its resolve time against its deadline).

use chrono::{DateTime, Utc};
use kefu_kit::time::from_timestamp;
use kefu_proto::intake::v1::{self as intake, Complaint, State, intake_client::IntakeClient};
use serde::Deserialize;
use serde_json::{Value, json};
use tonic::Code;

use super::{Console, Refusal};
use crate::client::Gateway;

/// The most complaints one inbox reads, newest first; beyond it the answer says `truncated`.
const MOST_READ: usize = 2000;
const PAGE: i32 = 500;

/// A case's standing against its deadline, as its badge shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sla {
    /// Past its deadline and still open: minutes over.
    Overdue(i64),
    /// Open and due before midnight in the company's time zone: minutes left.
    DueToday(i64),
    /// Open with time to spare: minutes left.
    OnTime(i64),
    /// Waiting on the customer: the deadline stands still with these minutes left.
    Paused(i64),
    /// Resolved by its deadline.
    Met,
    /// Resolved after its deadline: minutes late.
    Missed(i64),
    /// No deadline to keep (a duplicate, or a case without one).
    None,
}

impl Sla {
    /// The badge of `complaint` at `now`.
    pub fn of(complaint: &Complaint, now: DateTime<Utc>, zone: chrono_tz::Tz) -> Sla {
        let Some(deadline) = complaint.deadline.as_ref().and_then(from_timestamp) else { return Sla::None };
        if complaint.state() == State::Duplicate {
            return Sla::None;
        }
        if let Some(resolved) = complaint.resolve_time.as_ref().and_then(from_timestamp)
            && !is_open(complaint)
        {
            let late = (resolved - deadline).num_minutes();
            return if resolved <= deadline { Sla::Met } else { Sla::Missed(late.max(1)) };
        }
        if !is_open(complaint) {
            return Sla::None;
        }
        if let Some(since) = complaint.waiting_since.as_ref().and_then(from_timestamp) {
            return Sla::Paused((deadline - since).num_minutes().max(0));
        }
        if now > deadline {
            return Sla::Overdue((now - deadline).num_minutes().max(1));
        }
        let left = (deadline - now).num_minutes();
        if deadline.with_timezone(&zone).date_naive() == now.with_timezone(&zone).date_naive() {
            Sla::DueToday(left)
        } else {
            Sla::OnTime(left)
        }
    }

    pub fn to_value(self) -> Value {
        let (status, minutes) = match self {
            Sla::Overdue(minutes) => ("overdue", minutes),
            Sla::DueToday(minutes) => ("due_today", minutes),
            Sla::OnTime(minutes) => ("on_time", minutes),
            Sla::Paused(minutes) => ("paused", minutes),
            Sla::Met => ("met", 0),
            Sla::Missed(minutes) => ("missed", minutes),
            Sla::None => ("none", 0),
        };
        json!({"status": status, "minutes": minutes})
    }
}

/// Whether the case still needs work: not yet resolved, notified, closed, or a duplicate.
fn is_open(complaint: &Complaint) -> bool {
    !matches!(complaint.state(), State::Resolved | State::Notified | State::Closed | State::Duplicate)
}

/// The inbox's views, in the order the page shows them.
const VIEWS: &[&str] = &["open", "overdue", "due_today", "awaiting_approval", "reopened", "paused", "all"];

/// Whether `complaint`, with its badge, belongs in `view`.
fn in_view(view: &str, complaint: &Complaint, sla: Sla) -> bool {
    match view {
        "open" => is_open(complaint),
        "overdue" => matches!(sla, Sla::Overdue(_)),
        "due_today" => matches!(sla, Sla::DueToday(_)),
        "awaiting_approval" => complaint.state() == State::AwaitingApproval,
        "reopened" => complaint.state() == State::Reopened,
        "paused" => matches!(sla, Sla::Paused(_)),
        _ => true,
    }
}

/// What the inbox asks for. Every field is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InboxQuery {
    /// One of [`VIEWS`]; default `open`.
    view: String,
    owner: String,
    branch: String,
    category: String,
    state: String,
    kind: String,
    /// A case number, a waybill number or a customer's phone.
    search: String,
    /// `deadline` (default), `created`, `branch`, `category`, `state`; `-` before it reverses.
    sort: String,
}

/// Filter terms from the query's fields, each value checked so it stays one term.
fn filter_of(query: &InboxQuery) -> Result<String, Refusal> {
    let mut terms = Vec::new();
    for (field, value) in [
        ("owner", &query.owner),
        ("branch", &query.branch),
        ("category", &query.category),
        ("state", &query.state),
        ("kind", &query.kind),
    ] {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        if !value.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
            return Err(invalid(field, "letters, digits, '_', '-' and '.' only"));
        }
        terms.push(format!("{field} = \"{value}\""));
    }
    Ok(terms.join(" AND "))
}

fn invalid(field: &str, description: &str) -> Refusal {
    let mut violations = kefu_kit::error::FieldViolations::new();
    violations.add(field, description);
    Refusal::from(violations.into_status())
}

/// Reads complaints matching `filter`, newest first, up to `most`; and whether there were more.
async fn read(gateway: &Gateway, filter: &str, most: usize) -> Result<(Vec<Complaint>, bool), Refusal> {
    let mut client = IntakeClient::new(gateway.clone());
    let mut complaints = Vec::new();
    let mut page_token = String::new();
    loop {
        let request = intake::ListComplaintsRequest {
            page_size: PAGE.min(most.saturating_sub(complaints.len()) as i32).max(1),
            page_token,
            filter: filter.to_owned(),
        };
        let page = client.list_complaints(request).await?.into_inner();
        complaints.extend(page.complaints);
        if page.next_page_token.is_empty() {
            return Ok((complaints, false));
        }
        if complaints.len() >= most {
            return Ok((complaints, true));
        }
        page_token = page.next_page_token;
    }
}

/// A case number from what a person typed: `20261122-7K3M9Q` or `complaints/20261122-7K3M9Q`.
fn case_number(search: &str) -> Option<String> {
    let number = search.trim().trim_start_matches("complaints/").to_ascii_uppercase();
    let (date, code) = number.split_once('-')?;
    (date.len() == 8 && date.chars().all(|c| c.is_ascii_digit()) && !code.is_empty() && code.len() <= 12)
        .then_some(number)
}

/// The complaints a search finds: the case of that number, or those with that waybill or phone.
async fn search(gateway: &Gateway, text: &str) -> Result<Vec<Complaint>, Refusal> {
    let text = text.trim();
    if text.chars().any(|c| c == '"' || c.is_control()) || text.len() > 64 {
        return Err(invalid("search", "a case number, a waybill number or a phone number"));
    }
    if let Some(number) = case_number(text) {
        let request = intake::GetComplaintRequest { name: format!("complaints/{number}") };
        return match IntakeClient::new(gateway.clone()).get_complaint(request).await {
            Ok(found) => Ok(vec![found.into_inner()]),
            Err(status) if status.code() == Code::NotFound => Ok(Vec::new()),
            Err(status) => Err(status.into()),
        };
    }
    let (mut found, _) = read(gateway, &format!("waybill_number = \"{text}\""), PAGE as usize).await?;
    let (by_phone, _) = read(gateway, &format!("contact.phone = \"{text}\""), PAGE as usize).await?;
    for complaint in by_phone {
        if !found.iter().any(|earlier| earlier.name == complaint.name) {
            found.push(complaint);
        }
    }
    Ok(found)
}

/// `/api/inbox`: the view's rows with their badges, and every view's count.
pub async fn inbox(console: &Console, gateway: &Gateway, query: InboxQuery) -> Result<Value, Refusal> {
    let view = if query.view.is_empty() { "open" } else { query.view.as_str() };
    if !VIEWS.contains(&view) {
        return Err(invalid("view", "one of open, overdue, due_today, awaiting_approval, reopened, paused, all"));
    }
    let filter = filter_of(&query)?;
    let (complaints, truncated) = if query.search.trim().is_empty() {
        read(gateway, &filter, MOST_READ).await?
    } else {
        (search(gateway, &query.search).await?, false)
    };
    let now = console.clock.now();
    let badged: Vec<(Complaint, Sla)> = complaints
        .into_iter()
        .map(|complaint| {
            let sla = Sla::of(&complaint, now, console.zone);
            (complaint, sla)
        })
        .collect();
    let counts: serde_json::Map<String, Value> = VIEWS
        .iter()
        .map(|view| {
            let count = badged.iter().filter(|(complaint, sla)| in_view(view, complaint, *sla)).count();
            ((*view).to_owned(), json!(count))
        })
        .collect();
    let mut branches = std::collections::BTreeMap::<String, usize>::new();
    for (complaint, _) in badged.iter().filter(|(complaint, _)| is_open(complaint)) {
        *branches.entry(complaint.branch.clone()).or_default() += 1;
    }
    // With a search, every case found is shown whatever the view.
    let mut rows: Vec<&(Complaint, Sla)> = badged
        .iter()
        .filter(|(complaint, sla)| !query.search.trim().is_empty() || in_view(view, complaint, *sla))
        .collect();
    sort(&mut rows, &query.sort)?;
    Ok(json!({
        "now": now.to_rfc3339(),
        "view": view,
        "counts": counts,
        "branches": branches.into_iter().map(|(branch, open)| json!({"branch": branch, "open": open})).collect::<Vec<_>>(),
        "rows": rows.iter().map(|(complaint, sla)| row(console, complaint, *sla)).collect::<Vec<_>>(),
        "truncated": truncated,
    }))
}

fn sort(rows: &mut [&(Complaint, Sla)], by: &str) -> Result<(), Refusal> {
    let (reverse, key) = match by.strip_prefix('-') {
        Some(key) => (true, key),
        None => (false, by),
    };
    let time = |timestamp: &Option<prost_types::Timestamp>| timestamp.as_ref().map(|t| (t.seconds, t.nanos));
    match key {
        "" | "deadline" => {
            rows.sort_by_key(|(complaint, _)| (time(&complaint.deadline).is_none(), time(&complaint.deadline)))
        }
        "created" => rows.sort_by_key(|(complaint, _)| std::cmp::Reverse(time(&complaint.create_time))),
        "branch" => rows.sort_by(|(a, _), (b, _)| a.branch.cmp(&b.branch)),
        "category" => rows.sort_by(|(a, _), (b, _)| a.category.cmp(&b.category)),
        "state" => rows.sort_by_key(|(complaint, _)| complaint.state),
        _ => {
            return Err(invalid("sort", "deadline, created, branch, category or state, with '-' before it to reverse"));
        }
    }
    if reverse {
        rows.reverse();
    }
    Ok(())
}

/// A complaint as the page gets it: its fields as the API gives them, and its badge.
fn row(console: &Console, complaint: &Complaint, sla: Sla) -> Value {
    let mut value = console.api.value_of(complaint, "kefu.intake.v1.Complaint");
    if let Value::Object(fields) = &mut value {
        fields.insert("sla".into(), sla.to_value());
    }
    value
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseQuery {
    /// `complaints/{case_number}`, or the case number alone.
    name: String,
}

/// `/api/case`: one case, with what the case page shows beside it. A part the caller may not see
/// (say, replies for a branch system) is left out and named in `unavailable`.
pub async fn case(console: &Console, gateway: &Gateway, query: CaseQuery) -> Result<Value, Refusal> {
    let number = case_number(&query.name).ok_or_else(|| invalid("name", "a case number such as 20261122-7K3M9Q"))?;
    let name = format!("complaints/{number}");
    let mut client = IntakeClient::new(gateway.clone());
    let complaint = client.get_complaint(intake::GetComplaintRequest { name: name.clone() }).await?.into_inner();
    let now = console.clock.now();
    let sla = Sla::of(&complaint, now, console.zone);
    let mut unavailable = Vec::new();
    let mut part = |what: &str, result: Result<Value, tonic::Status>| match result {
        Ok(value) => value,
        Err(status) => {
            unavailable
                .push(json!({"part": what, "code": super::code_name(status.code()), "message": status.message()}));
            Value::Null
        }
    };
    let deadline = client
        .explain_deadline(intake::ExplainDeadlineRequest { name: name.clone() })
        .await
        .map(|explanation| console.api.value_of(&explanation.into_inner(), "kefu.intake.v1.DeadlineExplanation"));
    let deadline = part("deadline", deadline);
    let timeline = client
        .get_complaint_timeline(intake::GetComplaintTimelineRequest { name: name.clone() })
        .await
        .map(|timeline| console.api.value_of(&timeline.into_inner(), "kefu.intake.v1.ComplaintTimeline"));
    let timeline = part("timeline", timeline);
    let replies = client
        .list_replies(intake::ListRepliesRequest { complaint: name.clone(), page_size: 50, ..Default::default() })
        .await
        .map(|replies| console.api.value_of(&replies.into_inner(), "kefu.intake.v1.ListRepliesResponse"));
    let replies = part("replies", replies);
    let visits = client
        .list_visits(intake::ListVisitsRequest { parent: name.clone(), page_size: 20, ..Default::default() })
        .await
        .map(|visits| console.api.value_of(&visits.into_inner(), "kefu.intake.v1.ListVisitsResponse"));
    let visits = part("visits", visits);
    let related = related(gateway, &complaint).await;
    let related = part(
        "related",
        related.map(|others| {
            Value::Array(
                others
                    .iter()
                    .map(|(other, relation)| {
                        let mut value = row(console, other, Sla::of(other, now, console.zone));
                        if let Value::Object(fields) = &mut value {
                            fields.insert("relation".into(), json!(relation));
                        }
                        value
                    })
                    .collect(),
            )
        }),
    );
    Ok(json!({
        "now": now.to_rfc3339(),
        "complaint": row(console, &complaint, sla),
        "deadline": deadline,
        "timeline": timeline,
        "replies": replies,
        "visits": visits,
        "related": related,
        "unavailable": unavailable,
    }))
}

/// The customer's other cases: the same waybill or the same phone, each with how it relates to
/// this one (`incident`: a second complaint about the same event; `duplicate`; `same_waybill`;
/// `same_phone`).
async fn related(gateway: &Gateway, complaint: &Complaint) -> Result<Vec<(Complaint, &'static str)>, tonic::Status> {
    let mut found: Vec<Complaint> = Vec::new();
    let mut terms = Vec::new();
    if !complaint.waybill_number.is_empty() {
        terms.push(format!("waybill_number = \"{}\"", complaint.waybill_number.replace('"', "")));
    }
    if let Some(phone) =
        complaint.contact.as_ref().map(|contact| contact.phone.trim()).filter(|phone| !phone.is_empty())
    {
        terms.push(format!("contact.phone = \"{}\"", phone.replace('"', "")));
    }
    for filter in terms {
        let (page, _) = read(gateway, &filter, 100).await.map_err(|refusal| refusal.status)?;
        for other in page {
            if other.name != complaint.name && !found.iter().any(|earlier| earlier.name == other.name) {
                found.push(other);
            }
        }
    }
    Ok(found
        .into_iter()
        .map(|other| {
            let relation = if other.duplicate_of == complaint.name || complaint.duplicate_of == other.name {
                "duplicate"
            } else if other.first_complaint == complaint.name || complaint.first_complaint == other.name {
                "incident"
            } else if other.waybill_number == complaint.waybill_number && !other.waybill_number.is_empty() {
                "same_waybill"
            } else {
                "same_phone"
            };
            (other, relation)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        chrono_tz::Asia::Shanghai
            .from_local_datetime(&chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").expect("a time"))
            .single()
            .expect("one time")
            .with_timezone(&Utc)
    }

    fn complaint(state: State, deadline: &str) -> Complaint {
        Complaint {
            state: state as i32,
            deadline: Some(kefu_kit::time::to_timestamp(at(deadline))),
            ..Default::default()
        }
    }

    #[test]
    fn a_badge_says_where_a_case_stands_by_the_company_s_calendar() {
        let zone = chrono_tz::Asia::Shanghai;
        let now = at("2026-11-27 09:00");
        assert_eq!(Sla::of(&complaint(State::Accepted, "2026-11-27 08:00"), now, zone), Sla::Overdue(60));
        assert_eq!(Sla::of(&complaint(State::Routed, "2026-11-27 23:30"), now, zone), Sla::DueToday(14 * 60 + 30));
        // Half past midnight the next day is tomorrow in Shanghai, though still the same UTC date.
        assert_eq!(Sla::of(&complaint(State::Routed, "2026-11-28 00:30"), now, zone), Sla::OnTime(15 * 60 + 30));
        let mut waiting = complaint(State::Accepted, "2026-11-27 12:00");
        waiting.waiting_since = Some(kefu_kit::time::to_timestamp(at("2026-11-27 10:00")));
        assert_eq!(Sla::of(&waiting, at("2026-11-29 10:00"), zone), Sla::Paused(120), "paused is not overdue");
        let mut resolved = complaint(State::Resolved, "2026-11-27 12:00");
        resolved.resolve_time = Some(kefu_kit::time::to_timestamp(at("2026-11-27 11:00")));
        assert_eq!(Sla::of(&resolved, now, zone), Sla::Met);
        resolved.resolve_time = Some(kefu_kit::time::to_timestamp(at("2026-11-27 12:45")));
        assert_eq!(Sla::of(&resolved, now, zone), Sla::Missed(45));
        assert_eq!(Sla::of(&complaint(State::Duplicate, "2026-11-27 08:00"), now, zone), Sla::None);
    }

    #[test]
    fn a_filter_value_cannot_add_terms_of_its_own() {
        let query = InboxQuery { branch: "SH01\" AND owner = \"claims".into(), ..Default::default() };
        assert!(filter_of(&query).is_err());
        let query = InboxQuery { branch: "SH01".into(), state: "ROUTED".into(), ..Default::default() };
        assert_eq!(filter_of(&query).ok().as_deref(), Some("branch = \"SH01\" AND state = \"ROUTED\""));
    }

    #[test]
    fn a_case_number_is_recognised_however_it_is_typed() {
        assert_eq!(case_number("20261122-7k3m9q").as_deref(), Some("20261122-7K3M9Q"));
        assert_eq!(case_number(" complaints/20261122-7K3M9Q ").as_deref(), Some("20261122-7K3M9Q"));
        assert_eq!(case_number("SF1234567890"), None);
        assert_eq!(case_number("138-0000-0000"), None);
    }
}
