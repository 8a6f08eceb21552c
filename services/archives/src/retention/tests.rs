//! Retention, legal hold and destruction, each checked without I/O.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::policy::Classification;

fn retain_until() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2029-11-22T02:00:00Z").expect("a time").with_timezone(&Utc)
}

fn file() -> CaseFile {
    CaseFile {
        name: "caseFiles/20261122-7K3M9Q".into(),
        owner: "settlement".into(),
        archive_time: retain_until() - Duration::days(3 * 365 - 61),
        classification: Classification::Ordinary,
        retention_rule: "case_3y".into(),
        retain_until: retain_until(),
        legal_hold: false,
        legal_hold_reason: String::new(),
        destroy_time: None,
    }
}

fn held() -> CaseFile {
    CaseFile { legal_hold: true, legal_hold_reason: "court order 2029-17".into(), ..file() }
}

fn member(user: &str) -> Caller {
    Caller { user: user.into(), department: "archives".into(), roles: vec!["supervisor".into()], ..Caller::default() }
}

#[test]
fn a_file_one_day_before_the_end_of_its_retention_is_refused_and_on_the_day_it_may_be_destroyed() {
    let day_before = retain_until() - Duration::days(1);
    let refused = may_be_destroyed(&file(), day_before).expect_err("still kept");
    assert_eq!(refused, Refusal::Retained { file: file().name, until: retain_until(), rule: "case_3y".into() },);
    assert_eq!(
        refused.to_string(),
        "caseFiles/20261122-7K3M9Q is kept until 2029-11-22T02:00:00+00:00 under rule case_3y"
    );
    assert!(may_be_destroyed(&file(), retain_until() - Duration::microseconds(1)).is_err(), "to the instant");
    assert_eq!(may_be_destroyed(&file(), retain_until()), Ok(()));
    assert_eq!(may_be_destroyed(&file(), retain_until() + Duration::days(400)), Ok(()));
}

#[test]
fn a_file_under_legal_hold_is_refused_with_the_reason_whatever_its_period() {
    let long_after = retain_until() + Duration::days(3650);
    let refused = may_be_destroyed(&held(), long_after).expect_err("held");
    assert_eq!(refused, Refusal::UnderLegalHold { file: file().name, reason: "court order 2029-17".into() });
    assert!(refused.to_string().contains("under legal hold (court order 2029-17)"), "{refused}");
    assert!(!refused.is_the_callers(), "the file's state, not the caller");
    assert!(matches!(may_propose_destruction(&held(), long_after), Err(Refusal::UnderLegalHold { .. })));
    let proposed = may_destroy(&held(), None, Some("D002"), &member("D001"), long_after);
    assert!(matches!(proposed, Err(Refusal::UnderLegalHold { .. })), "a proposal does not lift a hold");
}

#[test]
fn a_destroyed_file_is_neither_held_nor_proposed_again() {
    let destroyed = CaseFile { destroy_time: Some(retain_until()), ..file() };
    assert_eq!(may_hold(&file()), Ok(()));
    assert_eq!(may_hold(&held()), Ok(()), "a hold is lifted as it is placed");
    assert_eq!(
        may_hold(&destroyed).map_err(|refusal| refusal.to_string()),
        Err(format!("{} was destroyed", file().name))
    );
    let again = may_propose_destruction(&destroyed, retain_until() + Duration::days(1));
    assert_eq!(again, Err(Refusal::DestroyedBefore { file: file().name, record: None }));
}

#[test]
fn a_destruction_needs_a_proposal_by_another_member_of_the_archives() {
    let due = retain_until() + Duration::days(1);
    let unproposed = may_destroy(&file(), None, None, &member("D001"), due).expect_err("not proposed");
    assert!(unproposed.to_string().contains("ProposeDestruction"), "{unproposed}");
    let own = may_destroy(&file(), None, Some("D001"), &member("D001"), due).expect_err("own proposal");
    assert_eq!(own, Refusal::FourEyes { file: file().name, proposer: "D001".into() });
    assert!(own.is_the_callers() && own.to_string().starts_with("four eyes"), "{own}");
    assert_eq!(may_destroy(&file(), None, Some("D002"), &member("D001"), due), Ok(()));
    let early = may_destroy(&file(), None, Some("D002"), &member("D001"), retain_until() - Duration::days(1));
    assert!(matches!(early, Err(Refusal::Retained { .. })), "retention comes before the proposal");
}

#[test]
fn a_file_is_destroyed_once_and_a_second_time_names_the_record() {
    let due = retain_until() + Duration::days(1);
    let again = may_destroy(&file(), Some("destructionRecords/7"), Some("D002"), &member("D001"), due);
    let refused = again.expect_err("destroyed before");
    assert_eq!(refused.to_string(), format!("{} was destroyed before: destructionRecords/7", file().name));
}
