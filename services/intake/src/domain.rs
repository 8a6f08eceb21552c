//! Intake's rules, without I/O: what a complaint must hold (`001 §8`, the complaint acceptance
//! form 《投诉受理单》), the channels it comes by, the states it passes through, and the filter a
//! list may use.

use std::{fmt, str::FromStr};

use kefu_kit::{config::ServiceName, error::FieldViolations};
use sea_orm::DeriveValueType;

/// Reads a name kept in the `complaints` table. An unknown one is an error that names it, never a
/// default: a row no rule can read is refused, not guessed at.
fn stored<T: FromStr<Err = ()>>(text: &str) -> Result<T, String> {
    let what = std::any::type_name::<T>().rsplit("::").next().unwrap_or("value");
    text.parse().map_err(|()| format!("unknown {what} {text:?} in the complaints table"))
}

/// Each enum kept in a column is written by its `as_str` and read back by [`stored`].
macro_rules! shown_as_str {
    ($($name:ty),*) => {$(
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

shown_as_str!(Channel, State, Kind, Severity);

/// Upper bounds on the free-text fields, in characters: generous for a phone note or a letter,
/// small enough that no caller can make a row of megabytes.
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_CUSTOMER_REQUEST: usize = 2000;
pub const MAX_CODE: usize = 64;
pub use kefu_kit::error::MAX_REQUEST_ID;
pub const MAX_CONTACT_NAME: usize = 128;
pub const MAX_CONTACT_PHONE: usize = 32;
/// The longest reason, note, answer or outcome accepted.
pub const MAX_TEXT: usize = 2000;

/// How a complaint reached the service center.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveValueType)]
#[sea_orm(value_type = "String", from_str = "stored")]
pub enum Channel {
    Unspecified,
    Phone,
    Letter,
    InPerson,
    Online,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Unspecified => "unspecified",
            Channel::Phone => "phone",
            Channel::Letter => "letter",
            Channel::InPerson => "in_person",
            Channel::Online => "online",
        }
    }
}

impl FromStr for Channel {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Ok(match text.to_ascii_lowercase().as_str() {
            "unspecified" => Channel::Unspecified,
            "phone" => Channel::Phone,
            "letter" => Channel::Letter,
            "in_person" => Channel::InPerson,
            "online" => Channel::Online,
            _ => return Err(()),
        })
    }
}

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveValueType)]
#[sea_orm(value_type = "String", from_str = "stored")]
pub enum State {
    /// Registered and routed; the owner has not yet confirmed it holds the case.
    Routed,
    /// The owner holds its own record of the case, and handles it.
    Accepted,
    /// A serious or critical complaint's outcome, waiting for a manager's approval (000 §12).
    AwaitingApproval,
    /// The owner has handled the case; its outcome is recorded for the customer.
    Resolved,
    /// The customer was told the outcome.
    Notified,
    /// The customer was not satisfied: the service center holds the case until they are (001 §8 4.5).
    Reopened,
    /// The same complaint as another, by another channel: linked to it, not handled twice.
    Duplicate,
    /// The case's story is in archives' keeping.
    Closed,
}

impl State {
    pub const ALL: [State; 8] = [
        State::Routed,
        State::Accepted,
        State::AwaitingApproval,
        State::Resolved,
        State::Notified,
        State::Reopened,
        State::Duplicate,
        State::Closed,
    ];

    /// The name stored in the `state` column (at most 16 characters).
    pub fn as_str(self) -> &'static str {
        match self {
            State::Routed => "routed",
            State::Accepted => "accepted",
            State::AwaitingApproval => "unapproved",
            State::Resolved => "resolved",
            State::Notified => "notified",
            State::Reopened => "reopened",
            State::Duplicate => "duplicate",
            State::Closed => "closed",
        }
    }

    /// The state's name in the API (the `State` enum, lower case), which filters also accept.
    pub fn api_name(self) -> &'static str {
        match self {
            State::AwaitingApproval => "awaiting_approval",
            other => other.as_str(),
        }
    }

    /// Still to be handled: its deadline runs.
    pub fn is_open(self) -> bool {
        matches!(self, State::Routed | State::Accepted | State::Reopened)
    }
}

impl FromStr for State {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let text = text.to_ascii_lowercase();
        State::ALL.into_iter().find(|state| state.as_str() == text || state.api_name() == text).ok_or(())
    }
}

/// What the customer asks for (`domain.md` §1, kinds of request).
#[derive(Debug, Clone, Copy, PartialEq, Eq, DeriveValueType)]
#[sea_orm(value_type = "String", from_str = "stored")]
pub enum Kind {
    /// 投诉.
    Complaint,
    /// 查询: where is my cargo.
    Inquiry,
    /// 咨询: prices, the branches' coverage.
    Consultation,
    /// 建议.
    Suggestion,
    /// 更改 (001 §8 4.9).
    ChangeRequest,
}

impl Kind {
    pub const ALL: [Kind; 5] =
        [Kind::Complaint, Kind::Inquiry, Kind::Consultation, Kind::Suggestion, Kind::ChangeRequest];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Complaint => "complaint",
            Kind::Inquiry => "inquiry",
            Kind::Consultation => "consultation",
            Kind::Suggestion => "suggestion",
            Kind::ChangeRequest => "change_request",
        }
    }

    /// The kind's name in the service center's words, for replies.
    pub fn chinese(self) -> &'static str {
        match self {
            Kind::Complaint => "投诉",
            Kind::Inquiry => "查询",
            Kind::Consultation => "咨询",
            Kind::Suggestion => "建议",
            Kind::ChangeRequest => "更改申请",
        }
    }
}

impl FromStr for Kind {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text).ok_or(())
    }
}

/// How grave a complaint is (客户投诉程度的划分, `001 第四模块`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, DeriveValueType)]
#[sea_orm(value_type = "String", from_str = "stored")]
pub enum Severity {
    General,
    /// Serious and critical: a manager approves the outcome; the customer is answered in writing (000 §12).
    Serious,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::General => "general",
            Severity::Serious => "serious",
            Severity::Critical => "critical",
        }
    }

    pub fn needs_approval(self) -> bool {
        self != Severity::General
    }
}

impl FromStr for Severity {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "general" => Ok(Severity::General),
            "serious" => Ok(Severity::Serious),
            "critical" => Ok(Severity::Critical),
            _ => Err(()),
        }
    }
}

/// A complaint as the caller states it, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewComplaint {
    pub category: String,
    pub waybill_number: String,
    pub channel: Channel,
    pub description: String,
    pub customer_request: String,
    pub contact_name: String,
    pub contact_phone: String,
    pub branch: String,
}

/// The fields of a complaint as they arrive, before checking.
#[derive(Debug, Clone, Default)]
pub struct ComplaintFields<'a> {
    pub category: &'a str,
    pub waybill_number: &'a str,
    pub channel: Option<Channel>,
    pub description: &'a str,
    pub customer_request: &'a str,
    pub contact_name: &'a str,
    pub contact_phone: &'a str,
    pub branch: &'a str,
}

impl NewComplaint {
    /// Checks every field of a complaint and names each offending one (as `complaint.<field>`), all at once.
    pub fn parse(fields: ComplaintFields<'_>) -> Result<NewComplaint, FieldViolations> {
        NewComplaint::parse_kind(fields, Kind::Complaint)
    }

    /// Checks a request of `kind`. A complaint's fields are named `complaint.<field>`, other
    /// requests' `request.<field>`; their category is their kind. A waybill is required of
    /// complaints, inquiries and change requests, which are about cargo.
    pub fn parse_kind(fields: ComplaintFields<'_>, kind: Kind) -> Result<NewComplaint, FieldViolations> {
        let mut violations = FieldViolations::new();
        let category = if kind == Kind::Complaint { fields.category.trim() } else { kind.as_str() };
        if category.is_empty() {
            violations.add("complaint.category", "required: a category code of the routing policy, e.g. late_delivery");
        } else if !is_code(category) {
            violations.add(
                "complaint.category",
                format!("a code of lowercase letters, digits and _, at most {MAX_CODE} characters"),
            );
        }
        let waybill_number = fields.waybill_number.trim();
        let waybill_required = matches!(kind, Kind::Complaint | Kind::Inquiry | Kind::ChangeRequest);
        if waybill_number.is_empty() {
            if waybill_required {
                violations.add("complaint.waybill_number", "required: the waybill (运单号) it is about");
            }
        } else if waybill_number.chars().count() > MAX_CODE
            || !waybill_number.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            violations.add("complaint.waybill_number", format!("letters, digits and -, at most {MAX_CODE} characters"));
        }
        let description = fields.description.trim();
        if description.is_empty() {
            violations.add("complaint.description", "required: what the customer complains of or asks");
        }
        check_len(&mut violations, "complaint.description", description, MAX_DESCRIPTION);
        check_len(&mut violations, "complaint.customer_request", fields.customer_request.trim(), MAX_CUSTOMER_REQUEST);
        check_len(&mut violations, "complaint.contact.name", fields.contact_name.trim(), MAX_CONTACT_NAME);
        let phone = fields.contact_phone.trim();
        check_len(&mut violations, "complaint.contact.phone", phone, MAX_CONTACT_PHONE);
        if !phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')) {
            violations.add("complaint.contact.phone", "digits, spaces and + - ( ) only");
        }
        let branch = fields.branch.trim();
        if !branch.is_empty() && !kefu_kit::text::is_branch(branch) {
            violations.add("complaint.branch", format!("{}, or empty", kefu_kit::text::BRANCH_RULE));
        }
        if fields.channel.is_none() {
            violations.add("complaint.channel", "unknown channel");
        }
        if kind != Kind::Complaint {
            violations = violations.renamed("complaint.", "request.");
        }
        if !violations.is_empty() {
            return Err(violations);
        }
        Ok(NewComplaint {
            category: category.to_owned(),
            waybill_number: waybill_number.to_owned(),
            channel: fields.channel.unwrap_or(Channel::Unspecified),
            description: description.to_owned(),
            customer_request: fields.customer_request.trim().to_owned(),
            contact_name: fields.contact_name.trim().to_owned(),
            contact_phone: phone.to_owned(),
            branch: branch.to_owned(),
        })
    }
}

/// The routing policy's decision, as intake receives it from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub owner: ServiceName,
    pub responsible_unit: String,
    pub handling_time: chrono::Duration,
}

impl Route {
    pub fn parse(
        owner: &str,
        responsible_unit: &str,
        handling_time: Option<chrono::Duration>,
    ) -> Result<Route, FieldViolations> {
        let mut violations = FieldViolations::new();
        let owner = match owner.parse::<ServiceName>() {
            Ok(ServiceName::Archives) => {
                violations.add("route.owner", "archives keeps closed files and owns no complaints");
                None
            }
            Ok(owner) => Some(owner),
            Err(message) => {
                violations.add("route.owner", message);
                None
            }
        };
        check_len(&mut violations, "route.responsible_unit", responsible_unit, MAX_CODE);
        let handling_time = match handling_time {
            Some(time) if time > chrono::Duration::zero() && time <= chrono::Duration::days(366) => Some(time),
            _ => {
                violations.add("route.handling_time", "required: more than zero, at most a year");
                None
            }
        };
        match (owner, handling_time) {
            (Some(owner), Some(handling_time)) if violations.is_empty() => {
                Ok(Route { owner, responsible_unit: responsible_unit.to_owned(), handling_time })
            }
            _ => Err(violations),
        }
    }
}

pub fn check_request_id(request_id: &str) -> Result<(), FieldViolations> {
    let mut violations = FieldViolations::new();
    kefu_kit::error::check_request_id(&mut violations, "request_id", request_id);
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

fn check_len(violations: &mut FieldViolations, field: &str, value: &str, max: usize) {
    if value.chars().count() > max {
        violations.add(field, format!("at most {max} characters"));
    }
}

fn is_code(text: &str) -> bool {
    text.len() <= MAX_CODE && text.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A field a list may be filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilterField {
    Category,
    Owner,
    Branch,
    State,
    WaybillNumber,
    Channel,
    Kind,
    Severity,
    /// The customer's phone (`contact.phone`): a customer's other cases. It is never logged.
    ContactPhone,
}

/// `field = "value"` terms joined by `AND` (AIP-160, the subset kefu needs). Values are checked
/// and normalized (owner, state and channel names are case-insensitive).
pub fn parse_filter(filter: &str) -> Result<Vec<(FilterField, String)>, String> {
    let filter = filter.trim();
    if filter.is_empty() {
        return Ok(Vec::new());
    }
    if filter.len() > 1000 {
        return Err("at most 1000 characters".into());
    }
    let mut terms = Vec::new();
    for term in split_and(filter) {
        let (field, value) = term
            .split_once('=')
            .ok_or_else(|| format!("expected field = \"value\" in {term:?}; terms are joined by AND"))?;
        let value = value.trim();
        let value = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value).to_owned();
        if value.is_empty() {
            return Err(format!("empty value in {term:?}"));
        }
        let field = match field.trim() {
            "category" => FilterField::Category,
            "owner" => FilterField::Owner,
            "branch" => FilterField::Branch,
            "state" => FilterField::State,
            "waybill_number" => FilterField::WaybillNumber,
            "channel" => FilterField::Channel,
            "kind" => FilterField::Kind,
            "severity" => FilterField::Severity,
            "contact.phone" => FilterField::ContactPhone,
            other => {
                return Err(format!(
                    "unknown field {other:?}; filter by category, owner, branch, state, waybill_number, channel, kind, severity or contact.phone"
                ));
            }
        };
        let value = match field {
            FilterField::Owner => value.to_ascii_lowercase().parse::<ServiceName>()?.as_str().to_owned(),
            FilterField::State => value
                .parse::<State>()
                .map_err(|()| {
                    format!(
                        "unknown state {value:?}; states are ROUTED, ACCEPTED, AWAITING_APPROVAL, RESOLVED, NOTIFIED, REOPENED, DUPLICATE, CLOSED"
                    )
                })?
                .as_str()
                .to_owned(),
            FilterField::Channel => value
                .parse::<Channel>()
                .map_err(|()| format!("unknown channel {value:?}; channels are PHONE, LETTER, IN_PERSON, ONLINE"))?
                .as_str()
                .to_owned(),
            FilterField::Kind => value
                .to_ascii_lowercase()
                .parse::<Kind>()
                .map_err(|()| format!("unknown kind {value:?}; kinds are COMPLAINT, INQUIRY, CONSULTATION, SUGGESTION, CHANGE_REQUEST"))?
                .as_str()
                .to_owned(),
            FilterField::Severity => value
                .to_ascii_lowercase()
                .parse::<Severity>()
                .map_err(|()| format!("unknown severity {value:?}; severities are GENERAL, SERIOUS, CRITICAL"))?
                .as_str()
                .to_owned(),
            FilterField::Branch if !kefu_kit::text::is_branch(&value) => {
                return Err(format!("branch: {}", kefu_kit::text::BRANCH_RULE));
            }
            _ => value,
        };
        terms.push((field, value));
    }
    Ok(terms)
}

/// Splits on the keyword AND outside quotes.
fn split_and(filter: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let bytes = filter.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => in_quotes = !in_quotes,
            b' ' if !in_quotes && filter[i..].starts_with(" AND ") => {
                terms.push(filter[start..i].trim());
                i += 5;
                start = i;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    terms.push(filter[start..].trim());
    terms
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> ComplaintFields<'static> {
        ComplaintFields {
            category: "late_delivery",
            waybill_number: "YD20261122001",
            channel: Some(Channel::Phone),
            description: "货物晚到三天",
            customer_request: "赔偿运费",
            contact_name: "王先生",
            contact_phone: "+86 138-0000-0000",
            branch: "SH01",
        }
    }

    #[test]
    fn a_complete_complaint_parses() {
        let complaint = NewComplaint::parse(valid()).expect("valid");
        assert_eq!(complaint.category, "late_delivery");
        assert_eq!(complaint.channel, Channel::Phone);
    }

    #[test]
    fn every_missing_required_field_is_named_at_once() {
        let fields = ComplaintFields { category: "", waybill_number: " ", description: "", ..valid() };
        let violations = NewComplaint::parse(fields).expect_err("three fields missing");
        assert_eq!(
            violations.fields().collect::<Vec<_>>(),
            ["complaint.category", "complaint.waybill_number", "complaint.description"]
        );
    }

    #[test]
    fn oversized_and_malformed_fields_are_named() {
        let long = "很".repeat(MAX_DESCRIPTION + 1);
        let fields = ComplaintFields { description: &long, contact_phone: "call me maybe", ..valid() };
        let violations = NewComplaint::parse(fields).expect_err("too long");
        assert_eq!(violations.fields().collect::<Vec<_>>(), ["complaint.description", "complaint.contact.phone"]);
        let exactly = "很".repeat(MAX_DESCRIPTION);
        assert!(NewComplaint::parse(ComplaintFields { description: &exactly, ..valid() }).is_ok());
    }

    #[test]
    fn routes_to_archives_or_without_time_are_refused() {
        assert!(Route::parse("archives", "", Some(chrono::Duration::hours(1))).is_err());
        assert!(Route::parse("inspection", "branch", None).is_err());
        let route = Route::parse("claims", "responsible_party", Some(chrono::Duration::days(7))).expect("valid");
        assert_eq!(route.owner, ServiceName::Claims);
    }

    #[test]
    fn filters_parse_and_normalize() {
        let terms =
            parse_filter(r#"category = "late_delivery" AND owner = INSPECTION AND state=routed"#).expect("valid");
        assert_eq!(
            terms,
            vec![
                (FilterField::Category, "late_delivery".to_owned()),
                (FilterField::Owner, "inspection".to_owned()),
                (FilterField::State, "routed".to_owned()),
            ]
        );
        assert_eq!(
            parse_filter(r#"waybill_number = "A AND B""#).expect("quoted AND"),
            vec![(FilterField::WaybillNumber, "A AND B".to_owned())]
        );
        assert_eq!(parse_filter("branch = SH01").expect("a branch"), vec![(FilterField::Branch, "SH01".to_owned())]);
        for hostile in [r#"branch = "<b>SH01</b>""#, "branch = \"SH\u{202E}01\"", r#"branch = "SH"01""#] {
            assert!(parse_filter(hostile).expect_err("not a branch code").contains("branch office code"), "{hostile}");
        }
        assert!(parse_filter("color = red").is_err());
        assert!(parse_filter("owner = nobody").is_err());
        assert!(parse_filter("category").is_err());
        assert_eq!(parse_filter("  ").expect("empty"), vec![]);
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any filter a caller writes is read into known fields, or refused with a message.
        #[test]
        fn any_filter_is_read_or_refused(filter in "\\PC{0,120}") {
            match parse_filter(&filter) {
                Ok(terms) => prop_assert!(terms.len() <= filter.len()),
                Err(message) => prop_assert!(!message.is_empty()),
            }
        }

        /// Filters of known fields joined by AND are read term by term.
        #[test]
        fn filters_of_known_fields_are_read(values in proptest::collection::vec("[a-z0-9_]{1,12}", 1..5)) {
            let fields = ["category", "branch", "waybill_number"];
            let filter = values
                .iter()
                .enumerate()
                .map(|(index, value)| format!("{} = {value}", fields[index % fields.len()]))
                .collect::<Vec<_>>()
                .join(" AND ");
            let terms = parse_filter(&filter).map_err(TestCaseError::fail)?;
            prop_assert_eq!(terms.len(), values.len());
        }
    }
}
