//! Change requests (更改, `001 §8 4.9`), without I/O: what may be changed, who owns the change,
//! and when unclaimed cargo may go back to its shipper.
//!
//! - Consignee or consignee phone, and goods-return certificates: the customer service center.
//! - Shipper, COD amount (货款), freight (运费) or payment method: settlement.
//! - A request that changes both kinds goes wholly to settlement.
//! - Unclaimed cargo is returned to the shipper only **10 days** after it arrived, and only with the
//!   shipper's return certificate, which the service center sends to the branch (`§4.9.2`).

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use kefu_kit::{config::ServiceName, error::FieldViolations, time::from_timestamp};
use kefu_proto::intake::v1::ChangeRequest;

/// How long unclaimed cargo waits before it may be returned to the shipper (`001 §8 4.9.2`).
pub const RETURN_AFTER: Duration = Duration::days(10);

const MAX_VALUE: usize = 128;

/// A change request, checked: its owner and, for the branch and settlement, what is to change in
/// words without personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedChange {
    pub owner: ServiceName,
    /// The unit named on the case.
    pub responsible_unit: &'static str,
    /// E.g. "change consignee; COD amount to 1234.00 yuan".
    pub summary: String,
}

/// Checks the form of `change` (field names `request.change.<field>`).
pub fn check_fields(change: &ChangeRequest) -> Result<(), FieldViolations> {
    let mut violations = FieldViolations::new();
    let field = |name: &str| format!("request.change.{name}");
    let anything = !change.consignee.trim().is_empty()
        || !change.consignee_phone.trim().is_empty()
        || change.return_certificate
        || !change.shipper.trim().is_empty()
        || change.cod_amount_fen.is_some()
        || change.freight_fen.is_some()
        || !change.payment_method.trim().is_empty()
        || change.return_unclaimed;
    if !anything {
        violations.add(
            "request.change",
            "name what is to change: consignee, consignee_phone, return_certificate, shipper, cod_amount_fen, freight_fen, payment_method or return_unclaimed",
        );
    }
    for (name, value) in
        [("consignee", &change.consignee), ("shipper", &change.shipper), ("payment_method", &change.payment_method)]
    {
        if value.chars().count() > MAX_VALUE || value.chars().any(char::is_control) {
            violations.add(field(name), format!("at most {MAX_VALUE} characters, no control characters"));
        }
    }
    let phone = change.consignee_phone.trim();
    if phone.len() > 32 || !phone.chars().all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | ' ' | '(' | ')')) {
        violations.add(field("consignee_phone"), "digits, spaces and + - ( ) only, at most 32");
    }
    for (name, amount) in [("cod_amount_fen", change.cod_amount_fen), ("freight_fen", change.freight_fen)] {
        if amount.is_some_and(|fen| fen < 0) {
            violations.add(field(name), "an amount in fen, not negative");
        }
    }
    if change.return_unclaimed && change.arrival_time.as_ref().and_then(from_timestamp).is_none() {
        violations.add(field("arrival_time"), "required to return unclaimed cargo: when it arrived at the branch");
    }
    if violations.is_empty() { Ok(()) } else { Err(violations) }
}

/// Who owns `change`, and what it changes in words.
pub fn route(change: &ChangeRequest) -> CheckedChange {
    let mut service_center = Vec::new();
    let mut settlement = Vec::new();
    if !change.consignee.trim().is_empty() {
        service_center.push("change consignee".to_owned());
    }
    if !change.consignee_phone.trim().is_empty() {
        service_center.push("change consignee phone".to_owned());
    }
    if change.return_certificate {
        service_center.push("goods-return certificate (货物返回证明)".to_owned());
    }
    if change.return_unclaimed {
        service_center.push("return unclaimed cargo to the shipper".to_owned());
    }
    if !change.shipper.trim().is_empty() {
        settlement.push("change shipper".to_owned());
    }
    if let Some(fen) = change.cod_amount_fen {
        settlement.push(format!("COD amount (货款) to {}", yuan(fen)));
    }
    if let Some(fen) = change.freight_fen {
        settlement.push(format!("freight (运费) to {}", yuan(fen)));
    }
    if !change.payment_method.trim().is_empty() {
        settlement.push(format!("payment method to {}", change.payment_method.trim()));
    }
    let (owner, responsible_unit) = if settlement.is_empty() {
        (ServiceName::Intake, "customer_service_center")
    } else {
        // Both kinds: all of it goes to settlement (001 §8 4.9).
        (ServiceName::Settlement, "settlement")
    };
    service_center.extend(settlement);
    CheckedChange { owner, responsible_unit, summary: service_center.join("; ") }
}

/// Whether unclaimed cargo may go back to its shipper now: `Err` names every condition not met.
pub fn check_return(change: &ChangeRequest, now: DateTime<Utc>, time_zone: Tz) -> Result<(), String> {
    if !change.return_unclaimed {
        return Ok(());
    }
    let mut missing = Vec::new();
    if let Some(arrived) = change.arrival_time.as_ref().and_then(from_timestamp) {
        // An arrival at the end of time is never 10 days past.
        let returnable = arrived.checked_add_signed(RETURN_AFTER).unwrap_or(DateTime::<Utc>::MAX_UTC);
        if now < returnable {
            let date = |time: DateTime<Utc>| time.with_timezone(&time_zone).format("%Y-%m-%d %H:%M").to_string();
            missing.push(format!(
                "the cargo arrived {} and may be returned only 10 days after, from {} (001 §8 4.9.2)",
                date(arrived),
                date(returnable)
            ));
        }
    }
    if !change.shipper_certificate {
        missing.push(
            "the shipper's return certificate is missing: the shipper must consent in writing (001 §8 4.9.2)".into(),
        );
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("unclaimed cargo cannot be returned yet: {}", missing.join("; ")))
    }
}

use kefu_kit::money::yuan;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use kefu_kit::time::to_timestamp;

    #[test]
    fn consignee_changes_stay_and_money_changes_take_the_whole_request_to_settlement() {
        let consignee = ChangeRequest { consignee: "李四".into(), ..Default::default() };
        assert_eq!(route(&consignee).owner, ServiceName::Intake);
        let certificate = ChangeRequest { return_certificate: true, ..Default::default() };
        assert_eq!(route(&certificate).owner, ServiceName::Intake);
        let freight = ChangeRequest { freight_fen: Some(0), ..Default::default() };
        assert_eq!(route(&freight).owner, ServiceName::Settlement);
        let both = ChangeRequest { consignee: "李四".into(), cod_amount_fen: Some(123_456), ..Default::default() };
        let routed = route(&both);
        assert_eq!(routed.owner, ServiceName::Settlement);
        assert_eq!(routed.summary, "change consignee; COD amount (货款) to 1234.56 yuan");
        assert!(!routed.summary.contains("李四"), "no personal data in the summary");
    }

    #[test]
    fn unclaimed_cargo_waits_ten_days_and_needs_the_certificate() {
        let tz = chrono_tz::Asia::Shanghai;
        let arrived = Utc.with_ymd_and_hms(2026, 11, 12, 2, 0, 0).single().expect("a time");
        let change = ChangeRequest {
            return_unclaimed: true,
            arrival_time: Some(to_timestamp(arrived)),
            shipper_certificate: true,
            ..Default::default()
        };
        let early = arrived + RETURN_AFTER - Duration::minutes(1);
        let refused = check_return(&change, early, tz).expect_err("a minute early");
        assert!(refused.contains("from 2026-11-22 10:00"), "{refused}");
        assert!(!refused.contains("certificate"));
        assert_eq!(check_return(&change, arrived + RETURN_AFTER, tz), Ok(()));
        let without = ChangeRequest { shipper_certificate: false, ..change };
        let refused = check_return(&without, arrived + RETURN_AFTER, tz).expect_err("no certificate");
        assert!(refused.contains("return certificate is missing"), "{refused}");
        assert!(!refused.contains("10 days after"));
    }

    #[test]
    fn an_empty_or_malformed_change_names_its_fields() {
        let empty = check_fields(&ChangeRequest::default()).expect_err("nothing to change");
        assert_eq!(empty.fields().collect::<Vec<_>>(), ["request.change"]);
        let bad = ChangeRequest {
            consignee_phone: "call me".into(),
            cod_amount_fen: Some(-1),
            return_unclaimed: true,
            ..Default::default()
        };
        let violations = check_fields(&bad).expect_err("malformed");
        assert_eq!(
            violations.fields().collect::<Vec<_>>(),
            ["request.change.consignee_phone", "request.change.cod_amount_fen", "request.change.arrival_time"]
        );
    }
}
