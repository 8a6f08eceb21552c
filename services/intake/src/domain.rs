//! Intake's rules, without I/O: what a complaint must hold (`001 §8`, the complaint acceptance
//! form 《投诉受理单》), the channels it comes by, the states it passes through, and the filter a
//! list may use.

use std::{fmt, str::FromStr};

use kefu_kit::{config::ServiceName, error::FieldViolations};

/// Upper bounds on the free-text fields, in characters: generous for a phone note or a letter,
/// small enough that no caller can make a row of megabytes.
pub const MAX_DESCRIPTION: usize = 4000;
pub const MAX_CUSTOMER_REQUEST: usize = 2000;
pub const MAX_CODE: usize = 64;
pub use kefu_kit::error::MAX_REQUEST_ID;
pub const MAX_CONTACT_NAME: usize = 128;
pub const MAX_CONTACT_PHONE: usize = 32;

/// How a complaint reached the service center.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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

/// Where a complaint stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Registered and routed; the owner has not yet confirmed it holds the case.
    Routed,
    /// The owner holds its own record of the case.
    Accepted,
    /// The owner has handled the case; its outcome is recorded for the customer.
    Resolved,
    /// The customer was told the outcome; the case's story is in archives' keeping.
    Closed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Routed => "routed",
            State::Accepted => "accepted",
            State::Resolved => "resolved",
            State::Closed => "closed",
        }
    }
}

impl FromStr for State {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text.to_ascii_lowercase().as_str() {
            "routed" => Ok(State::Routed),
            "accepted" => Ok(State::Accepted),
            "resolved" => Ok(State::Resolved),
            "closed" => Ok(State::Closed),
            _ => Err(()),
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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
    /// Checks every field and names each offending one (as `complaint.<field>`), all at once.
    pub fn parse(fields: ComplaintFields<'_>) -> Result<NewComplaint, FieldViolations> {
        let mut violations = FieldViolations::new();
        let category = fields.category.trim();
        if category.is_empty() {
            violations.add("complaint.category", "required: a category code of the routing policy, e.g. late_delivery");
        } else if !is_code(category) {
            violations.add(
                "complaint.category",
                format!("a code of lowercase letters, digits and _, at most {MAX_CODE} characters"),
            );
        }
        let waybill_number = fields.waybill_number.trim();
        if waybill_number.is_empty() {
            violations.add("complaint.waybill_number", "required: the waybill (运单号) the complaint is about");
        } else if waybill_number.chars().count() > MAX_CODE
            || !waybill_number.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            violations.add("complaint.waybill_number", format!("letters, digits and -, at most {MAX_CODE} characters"));
        }
        let description = fields.description.trim();
        if description.is_empty() {
            violations.add("complaint.description", "required: what the customer complains of");
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
        if !branch.is_empty() && (branch.chars().count() > MAX_CODE || branch.chars().any(char::is_control)) {
            violations.add("complaint.branch", format!("a branch code of at most {MAX_CODE} characters"));
        }
        if fields.channel.is_none() {
            violations.add("complaint.channel", "unknown channel");
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
            other => {
                return Err(format!(
                    "unknown field {other:?}; filter by category, owner, branch, state, waybill_number or channel"
                ));
            }
        };
        let value = match field {
            FilterField::Owner => value.to_ascii_lowercase().parse::<ServiceName>()?.as_str().to_owned(),
            FilterField::State => value
                .parse::<State>()
                .map_err(|()| format!("unknown state {value:?}; states are ROUTED, ACCEPTED"))?
                .as_str()
                .to_owned(),
            FilterField::Channel => value
                .parse::<Channel>()
                .map_err(|()| format!("unknown channel {value:?}; channels are PHONE, LETTER, IN_PERSON, ONLINE"))?
                .as_str()
                .to_owned(),
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
            parse_filter(r#"branch = "A AND B""#).expect("quoted AND"),
            vec![(FilterField::Branch, "A AND B".to_owned())]
        );
        assert!(parse_filter("color = red").is_err());
        assert!(parse_filter("owner = nobody").is_err());
        assert!(parse_filter("category").is_err());
        assert_eq!(parse_filter("  ").expect("empty"), vec![]);
    }
}
