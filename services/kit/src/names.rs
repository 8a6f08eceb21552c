//! Resource names (AIP-122): `complaints/{case_number}`, `claims/{case_number}`, … The one place a
//! name is taken apart, so that every service accepts and refuses the same names.

use crate::{case_number, error::FieldViolations};

/// The collection of complaints, intake's.
pub const COMPLAINTS: &str = "complaints";

/// The case number in `"{collection}/{case_number}"`, if the name is one and the number well formed.
pub fn case_number_in<'a>(name: &'a str, collection: &str) -> Option<&'a str> {
    name.strip_prefix(collection)
        .and_then(|rest| rest.strip_prefix('/'))
        .filter(|number| case_number::is_well_formed(number))
}

/// The case number in `"{collection}/{case_number}"`, or `INVALID_ARGUMENT` naming `field`.
pub fn parse<'a>(name: &'a str, collection: &str, field: &str) -> Result<&'a str, FieldViolations> {
    case_number_in(name, collection).ok_or_else(|| {
        FieldViolations::of(field, format!("expected {collection}/{{case_number}}, e.g. {collection}/20261122-7K3M9Q"))
    })
}

/// The case number of a complaint's name, `complaints/{case_number}`, or `INVALID_ARGUMENT` naming `field`.
pub fn complaint<'a>(name: &'a str, field: &str) -> Result<&'a str, FieldViolations> {
    parse(name, COMPLAINTS, field)
}

/// A complaint's name.
pub fn complaint_name(case_number: &str) -> String {
    format!("{COMPLAINTS}/{case_number}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_its_collection_and_a_well_formed_number() {
        assert_eq!(case_number_in("complaints/20261122-7K3M9Q", COMPLAINTS), Some("20261122-7K3M9Q"));
        assert_eq!(case_number_in("complaints/", COMPLAINTS), None);
        assert_eq!(case_number_in("complaintsx/20261122-7K3M9Q", COMPLAINTS), None);
        assert_eq!(case_number_in("claims/20261122-7K3M9Q", COMPLAINTS), None);
        assert_eq!(case_number_in("complaints/../etc/passwd", COMPLAINTS), None);
        let refused = complaint("cases/20261122-7K3M9Q", "event.case_routed.complaint.complaint").expect_err("refused");
        assert_eq!(refused.fields().collect::<Vec<_>>(), ["event.case_routed.complaint.complaint"]);
        assert_eq!(complaint_name("20261122-7K3M9Q"), "complaints/20261122-7K3M9Q");
    }
}
