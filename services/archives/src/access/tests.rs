//! The rules of access requests and reads (`003 第20条`, `第23条`), each checked without I/O.

use chrono::{DateTime, Duration, Utc};

use super::*;

fn person(user: &str, department: &str, roles: &[&str]) -> Caller {
    Caller {
        user: user.into(),
        department: department.into(),
        roles: roles.iter().map(|role| (*role).into()).collect(),
        ..Caller::default()
    }
}

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-22T02:00:00Z").expect("a time").with_timezone(&Utc)
}

fn request(department: &str, level: Classification, kind: Kind) -> Request {
    Request {
        file: "caseFiles/20261122-7K3M9Q".into(),
        kind,
        requester: "Q100".into(),
        requester_department: department.into(),
        personal_data: false,
        required: required_signatures(department, level, kind),
        approvals: Vec::new(),
        state: State::Pending,
        expire_time: None,
    }
}

#[test]
fn an_ordinary_read_needs_the_department_head_and_the_service_department() {
    let mut asked = request("inspection", Classification::Ordinary, Kind::Read);
    assert_eq!(asked.required, [Signature::DepartmentHead, Signature::ServiceDepartment]);
    // Another department's head may not sign for inspection.
    let other_head = person("H2", "claims", &["department_head"]);
    assert!(matches!(asked.sign(&other_head, now()), Err(Denial::Permission(_))));
    assert_eq!(asked.sign(&person("H1", "inspection", &["department_head"]), now()), Ok(Signature::DepartmentHead));
    assert_eq!(asked.state, State::Pending);
    let reader = person("Q100", "inspection", &[]);
    assert!(
        matches!(asked.permits(&reader, &asked.file.clone(), now()), Err(Denial::Permission(m)) if m.contains("service department"))
    );
    asked.sign(&person("S1", "intake", &["department_head"]), now()).expect("signed");
    assert_eq!(asked.state, State::Approved);
    assert_eq!(asked.expire_time, Some(now() + policy::approval_valid_for()));
    assert_eq!(asked.permits(&reader, "caseFiles/20261122-7K3M9Q", now() + Duration::days(6)), Ok(()));
}

#[test]
fn an_approval_expires_and_is_the_requesters_alone() {
    let mut asked = request("intake", Classification::Ordinary, Kind::Read);
    // The service department's own staff: its head's approval is the one signature.
    assert_eq!(asked.required, [Signature::ServiceDepartment]);
    asked.sign(&person("S1", "intake", &["department_head"]), now()).expect("signed");
    assert_eq!(asked.state, State::Approved);
    let file = asked.file.clone();
    let expired = asked.permits(&person("Q100", "intake", &[]), &file, now() + policy::approval_valid_for());
    assert!(matches!(expired, Err(Denial::Permission(m)) if m.contains("expired")));
    let someone_else = asked.permits(&person("Q200", "intake", &[]), &file, now());
    assert!(matches!(someone_else, Err(Denial::Permission(_))));
    let other_file = asked.permits(&person("Q100", "intake", &[]), "caseFiles/20261122-AAAAAA", now());
    assert!(matches!(other_file, Err(Denial::Permission(_))));
}

#[test]
fn outsiders_classified_files_and_copies_need_more() {
    assert_eq!(
        request("external", Classification::Ordinary, Kind::Read).required,
        [Signature::ServiceDepartment, Signature::GeneralManager]
    );
    assert_eq!(
        request("claims", Classification::Confidential, Kind::Copy).required,
        [Signature::DepartmentHead, Signature::ServiceDepartment, Signature::GeneralManager, Signature::CopyApproval]
    );
    // The general manager gives the general manager's signature; the copy is another's approval.
    let mut asked = request("external", Classification::TopSecret, Kind::Copy);
    assert_eq!(asked.sign(&person("GM", "management", &["general_manager"]), now()), Ok(Signature::GeneralManager));
    assert_eq!(asked.state, State::Pending);
}

#[test]
fn each_signature_is_another_person_s() {
    // One person who holds every role a confidential copy by claims needs: the head of claims, the
    // general manager, a supervisor.
    let everything = person("M1", "claims", &["department_head", "general_manager", "supervisor"]);
    let mut asked = request("claims", Classification::Confidential, Kind::Copy);
    assert_eq!(asked.sign(&everything, now()), Ok(Signature::GeneralManager), "the scarcest signature first");
    assert_eq!(asked.approvals.len(), 1, "one call, one signature");
    let again = asked.sign(&everything, now()).expect_err("signed already");
    assert!(
        matches!(&again, Denial::Permission(m) if m.contains("another person must sign") && m.contains("as general_manager")),
        "{again:?}"
    );
    assert_eq!((asked.approvals.len(), asked.state), (1, State::Pending));
    // The others, each by another person; the copy approval, anyone's, comes last.
    assert_eq!(
        asked.sign(&person("H1", "claims", &["department_head", "supervisor"]), now()),
        Ok(Signature::DepartmentHead)
    );
    assert_eq!(asked.sign(&person("S1", "intake", &["department_head"]), now()), Ok(Signature::ServiceDepartment));
    assert_eq!(asked.state, State::Pending);
    assert_eq!(asked.sign(&person("V1", "archives", &["supervisor"]), now()), Ok(Signature::CopyApproval));
    assert_eq!(asked.state, State::Approved);
    let signers: Vec<&str> = asked.approvals.iter().map(|given| given.approver.as_str()).collect();
    assert_eq!(signers, ["M1", "H1", "S1", "V1"]);

    // Archives' head signs an archivist's request once, and leaves it off its queue; the service
    // department's head, another person, approves it.
    let mut asked = request("archives", Classification::Ordinary, Kind::Read);
    let head = person("H7", "archives", &["department_head", "supervisor"]);
    assert_eq!(asked.sign(&head, now()), Ok(Signature::DepartmentHead));
    assert!(matches!(asked.sign(&head, now()), Err(Denial::Permission(m)) if m.contains("another person must sign")));
    assert_eq!(asked.state, State::Pending);
    assert!(!asked.awaits(&head), "off the signer's queue");
    assert!(asked.awaits(&person("S2", "intake", &["department_head"])), "on the service department's");
    assert_eq!(asked.sign(&person("S2", "intake", &["department_head"]), now()), Ok(Signature::ServiceDepartment));
    assert_eq!(asked.state, State::Approved);
    // The service center's own staff: its head's approval is the one signature.
    let mut asked = request("intake", Classification::Ordinary, Kind::Read);
    assert_eq!(asked.sign(&person("S1", "intake", &["department_head"]), now()), Ok(Signature::ServiceDepartment));
    assert_eq!(asked.state, State::Approved);
}

#[test]
fn nobody_approves_their_own_request_and_a_decided_request_stays_decided() {
    let mut asked = request("intake", Classification::Ordinary, Kind::Read);
    assert!(matches!(asked.sign(&person("Q100", "intake", &["department_head"]), now()), Err(Denial::Permission(_))));
    assert!(matches!(asked.refuse(&person("X", "claims", &[])), Err(Denial::Permission(_))));
    asked.refuse(&person("S1", "intake", &["department_head"])).expect("refused");
    assert!(matches!(asked.sign(&person("S1", "intake", &["department_head"]), now()), Err(Denial::Precondition(_))));
    let file = asked.file.clone();
    assert!(
        matches!(asked.permits(&person("Q100", "intake", &[]), &file, now()), Err(Denial::Permission(m)) if m.contains("refused"))
    );
}

#[test]
fn personal_data_is_masked() {
    assert_eq!(mask_name("张三丰"), "张**");
    assert_eq!(mask_phone("13812345678"), "138****5678");
    assert_eq!(mask_phone("12345"), "*****");
}

#[test]
fn a_read_names_an_approved_request_that_exists() {
    let reader = person("Q100", "inspection", &[]);
    let file = "caseFiles/20261122-7K3M9Q";
    let unnamed = may_read(&reader, file, "", None, now()).expect_err("no request named");
    assert!(matches!(&unnamed, Denial::Permission(m) if m.contains("CreateAccessRequest")), "{unnamed:?}");
    let missing = may_read(&reader, file, "accessRequests/9", None, now());
    assert_eq!(missing, Err(Denial::Permission("there is no access request accessRequests/9".into())));
    let mut asked = request("inspection", Classification::Ordinary, Kind::Read);
    let pending = may_read(&reader, file, "accessRequests/1", Some(&asked), now());
    assert!(matches!(pending, Err(Denial::Permission(m)) if m.contains("not approved yet")));
    asked.sign(&person("H1", "inspection", &["department_head"]), now()).expect("signed");
    asked.sign(&person("S1", "intake", &["department_head"]), now()).expect("signed");
    assert_eq!(may_read(&reader, file, "accessRequests/1", Some(&asked), now()), Ok(()));
}

#[test]
fn a_request_is_seen_by_its_requester_the_archives_and_those_who_may_sign_it() {
    let asked = request("inspection", Classification::Ordinary, Kind::Read);
    assert!(asked.visible_to(&person("Q100", "inspection", &[])), "the requester");
    assert!(asked.visible_to(&person("D002", "archives", &[])), "the archives");
    assert!(asked.visible_to(&person("H1", "inspection", &["department_head"])), "the requester's head");
    assert!(asked.visible_to(&person("S1", "intake", &["department_head"])), "the service department");
    assert!(!asked.visible_to(&person("Q200", "inspection", &[])), "a colleague");
    assert!(!asked.visible_to(&person("GM", "management", &["general_manager"])), "not needed for an ordinary read");
}

#[test]
fn an_anonymous_caller_asks_for_nothing() {
    assert!(matches!(requester_named(&Caller::default()), Err(Denial::Permission(_))));
    assert_eq!(requester_named(&person("Q100", "inspection", &[])), Ok(()));
}
