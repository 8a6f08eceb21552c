//! The rules of keeping, each checked without I/O.

use chrono::{DateTime, Duration, Utc};

use super::*;

fn person(user: &str, department: &str, roles: &[&str], clearance: &str) -> Caller {
    Caller {
        user: user.into(),
        department: department.into(),
        roles: roles.iter().map(|role| (*role).into()).collect(),
        clearance: clearance.into(),
        ..Caller::default()
    }
}

fn closed() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z").expect("a time").with_timezone(&Utc)
}

/// A file of a claims case closed at [`closed`], moving to the archives two months later.
fn file() -> CaseFile {
    CaseFile {
        name: "caseFiles/20261122-7K3M9Q".into(),
        owner: "claims".into(),
        archive_time: closed() + Duration::days(61),
        classification: Classification::Ordinary,
        retention_rule: "claim_5y".into(),
        retain_until: closed() + Duration::days(5 * 365 + 1),
        legal_hold: false,
        legal_hold_reason: String::new(),
        destroy_time: None,
    }
}

#[test]
fn only_the_archives_perform_their_duties_and_the_refusal_names_the_duty() {
    let archivist = person("D001", "archives", &[], "");
    let agent = person("A1024", "intake", &["supervisor"], "top_secret");
    assert_eq!(archivist_only(&archivist, Duty::Classify), Ok(()));
    let refused = archivist_only(&agent, Duty::ReadBorrowingRegister).expect_err("not of the archives");
    assert_eq!(refused, Refusal::ArchivesOnly(Duty::ReadBorrowingRegister));
    assert_eq!(refused.to_string(), "only the archives (department archives) may read the borrowing register");
    assert_eq!(
        Denial::from(refused),
        Denial::Permission(Refusal::ArchivesOnly(Duty::ReadBorrowingRegister).to_string())
    );
}

#[test]
fn the_audit_log_is_read_only_by_an_archivist_cleared_top_secret() {
    assert_eq!(auditor_only(&person("D001", "archives", &[], "top_secret")), Ok(()));
    assert_eq!(auditor_only(&person("D002", "archives", &[], "confidential")), Err(Refusal::AuditNeedsTopSecret));
    assert_eq!(
        auditor_only(&person("A1", "intake", &[], "top_secret")),
        Err(Refusal::ArchivesOnly(Duty::ReadAuditLog)),
        "clearance alone is not enough"
    );
}

#[test]
fn a_destruction_is_approved_by_a_supervisor_of_the_archives() {
    assert_eq!(destruction_approver_only(&person("D001", "archives", &["supervisor"], "")), Ok(()));
    let clerk = destruction_approver_only(&person("D002", "archives", &[], "top_secret"));
    assert_eq!(clerk, Err(Refusal::SupervisorApproves));
    let other = destruction_approver_only(&person("S1", "settlement", &["supervisor"], ""));
    assert_eq!(other, Err(Refusal::ArchivesOnly(Duty::Destroy)));
}

#[test]
fn no_one_classifies_a_file_above_their_own_clearance() {
    let confidential = person("D002", "archives", &[], "confidential");
    assert_eq!(may_classify_as(&confidential, Classification::Confidential), Ok(()));
    let refused = may_classify_as(&confidential, Classification::TopSecret).expect_err("above");
    assert_eq!(refused.to_string(), "your clearance does not reach top_secret");
    assert!(refused.is_the_callers());
    assert!(
        may_classify_as(&person("D003", "archives", &[], ""), Classification::Confidential).is_err(),
        "no clearance"
    );
}

#[test]
fn a_file_is_with_the_departments_for_two_months_then_in_the_archives_until_destroyed() {
    let mut kept = file();
    assert_eq!(kept.location(closed()), Location::ServiceCenter);
    assert_eq!(kept.location(kept.archive_time - Duration::seconds(1)), Location::ServiceCenter);
    assert_eq!(kept.location(kept.archive_time), Location::Archives);
    kept.destroy_time = Some(kept.retain_until);
    assert_eq!(kept.location(kept.archive_time), Location::Destroyed);
}

#[test]
fn working_documents_are_read_by_the_departments_that_handled_the_case_until_the_move() {
    let kept = file();
    let before = kept.archive_time - Duration::seconds(1);
    for department in ["intake", "settlement", "claims"] {
        let reader = person("R1", department, &[], "");
        assert!(kept.is_working_document_of(&reader, before), "{department}");
        assert!(!kept.is_working_document_of(&reader, kept.archive_time), "{department}: moved");
    }
    assert!(!kept.is_working_document_of(&person("Q100", "inspection", &[], ""), before), "not its owner");
}

#[test]
fn a_destroyed_file_has_nothing_to_read_and_says_when_and_under_which_rule() {
    assert_eq!(file().may_be_read(), Ok(()));
    let destroyed = CaseFile { destroy_time: Some(file().retain_until), ..file() };
    let refused = destroyed.may_be_read().expect_err("destroyed");
    assert!(!refused.is_the_callers());
    assert_eq!(
        refused.to_string(),
        "caseFiles/20261122-7K3M9Q was destroyed on 2031-11-22T02:00:00+00:00 under rule claim_5y; its destruction \
         record remains"
    );
}

#[test]
fn customer_files_are_kept_and_graded_by_the_service_department_and_the_archives() {
    for department in ["intake", "archives"] {
        let keeper = person("K1", department, &[], "");
        assert_eq!((customer_file_keepers_only(&keeper), graders_only(&keeper)), (Ok(()), Ok(())), "{department}");
    }
    let sales = person("M1", "claims", &["department_head"], "top_secret");
    assert_eq!(customer_file_keepers_only(&sales), Err(Refusal::CustomerFileKeepersOnly));
    assert_eq!(graders_only(&sales), Err(Refusal::GradersOnly));
}
