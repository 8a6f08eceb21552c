//! Archives through the gateway: a closed case becomes a sealed case file; reading it takes an
//! approved access request once it is archived; classified files are invisible without clearance;
//! files are kept, held and destroyed by the rules; customers are filed and graded; and the audit
//! log notices any entry altered or removed.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use kefu_kit::{ManualClock, clock::Clock, config::ServiceName, db, time::to_timestamp};
use kefu_proto::{
    archives::v1::{self as pb, archives_client::ArchivesClient},
    claims::v1::claims_client::ClaimsClient,
    gateway::v1::{Contact, State as ComplaintState},
    intake::v1::{
        CloseComplaintRequest, GetComplaintRequest, GetComplaintTimelineRequest, intake_client::IntakeClient,
    },
    settlement::v1::{ResolveCaseRequest, settlement_client::SettlementClient},
};
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use tonic::Code;

use crate::support::Gateway;

use crate::{
    claims::{accept, facts, investigation, offer, uninsured_loss},
    inspection::complaint_when,
    support::{Backend, TestSuite, as_user, complaint, create, eventually, on_both_backends, violated_fields},
};

/// 2026-11-22 10:00 in Shanghai.
fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).single().expect("a time")))
}

fn archives(suite: &TestSuite) -> ArchivesClient<Gateway> {
    ArchivesClient::new(suite.gateway.clone())
}

/// A request from `user` of `department` with `roles` and `clearance`.
fn by<T>(message: T, user: &str, department: &str, roles: &str, clearance: &str) -> tonic::Request<T> {
    let request = as_user(message, user, department);
    let request =
        if roles.is_empty() { request } else { crate::support::with_roles(request, &format!("agent,{roles}")) };
    crate::support::with_clearance(request, clearance)
}

/// The archives' supervisor, cleared for everything.
fn archivist<T>(message: T) -> tonic::Request<T> {
    by(message, "D001", "archives", "supervisor", "top_secret")
}

/// Closes the complaint `name` once its owner resolved it, and waits until archives has filed it.
async fn close(suite: &TestSuite, name: &str) -> pb::CaseFile {
    complaint_when(suite, name, "the owner resolves it", |c| c.state() == ComplaintState::Resolved).await;
    let mut intake = IntakeClient::new(suite.gateway.clone());
    let request = || CloseComplaintRequest {
        name: name.into(),
        request_id: format!("close-{name}"),
        note: "told by phone; the customer is satisfied".into(),
    };
    let closed = intake.close_complaint(as_user(request(), "A1024", "intake")).await.expect("closed").into_inner();
    assert_eq!(closed.state(), kefu_proto::intake::v1::State::Closed);
    assert_eq!(closed.closed_by, "A1024");
    // A retry with the same key finds it closed, by the same request.
    let again = intake.close_complaint(as_user(request(), "A1024", "intake")).await.expect("retried").into_inner();
    assert_eq!(again.close_time, closed.close_time);
    let file = format!("caseFiles/{}", name.trim_start_matches("complaints/"));
    let archives = archives(suite);
    eventually("archives files the case", || {
        let mut archives = archives.clone();
        let file = file.clone();
        async move {
            archives.get_case_file(archivist(pb::GetCaseFileRequest { name: file })).await.ok().map(|r| r.into_inner())
        }
    })
    .await
}

/// A late-remittance complaint about `waybill` (phone `phone`) resolved by settlement and closed.
async fn closed_by_settlement(suite: &TestSuite, waybill: &str, phone: &str) -> pb::CaseFile {
    let mut filed = complaint("late_remittance", waybill);
    filed.contact = Some(Contact { name: "李女士".into(), phone: phone.into() });
    let created = suite.complaints().create_complaint(create(&format!("c-{waybill}"), filed)).await.expect("filed");
    let name = created.into_inner().name;
    let held = complaint_when(suite, &name, "settlement holds it", |c| !c.owner_reference.is_empty()).await;
    let resolve = ResolveCaseRequest {
        name: held.owner_reference,
        resolution: "remitted to the shipper on 2026-11-21".into(),
        request_id: String::new(),
    };
    SettlementClient::new(suite.gateway.clone())
        .resolve_case(as_user(resolve, "J001", "settlement"))
        .await
        .expect("resolved");
    close(suite, &name).await
}

fn access(file: &str, kind: pb::AccessKind, personal_data: bool, request_id: &str) -> pb::CreateAccessRequestRequest {
    pb::CreateAccessRequestRequest {
        request_id: request_id.into(),
        access_request: Some(pb::AccessRequest {
            file: file.into(),
            kind: kind as i32,
            purpose: "review of a repeated late delivery at SH01".into(),
            reason: "the branch disputes the fine".into(),
            personal_data,
            ..Default::default()
        }),
    }
}

fn read(file: &str, access_request: &str) -> pb::ReadCaseFileRequest {
    pb::ReadCaseFileRequest { name: file.into(), access_request: access_request.into() }
}

fn approve(name: &str) -> pb::ApproveAccessRequestRequest {
    pb::ApproveAccessRequestRequest { name: name.into() }
}

async fn audit_actions(archives: &mut ArchivesClient<Gateway>) -> Vec<(String, String)> {
    let page = pb::ListAuditEntriesRequest { page_size: 1000, page_token: String::new() };
    let entries = archives.list_audit_entries(archivist(page)).await.expect("audit").into_inner().entries;
    entries.into_iter().map(|entry| (entry.action, entry.subject)).collect()
}

async fn verified(archives: &mut ArchivesClient<Gateway>) -> pb::AuditVerification {
    archives.verify_audit_log(archivist(pb::VerifyAuditLogRequest {})).await.expect("verified").into_inner()
}

on_both_backends!(a_closed_case_is_sealed_and_read_only_under_an_approved_unexpired_request);
async fn a_closed_case_is_sealed_and_read_only_under_an_approved_unexpired_request(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut archives = archives(&suite);

    // A cargo-damage claim agreed at 560 yuan: the complaint is resolved by claims.
    let request = as_user(create("c-YD-ARCH-1", complaint("cargo_damage", "YD-ARCH-1")), "A1024", "intake");
    let complaint_name = suite.complaints().create_complaint(request).await.expect("created").into_inner().name;
    let held = complaint_when(&suite, &complaint_name, "claims holds it", |c| !c.owner_reference.is_empty()).await;
    let claim = held.owner_reference;
    let mut claims = ClaimsClient::new(suite.gateway.clone());
    claims.record_claim_facts(as_user(facts(&claim, uninsured_loss()), "L3001", "claims")).await.expect("facts");
    claims.record_investigation(investigation(&claim, "person", "E042", 50)).await.expect("investigated");
    claims.make_offer(offer(&claim, 56_000)).await.expect("offered");
    // Within the standard and the authority limit: approved by policy at once.
    claims.record_customer_response(accept(&claim, "accepted")).await.expect("accepted");

    // Closing before the owner resolved a case is refused; this one is resolved.
    let unresolved = suite.complaints().create_complaint(create("c-open", complaint("late_delivery", "YD-OPEN"))).await;
    let unresolved = unresolved.expect("filed").into_inner().name;
    let mut intake = IntakeClient::new(suite.gateway.clone());
    let early = CloseComplaintRequest { name: unresolved, request_id: String::new(), note: String::new() };
    let early = intake.close_complaint(early).await.expect_err("not resolved");
    assert_eq!(early.code(), Code::FailedPrecondition, "{early:?}");
    let bad = CloseComplaintRequest { name: "complaints/nope".into(), request_id: String::new(), note: String::new() };
    assert_eq!(violated_fields(&intake.close_complaint(bad).await.expect_err("bad name")), ["name"]);

    // The timeline is one call away, the owner's steps in it once it resolved the case.
    complaint_when(&suite, &complaint_name, "claims resolves it", |c| c.state() == ComplaintState::Resolved).await;
    let timeline = intake
        .get_complaint_timeline(GetComplaintTimelineRequest { name: complaint_name.clone() })
        .await
        .expect("timeline")
        .into_inner();
    let actions: Vec<&str> = timeline.steps.iter().map(|step| step.action.as_str()).collect();
    assert_eq!(actions.first(), Some(&"registered"));
    assert_eq!(actions.last(), Some(&"resolved"));
    assert!(actions.contains(&"offer_accepted"), "{actions:?}");

    let closed_at = clock.now();
    let file = close(&suite, &complaint_name).await;
    assert_eq!(file.location(), pb::Location::ServiceCenter);
    assert_eq!(file.classification(), pb::Classification::Ordinary);
    assert_eq!(file.retention_rule, "case_with_payments_10y");
    assert_eq!(file.content_sha256.len(), 64);
    assert_eq!(file.archive_time, Some(to_timestamp(Utc.with_ymd_and_hms(2027, 1, 22, 2, 0, 0).single().expect("t"))));
    assert_eq!(file.close_time, Some(to_timestamp(closed_at)));

    // For two months it is the service center's working file: intake reads it whole, without asking.
    let working = archives.read_case_file(as_user(read(&file.name, ""), "A1024", "intake")).await.expect("working");
    let story = working.into_inner();
    assert!(story.personal_data_shown);
    assert_eq!(story.complaint.as_ref().map(|c| c.contact_phone.as_str()), Some("13800000000"));
    let departments: Vec<(&str, &str)> =
        story.steps.iter().map(|step| (step.department.as_str(), step.action.as_str())).collect();
    assert_eq!(departments.first(), Some(&("intake", "registered")));
    assert_eq!(departments.last(), Some(&("intake", "closed")));
    assert!(departments.contains(&("claims", "approved")), "{departments:?}");
    let paid: Vec<(&str, i64)> = story.payments.iter().map(|p| (p.kind.as_str(), p.amount_fen)).collect();
    assert_eq!(paid, [("compensation", 56_000)]);
    // Inspection did not handle it: it asks like anyone else.
    let refused = archives.read_case_file(as_user(read(&file.name, ""), "Q100", "inspection")).await;
    assert_eq!(refused.expect_err("no request").code(), Code::PermissionDenied);

    // Two months after closing the file is in the archives: now intake asks too.
    clock.advance(Duration::days(62));
    let moved =
        archives.get_case_file(as_user(pb::GetCaseFileRequest { name: file.name.clone() }, "Q100", "inspection"));
    assert_eq!(moved.await.expect("record").into_inner().location(), pb::Location::Archives);
    let refused = archives.read_case_file(as_user(read(&file.name, ""), "A1024", "intake")).await;
    let refused = refused.expect_err("archived");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("CreateAccessRequest"), "{}", refused.message());

    // 第20条: the requester's department head signs, the service department approves.
    let asked = archives
        .create_access_request(as_user(access(&file.name, pb::AccessKind::Read, false, "ask-1"), "Q100", "inspection"))
        .await
        .expect("asked")
        .into_inner();
    assert_eq!(asked.required_approvals, ["department_head", "service_department"]);
    assert_eq!(asked.state(), pb::AccessState::Pending);
    let retried = archives
        .create_access_request(as_user(access(&file.name, pb::AccessKind::Read, false, "ask-1"), "Q100", "inspection"))
        .await
        .expect("retried");
    assert_eq!(retried.into_inner().name, asked.name);
    let pending = archives.read_case_file(as_user(read(&file.name, &asked.name), "Q100", "inspection")).await;
    assert_eq!(pending.expect_err("pending").code(), Code::PermissionDenied);
    // A signer's queue: what awaits the caller's signature now, never the requester's own request.
    let lister = archives.clone();
    let queue = |user: &'static str, department: &'static str, roles: &'static str| {
        let mut archives = lister.clone();
        async move {
            let request = pb::ListAccessRequestsRequest { awaiting_my_signature: true, ..Default::default() };
            let listed = archives.list_access_requests(by(request, user, department, roles, "")).await;
            listed.expect("listed").into_inner().access_requests.into_iter().map(|asked| asked.name).collect::<Vec<_>>()
        }
    };
    assert_eq!(queue("H1", "inspection", "department_head").await, std::slice::from_ref(&asked.name));
    assert_eq!(queue("S1", "intake", "department_head").await, std::slice::from_ref(&asked.name));
    assert!(queue("Q100", "inspection", "department_head").await.is_empty(), "not one's own request");
    assert!(queue("A5", "claims", "department_head").await.is_empty(), "not another department's head");
    let own = pb::ListAccessRequestsRequest::default();
    let own = archives.list_access_requests(as_user(own, "Q100", "inspection")).await.expect("listed").into_inner();
    assert_eq!(own.access_requests.iter().map(|asked| &asked.name).collect::<Vec<_>>(), [&asked.name], "one's own");
    let own =
        archives.approve_access_request(by(approve(&asked.name), "Q100", "inspection", "department_head", "")).await;
    assert_eq!(own.expect_err("own request").code(), Code::PermissionDenied);
    let half = archives
        .approve_access_request(by(approve(&asked.name), "H1", "inspection", "department_head", ""))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(half.state(), pb::AccessState::Pending);
    assert!(queue("H1", "inspection", "department_head").await.is_empty(), "signed: off the queue");
    assert_eq!(queue("S1", "intake", "department_head").await, std::slice::from_ref(&asked.name), "still the other's");
    let approved = archives
        .approve_access_request(by(approve(&asked.name), "S1", "intake", "department_head", ""))
        .await
        .expect("approved")
        .into_inner();
    assert_eq!(approved.state(), pb::AccessState::Approved);
    assert_eq!(approved.expire_time, Some(to_timestamp(clock.now() + Duration::days(7))));

    // The read: personal data masked (the request did not ask for it), entered in the register.
    let content = archives
        .read_case_file(as_user(read(&file.name, &asked.name), "Q100", "inspection"))
        .await
        .expect("read")
        .into_inner();
    assert!(!content.personal_data_shown);
    let contact = content.complaint.expect("the complaint");
    assert_eq!((contact.contact_name.as_str(), contact.contact_phone.as_str()), ("王**", "138****0000"));
    assert_eq!(content.file.map(|f| f.content_sha256), Some(file.content_sha256.clone()));
    // Someone else cannot use Q100's approval.
    let borrowed = archives.read_case_file(as_user(read(&file.name, &asked.name), "Q200", "inspection")).await;
    assert_eq!(borrowed.expect_err("not theirs").code(), Code::PermissionDenied);
    let register = archives
        .list_borrowing_register(archivist(pb::ListBorrowingRegisterRequest {
            file: file.name.clone(),
            ..Default::default()
        }))
        .await
        .expect("register")
        .into_inner()
        .entries;
    let entries: Vec<(&str, &str)> = register.iter().map(|e| (e.reader.as_str(), e.access_request.as_str())).collect();
    assert_eq!(entries, [("Q100", asked.name.as_str())]);
    let not_archivist =
        archives.list_borrowing_register(as_user(pb::ListBorrowingRegisterRequest::default(), "Q100", "inspection"));
    assert_eq!(not_archivist.await.expect_err("archives only").code(), Code::PermissionDenied);

    // Approvals expire.
    clock.advance(Duration::days(8));
    let expired = archives.read_case_file(as_user(read(&file.name, &asked.name), "Q100", "inspection")).await;
    let expired = expired.expect_err("expired");
    assert_eq!(expired.code(), Code::PermissionDenied);
    assert!(expired.message().contains("expired"), "{}", expired.message());

    // Everything above is in the audit log, refusals too, and the chain holds.
    let actions = audit_actions(&mut archives).await;
    for expected in ["filed", "read", "read_refused", "access_requested", "approved"] {
        assert!(actions.iter().any(|(action, _)| action == expected), "{expected} missing from {actions:?}");
    }
    assert_eq!(actions.iter().filter(|(action, _)| action == "read_refused").count(), 5, "{actions:?}");
    let verification = verified(&mut archives).await;
    assert!(verification.intact, "{verification:?}");
    assert_eq!(verification.entries_checked, actions.len() as i64);

    // Classified afterwards, the file's reads (who read it and why) leave the register of every
    // archivist not cleared for it: with the file named, and without.
    let classify = pb::ClassifyCaseFileRequest {
        name: file.name.clone(),
        classification: pb::Classification::Confidential as i32,
        reason: "the customer is under investigation".into(),
    };
    archives.classify_case_file(archivist(classify)).await.expect("classified");
    let register = |file: &str, clearance: &str| {
        by(
            pb::ListBorrowingRegisterRequest { file: file.into(), ..Default::default() },
            "D002",
            "archives",
            "",
            clearance,
        )
    };
    for (clearance, seen) in [("", 0), ("confidential", 1), ("top_secret", 1)] {
        let named = archives.list_borrowing_register(register(&file.name, clearance)).await.expect("listed");
        assert_eq!(named.into_inner().entries.len(), seen, "{clearance:?}, the file named");
        let all = archives.list_borrowing_register(register("", clearance)).await.expect("listed").into_inner();
        assert_eq!(all.entries.iter().filter(|entry| entry.file == file.name).count(), seen, "{clearance:?}, all");
    }
    suite.stop().await;
}

on_both_backends!(a_classified_file_is_invisible_without_clearance);
async fn a_classified_file_is_invisible_without_clearance(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut archives = archives(&suite);
    let file = closed_by_settlement(&suite, "WB-SECRET", "13900000001").await;
    closed_by_settlement(&suite, "WB-PLAIN", "13900000002").await;

    let classify = |level: pb::Classification, reason: &str| pb::ClassifyCaseFileRequest {
        name: file.name.clone(),
        classification: level as i32,
        reason: reason.into(),
    };
    let stranger = archives.classify_case_file(by(
        classify(pb::Classification::TopSecret, "x"),
        "Q100",
        "inspection",
        "",
        "top_secret",
    ));
    assert_eq!(stranger.await.expect_err("not an archivist").code(), Code::PermissionDenied);
    let above = archives.classify_case_file(by(
        classify(pb::Classification::TopSecret, "x"),
        "D002",
        "archives",
        "",
        "confidential",
    ));
    assert_eq!(above.await.expect_err("above own clearance").code(), Code::PermissionDenied);
    let no_reason = archives.classify_case_file(archivist(classify(pb::Classification::TopSecret, " ")));
    assert_eq!(violated_fields(&no_reason.await.expect_err("no reason")), ["reason"]);
    let classified = archives
        .classify_case_file(archivist(classify(pb::Classification::TopSecret, "names a customer under investigation")))
        .await
        .expect("classified")
        .into_inner();
    assert_eq!(classified.classification(), pb::Classification::TopSecret);

    // Without clearance the file does not exist: not by name, not in a search, not in the count.
    let search = || pb::SearchCaseFilesRequest { category: "late_remittance".into(), ..Default::default() };
    for clearance in ["", "confidential"] {
        let got = archives.get_case_file(by(
            pb::GetCaseFileRequest { name: file.name.clone() },
            "Q100",
            "inspection",
            "",
            clearance,
        ));
        let got = got.await.expect_err("invisible");
        assert_eq!(got.code(), Code::NotFound);
        assert_eq!(got.message(), format!("no file named {}", file.name));
        let found =
            archives.search_case_files(by(search(), "Q100", "inspection", "", clearance)).await.expect("searched");
        let found = found.into_inner();
        assert_eq!(found.total_size, 1);
        assert!(found.case_files.iter().all(|f| f.waybill_number == "WB-PLAIN"), "{:?}", found.case_files);
        let reading = archives.read_case_file(by(read(&file.name, ""), "A1024", "intake", "", clearance)).await;
        assert_eq!(reading.expect_err("invisible").code(), Code::NotFound);
        let ask = archives.create_access_request(by(
            access(&file.name, pb::AccessKind::Read, false, ""),
            "Q100",
            "inspection",
            "",
            clearance,
        ));
        assert_eq!(ask.await.expect_err("invisible").code(), Code::NotFound);
    }
    let cleared =
        archives.search_case_files(by(search(), "Q100", "inspection", "", "top_secret")).await.expect("searched");
    assert_eq!(cleared.into_inner().total_size, 2);
    let by_waybill = pb::SearchCaseFilesRequest { waybill_number: "WB-SECRET".into(), ..Default::default() };
    let found =
        archives.search_case_files(by(by_waybill, "Q100", "inspection", "", "top_secret")).await.expect("found");
    assert_eq!(found.into_inner().case_files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), [file.name.as_str()]);

    // A classified file also needs the general manager; a copy needs its own approval (第23条).
    let asked = archives
        .create_access_request(by(
            access(&file.name, pb::AccessKind::Copy, false, ""),
            "Q100",
            "inspection",
            "",
            "top_secret",
        ))
        .await
        .expect("asked")
        .into_inner();
    assert_eq!(asked.required_approvals, ["department_head", "service_department", "general_manager", "copy_approval"]);
    // The general manager refuses it, with a reason; a refused request reads nothing.
    let refuse = |reason: &str| pb::RefuseAccessRequestRequest { name: asked.name.clone(), reason: reason.into() };
    let clerk = archives.refuse_access_request(by(refuse("no"), "Q300", "claims", "", "")).await;
    assert_eq!(clerk.expect_err("not a signer").code(), Code::PermissionDenied);
    let refused = archives
        .refuse_access_request(by(refuse("the investigation is not closed"), "GM", "", "general_manager", ""))
        .await
        .expect("refused")
        .into_inner();
    assert_eq!((refused.state(), refused.refused_by.as_str()), (pb::AccessState::Refused, "GM"));
    let reading = archives.read_case_file(by(read(&file.name, &asked.name), "Q100", "inspection", "", "top_secret"));
    assert_eq!(reading.await.expect_err("refused").code(), Code::PermissionDenied);
    let actions = audit_actions(&mut archives).await;
    assert!(actions.contains(&("classified".to_owned(), file.name.clone())), "{actions:?}");
    assert!(actions.contains(&("refused".to_owned(), asked.name.clone())), "{actions:?}");

    // An access request names its file: for a caller not cleared for the file, it is missing.
    for (clearance, cleared) in [("", false), ("confidential", false), ("top_secret", true)] {
        let request = pb::GetAccessRequestRequest { name: asked.name.clone() };
        let request = archives.get_access_request(by(request, "Q100", "inspection", "", clearance)).await;
        match request {
            Ok(request) => {
                assert!(cleared, "{clearance:?} is not cleared for the file");
                assert_eq!(request.into_inner().name, asked.name, "the requester, cleared");
            }
            Err(status) => assert_eq!((cleared, status.code()), (false, Code::NotFound), "{clearance:?}"),
        }
    }
    suite.stop().await;
}

on_both_backends!(files_are_kept_their_period_held_files_are_never_destroyed_and_destruction_is_recorded);
async fn files_are_kept_their_period_held_files_are_never_destroyed_and_destruction_is_recorded(backend: Backend) {
    let clock = clock();
    let suite = TestSuite::start(backend, clock.clone()).await;
    let mut archives = archives(&suite);
    let file = closed_by_settlement(&suite, "WB-OLD", "13900000003").await;
    assert_eq!(file.retention_rule, "case_3y");
    let destroy = |request_id: &str| pb::DestroyCaseFileRequest {
        name: file.name.clone(),
        reason: "retention period over; shredded by the archives".into(),
        request_id: request_id.into(),
    };
    let early = archives.destroy_case_file(archivist(destroy("d-early"))).await.expect_err("still kept");
    assert_eq!(early.code(), Code::FailedPrecondition);
    assert!(early.message().contains("kept until 2029-11-22"), "{}", early.message());

    clock.advance(Duration::days(3 * 365 + 2));
    let due = || pb::ListDueForDestructionRequest { page_size: 10 };
    let listed = archives.list_due_for_destruction(archivist(due())).await.expect("due").into_inner();
    assert_eq!(listed.case_files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), [file.name.as_str()]);

    let hold =
        |hold: bool| pb::SetLegalHoldRequest { name: file.name.clone(), hold, reason: "court order 2029-17".into() };
    let held = archives.set_legal_hold(archivist(hold(true))).await.expect("held").into_inner();
    assert!(held.legal_hold);
    let refused = archives.destroy_case_file(archivist(destroy("d-held"))).await.expect_err("held");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("legal hold"), "{}", refused.message());
    assert!(archives.list_due_for_destruction(archivist(due())).await.expect("due").into_inner().case_files.is_empty());
    archives.set_legal_hold(archivist(hold(false))).await.expect("lifted");

    let clerk = archives.destroy_case_file(by(destroy("d-clerk"), "D002", "archives", "", "top_secret")).await;
    assert_eq!(clerk.expect_err("needs the supervisor").code(), Code::PermissionDenied);
    // A classified file is destroyed like any other; its record is seen only by those cleared for it.
    let classify = pb::ClassifyCaseFileRequest {
        name: file.name.clone(),
        classification: pb::Classification::TopSecret as i32,
        reason: "names a customer under investigation".into(),
    };
    archives.classify_case_file(archivist(classify)).await.expect("classified");
    // Four eyes: a member of the archives proposes, and another destroys.
    let unproposed = archives.destroy_case_file(archivist(destroy("d-1"))).await.expect_err("not proposed");
    assert_eq!(unproposed.code(), Code::FailedPrecondition);
    assert!(unproposed.message().contains("ProposeDestruction"), "{}", unproposed.message());
    let propose = || pb::ProposeDestructionRequest { name: file.name.clone(), reason: "three years are over".into() };
    archives.propose_destruction(archivist(propose())).await.expect("proposed by the supervisor");
    let own = archives.destroy_case_file(archivist(destroy("d-1"))).await.expect_err("the one who proposed");
    assert_eq!(own.code(), Code::PermissionDenied);
    assert!(own.message().contains("four eyes"), "{}", own.message());
    let proposal = archives.propose_destruction(by(propose(), "D002", "archives", "", "top_secret")).await;
    assert_eq!(proposal.expect("proposed by the clerk").into_inner().proposed_by, "D002");
    let record = archives.destroy_case_file(archivist(destroy("d-1"))).await.expect("destroyed").into_inner();
    assert_eq!(
        (record.case_file.as_str(), record.retention_rule.as_str(), record.approved_by.as_str()),
        (file.name.as_str(), "case_3y", "D001")
    );
    assert_eq!(record.content_sha256, file.content_sha256);
    let again = archives.destroy_case_file(archivist(destroy("d-1"))).await.expect("retried").into_inner();
    assert_eq!(again.name, record.name);

    // The record stays; the content is gone, and says so.
    let gone =
        archives.get_case_file(archivist(pb::GetCaseFileRequest { name: file.name.clone() })).await.expect("record");
    let gone = gone.into_inner();
    assert_eq!(
        (gone.location(), gone.content_sha256.as_str()),
        (pb::Location::Destroyed, file.content_sha256.as_str())
    );
    let reading = archives.read_case_file(by(read(&file.name, ""), "A1024", "intake", "", "top_secret")).await;
    assert_eq!(reading.expect_err("destroyed").code(), Code::FailedPrecondition);
    let records = archives.list_destruction_records(archivist(pb::ListDestructionRecordsRequest::default())).await;
    assert_eq!(records.expect("records").into_inner().records, [record]);
    for clearance in ["", "confidential"] {
        let records = pb::ListDestructionRecordsRequest::default();
        let records = archives.list_destruction_records(by(records, "D002", "archives", "", clearance)).await;
        assert!(records.expect("records").into_inner().records.is_empty(), "{clearance:?}: a top-secret file's record");
    }
    let actions = audit_actions(&mut archives).await;
    assert!(actions.contains(&("destroyed".to_owned(), file.name.clone())), "{actions:?}");
    assert_eq!(actions.iter().filter(|(action, _)| action == "legal_hold").count(), 2);
    suite.stop().await;
}

on_both_backends!(customers_are_filed_graded_and_read_with_permission);
async fn customers_are_filed_graded_and_read_with_permission(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut archives = archives(&suite);
    let file = closed_by_settlement(&suite, "WB-CUST", "13911112222").await;
    assert_eq!(file.customer, "");

    let customer = |id: &str, phones: &[&str], request_id: &str| pb::CreateCustomerFileRequest {
        request_id: request_id.into(),
        customer_id: id.into(),
        customer_file: Some(pb::CustomerFile {
            contact_name: "李女士".into(),
            phones: phones.iter().map(|p| (*p).to_owned()).collect(),
            company: "上海茶叶进出口公司".into(),
            customer_type: "enterprise".into(),
            ..Default::default()
        }),
    };
    let outsider =
        archives.create_customer_file(as_user(customer("C001", &["13911112222"], "cf-1"), "Q100", "inspection"));
    assert_eq!(outsider.await.expect_err("not the service department").code(), Code::PermissionDenied);
    let bad =
        archives.create_customer_file(as_user(customer("C 1", &["12"], ""), "A1024", "intake")).await.expect_err("bad");
    assert_eq!(violated_fields(&bad), ["customer_id", "customer_file.phones[0]"]);
    let created =
        archives.create_customer_file(as_user(customer("C001", &["13911112222"], "cf-1"), "A1024", "intake")).await;
    assert_eq!(created.expect("filed").into_inner().name, "customers/C001");
    let taken =
        archives.create_customer_file(as_user(customer("C002", &["13911112222"], "cf-2"), "A1024", "intake")).await;
    assert_eq!(taken.expect_err("phone taken").code(), Code::AlreadyExists);
    // The customer's earlier case is filed under the new file.
    let filed =
        archives.get_case_file(archivist(pb::GetCaseFileRequest { name: file.name.clone() })).await.expect("file");
    assert_eq!(filed.into_inner().customer, "customers/C001");

    // The scoring sheet: 28 + 27 + 8 + 18 + 6 = 87, grade A.
    let score = |credit: i32| pb::ScoreCustomerRequest {
        customer: "customers/C001".into(),
        score: Some(pb::CustomerScore {
            profit_contribution: 28,
            order_amount: 27,
            cooperation_years: 8,
            credit,
            prospects: 6,
        }),
    };
    let over = archives.score_customer(as_user(score(21), "A1024", "intake")).await.expect_err("credit is out of 20");
    assert_eq!(violated_fields(&over), ["score.credit"]);
    let grade = archives.score_customer(as_user(score(18), "A1024", "intake")).await.expect("scored").into_inner();
    assert_eq!((grade.grade.as_str(), grade.total), ("A", 87));
    let by_phone =
        pb::GetCustomerGradeRequest { key: Some(pb::get_customer_grade_request::Key::Phone("13911112222".into())) };
    let looked_up =
        archives.get_customer_grade(as_user(by_phone, "A2048", "intake")).await.expect("grade").into_inner();
    assert_eq!((looked_up.grade.as_str(), looked_up.score.map(|s| s.credit)), ("A", Some(18)));
    // Intake learns the grade: the customer's next complaint gets half the time (A first).
    let mut attempt = 0;
    let graded = eventually("intake knows the customer's grade", || {
        attempt += 1;
        let mut filed = complaint("late_delivery", &format!("YDG{attempt}"));
        filed.contact = Some(Contact { name: "陈先生".into(), phone: "13911112222".into() });
        let mut complaints = suite.complaints();
        let mut intake = IntakeClient::new(suite.gateway.clone());
        async move {
            let created =
                complaints.create_complaint(create(&format!("graded-{attempt}"), filed)).await.ok()?.into_inner();
            let shown = intake.get_complaint(GetComplaintRequest { name: created.name }).await.ok()?.into_inner();
            (shown.customer_grade == "A").then_some(shown)
        }
    })
    .await;
    let registered = graded.create_time.as_ref().and_then(kefu_kit::time::from_timestamp).expect("a time");
    assert_eq!(graded.deadline, Some(to_timestamp(registered + Duration::hours(24))));

    // The file itself is read only with permission; this request covers the personal data.
    let read_customer = |access_request: &str| pb::ReadCustomerFileRequest {
        name: "customers/C001".into(),
        access_request: access_request.into(),
    };
    let refused = archives.read_customer_file(as_user(read_customer(""), "A2048", "intake")).await;
    assert_eq!(refused.expect_err("no request").code(), Code::PermissionDenied);
    let asked = archives
        .create_access_request(as_user(access("customers/C001", pb::AccessKind::Read, true, ""), "D9", "archives"))
        .await
        .expect("asked")
        .into_inner();
    // The head of archives signs as the requester's department head, once: each signature is
    // another person's (003 第19–23条), so the service department's is someone else's.
    let signed = archives
        .approve_access_request(by(approve(&asked.name), "H7", "archives", "department_head,supervisor", ""))
        .await
        .expect("signed")
        .into_inner();
    assert_eq!(signed.state(), pb::AccessState::Pending, "{signed:?}");
    assert_eq!(signed.approvals.iter().map(|a| a.approver.as_str()).collect::<Vec<_>>(), ["H7"]);
    let again = archives
        .approve_access_request(by(approve(&asked.name), "H7", "archives", "department_head,supervisor", ""))
        .await;
    let again = again.expect_err("signed already");
    assert_eq!(again.code(), Code::PermissionDenied);
    assert!(again.message().contains("another person must sign"), "{}", again.message());
    let pending = archives.read_customer_file(as_user(read_customer(&asked.name), "D9", "archives")).await;
    assert_eq!(pending.expect_err("not approved yet").code(), Code::PermissionDenied);
    let approved = archives
        .approve_access_request(by(approve(&asked.name), "S2", "intake", "department_head", ""))
        .await
        .expect("approved")
        .into_inner();
    assert_eq!(approved.state(), pb::AccessState::Approved);
    let customer_file = archives.read_customer_file(as_user(read_customer(&asked.name), "D9", "archives")).await;
    let customer_file = customer_file.expect("read").into_inner();
    assert_eq!(customer_file.contact_name, "李女士");
    assert_eq!(customer_file.phones, ["13911112222"]);
    assert_eq!(customer_file.cases.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [file.name.as_str()]);
    assert_eq!(customer_file.grade.map(|g| g.grade), Some("A".to_owned()));
    suite.stop().await;
}

on_both_backends!(an_altered_or_removed_audit_entry_is_detected);
async fn an_altered_or_removed_audit_entry_is_detected(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut archives = archives(&suite);
    let file = closed_by_settlement(&suite, "WB-AUDIT", "13900000005").await;
    for _ in 0..3 {
        archives.read_case_file(as_user(read(&file.name, ""), "A1024", "intake")).await.expect("working read");
    }
    let intact = verified(&mut archives).await;
    assert!(intact.intact, "{intact:?}");
    assert_eq!(intact.entries_checked, 4);
    let not_cleared =
        archives.verify_audit_log(by(pb::VerifyAuditLogRequest {}, "D002", "archives", "", "confidential"));
    assert_eq!(not_cleared.await.expect_err("needs top_secret").code(), Code::PermissionDenied);

    // Someone with database access rewrites who read the file.
    let database = db::connect(&suite.config, ServiceName::Archives.as_str()).await.expect("the archives' database");
    let backend = database.get_database_backend();
    let sql = |text: &str| Statement::from_string(backend, text.to_owned());
    database.execute(sql("UPDATE archive_audit SET actor = 'nobody' WHERE seq = 3")).await.expect("tampered");
    let altered = verified(&mut archives).await;
    assert!(!altered.intact);
    assert_eq!(altered.first_broken_seq, 3);
    assert!(altered.problem.contains("altered"), "{}", altered.problem);
    database.execute(sql("UPDATE archive_audit SET actor = 'A1024' WHERE seq = 3")).await.expect("restored");
    assert!(verified(&mut archives).await.intact);

    // Rewrite and recompute: alter an entry, then chain every entry after it anew and move the head,
    // as anyone who can write the database can. Without the audit key the seals cannot be made.
    use sea_orm::{ActiveModelTrait, EntityTrait, IntoActiveModel, Set};
    use sha2::Digest;
    let mut original = kefu_archives::store::audit_log::entry::Entity::find().all(&database).await.expect("the log");
    original.sort_by_key(|row| row.seq);
    let mut prev_hash = String::new();
    for row in &original {
        let actor = if row.seq == 3 { "nobody" } else { row.actor.as_str() };
        let mut hasher = sha2::Sha256::new();
        let (seq, time) = (row.seq.to_string(), row.time.timestamp_micros().to_string());
        for field in [prev_hash.as_str(), &seq, &time, actor, &row.action, &row.subject, &row.detail] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let hash = kefu_kit::text::hex(&hasher.finalize());
        let mut rewritten = row.clone().into_active_model();
        rewritten.actor = Set(actor.to_owned());
        rewritten.prev_hash = Set(prev_hash.clone());
        rewritten.hash = Set(hash.clone());
        rewritten.update(&database).await.expect("rewritten");
        prev_hash = hash;
    }
    let last = original.len();
    database
        .execute(sql(&format!("UPDATE archive_audit_head SET seq = {last}, hash = '{prev_hash}' WHERE id = 1")))
        .await
        .expect("the head moved");
    let recomputed = verified(&mut archives).await;
    assert!(!recomputed.intact, "a recomputed chain does not verify without the key: {recomputed:?}");
    assert_eq!(recomputed.first_broken_seq, 1, "{recomputed:?}");
    for row in &original {
        row.clone().into_active_model().reset_all().update(&database).await.expect("restored");
    }
    let head = original.last().map(|row| row.hash.clone()).unwrap_or_default();
    database
        .execute(sql(&format!("UPDATE archive_audit_head SET seq = {last}, hash = '{head}' WHERE id = 1")))
        .await
        .expect("the head restored");
    assert!(verified(&mut archives).await.intact);

    // Removing an entry in the middle, or the last one, is noticed too.
    database.execute(sql("DELETE FROM archive_audit WHERE seq = 4")).await.expect("cut the end");
    let cut = verified(&mut archives).await;
    assert_eq!((cut.intact, cut.first_broken_seq), (false, 4), "{cut:?}");
    database.execute(sql("DELETE FROM archive_audit WHERE seq = 2")).await.expect("removed");
    let removed = verified(&mut archives).await;
    assert_eq!((removed.intact, removed.first_broken_seq), (false, 2), "{removed:?}");
    assert!(removed.problem.contains("missing"), "{}", removed.problem);
    if backend == DbBackend::Postgres {
        database.close().await.expect("closed");
    }
    suite.stop().await;
}

on_both_backends!(bad_archive_requests_get_clear_errors_and_change_nothing);
async fn bad_archive_requests_get_clear_errors_and_change_nothing(backend: Backend) {
    let suite = TestSuite::start(backend, clock()).await;
    let mut archives = archives(&suite);
    let empty = pb::CreateAccessRequestRequest {
        request_id: String::new(),
        access_request: Some(pb::AccessRequest { file: "cabinet/7".into(), ..Default::default() }),
    };
    let refused = archives.create_access_request(as_user(empty, "Q100", "inspection")).await.expect_err("bad");
    assert_eq!(
        violated_fields(&refused),
        ["access_request.file", "access_request.kind", "access_request.purpose", "access_request.reason"]
    );
    let missing = archives.create_access_request(as_user(
        access("caseFiles/20261122-ZZZZZZ", pb::AccessKind::Read, false, ""),
        "Q100",
        "inspection",
    ));
    assert_eq!(missing.await.expect_err("no such file").code(), Code::NotFound);
    let bad_name = archives.read_case_file(as_user(read("complaints/1", ""), "Q100", "inspection")).await;
    assert_eq!(violated_fields(&bad_name.expect_err("bad name")), ["name"]);
    let no_request =
        archives.approve_access_request(by(approve("accessRequests/99"), "S1", "intake", "department_head", "")).await;
    assert_eq!(no_request.expect_err("none").code(), Code::NotFound);
    let grade = pb::GetCustomerGradeRequest { key: None };
    assert_eq!(violated_fields(&archives.get_customer_grade(grade).await.expect_err("no key")), ["customer"]);
    // Nothing was recorded.
    assert_eq!(audit_actions(&mut archives).await, []);
    suite.stop().await;
}

/// Audited refusals, one per number: reads of files that do not exist, as intake agent A1024.
async fn refused_reads(archives: &mut ArchivesClient<Gateway>, numbers: std::ops::Range<u32>) {
    for number in numbers {
        let name = format!("caseFiles/20261122-NONE{number:02}");
        let refused = archives.read_case_file(as_user(read(&name, ""), "A1024", "intake")).await;
        assert_eq!(refused.expect_err("no such file").code(), Code::NotFound);
    }
}

/// Waits until archives has anchored entry `seq` in the head file `path`.
async fn anchored_at(path: &std::path::Path, seq: i64) -> kefu_archives::audit::Head {
    let file = kefu_archives::audit::HeadFile::at(path);
    eventually(&format!("archives anchors entry {seq} in its head file"), || {
        let found = file.read().ok().flatten().filter(|head| head.seq == seq);
        async move { found }
    })
    .await
}

on_both_backends!(a_chain_recomputed_with_the_key_and_cut_short_is_caught_by_the_head_file);
/// Whoever holds the audit key and can write the database drops the last entries, alters one and
/// seals the rest anew, moving the head row back: the chain alone verifies, and the head file,
/// written after each append where the database's users cannot write, says what was cut.
async fn a_chain_recomputed_with_the_key_and_cut_short_is_caught_by_the_head_file(backend: Backend) {
    use sea_orm::{EntityTrait, QueryOrder};

    let suite = TestSuite::start(backend, clock()).await;
    let mut archives = archives(&suite);
    refused_reads(&mut archives, 0..4).await;
    let head_file = suite.config.data_dir.join("audit.head");
    anchored_at(&head_file, 4).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&head_file).expect("the head file").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the head file is its owner's alone");
    }
    assert!(verified(&mut archives).await.intact);

    let key = kefu_archives::audit::AuditKey::load(&suite.config).expect("the audit key");
    let database = db::connect(&suite.config, ServiceName::Archives.as_str()).await.expect("the archives' database");
    let backend = database.get_database_backend();
    let sql = |text: &str| Statement::from_string(backend, text.to_owned());
    use kefu_archives::store::audit_log::entry;
    database.execute(sql("DELETE FROM archive_audit WHERE seq > 2")).await.expect("cut");
    let mut prev_hash = String::new();
    for row in entry::Entity::find().order_by_asc(entry::Column::Seq).all(&database).await.expect("the log") {
        let mut row = row;
        if row.seq == 2 {
            row.actor = "nobody".into();
        }
        row.prev_hash = prev_hash.clone();
        row.hash = kefu_archives::audit::sealed_with(&key, &prev_hash, &row);
        prev_hash = row.hash.clone();
        let update = format!(
            "UPDATE archive_audit SET actor = '{}', prev_hash = '{}', hash = '{}' WHERE seq = {}",
            row.actor, row.prev_hash, row.hash, row.seq
        );
        database.execute(sql(&update)).await.expect("rewritten");
    }
    database
        .execute(sql(&format!("UPDATE archive_audit_head SET seq = 2, hash = '{prev_hash}' WHERE id = 1")))
        .await
        .expect("the head moved back");

    let cut = verified(&mut archives).await;
    assert!(!cut.intact, "{cut:?}");
    assert_eq!((cut.entries_checked, cut.first_broken_seq), (2, 3), "{cut:?}");
    assert!(cut.problem.contains("the head file records entry 4"), "{}", cut.problem);
    if backend == DbBackend::Postgres {
        database.close().await.expect("closed");
    }
    suite.stop().await;
}

on_both_backends!(a_chain_rewritten_without_the_key_is_reported_at_restart_and_sealed_only_by_kefu_audit_seal);
/// Someone who can write the database but does not hold the audit key erases an entry and seals
/// the chain anew with plain SHA-256, as archives sealed logs before the key. Archives, restarted,
/// does not adopt it: it says so in its log and its metric, goes on serving, and `VerifyAuditLog`
/// says the chain is not intact. `kefu audit seal` refuses a broken chain, and seals it when the
/// operator accepts the break; then it verifies, and the metric says so.
async fn a_chain_rewritten_without_the_key_is_reported_at_restart_and_sealed_only_by_kefu_audit_seal(backend: Backend) {
    use std::time::Duration as StdDuration;

    use sea_orm::{EntityTrait, QueryOrder};
    use sha2::Digest;

    use crate::{
        operations::{sample, scrape},
        processes::Cluster,
        support::{TestDatabase, free_port, test_config},
    };

    const METRIC: &str = "kefu_archives_audit_chain_intact";
    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    let metrics_port = free_port();
    let archives_env = [("KEFU_METRICS_ADDR".to_owned(), format!("127.0.0.1:{metrics_port}"))];
    cluster.start_as("gateway", "gateway", &[]);
    cluster.start_as("archives", "archives", &archives_env);
    let mut archives = ArchivesClient::new(cluster.gateway());
    eventually("archives answers through the gateway", || {
        let mut archives = archives.clone();
        async move { archives.verify_audit_log(archivist(pb::VerifyAuditLogRequest {})).await.ok() }
    })
    .await;
    refused_reads(&mut archives, 0..4).await;
    let head_file = dir.path().join("data").join("audit.head");
    anchored_at(&head_file, 4).await;
    let intact = verified(&mut archives).await;
    assert!(intact.intact && intact.entries_checked == 4, "{intact:?}");
    let metric = || async { scrape(metrics_port).await.and_then(|text| sample(&text, METRIC)) };
    assert_eq!(metric().await, Some(1.0));

    // Archives stops; entry 2 is erased, the rest numbered anew and sealed with plain SHA-256.
    cluster.signal("archives", "KILL");
    cluster.exit_of("archives", StdDuration::from_secs(10)).await;
    let config = test_config(dir.path(), database.as_ref());
    let db = db::connect(&config, ServiceName::Archives.as_str()).await.expect("the archives' database");
    let sql = |text: String| Statement::from_string(db.get_database_backend(), text);
    use kefu_archives::store::audit_log::entry;
    let rows = entry::Entity::find().order_by_asc(entry::Column::Seq).all(&db).await.expect("the log");
    db.execute(sql("DELETE FROM archive_audit".into())).await.expect("emptied");
    let mut prev_hash = String::new();
    for (seq, row) in (1..).zip(rows.into_iter().filter(|row| row.seq != 2)) {
        let mut hasher = sha2::Sha256::new();
        let (number, time) = (seq.to_string(), row.time.timestamp_micros().to_string());
        for field in [prev_hash.as_str(), &number, &time, &row.actor, &row.action, &row.subject, &row.detail] {
            hasher.update((field.len() as u64).to_be_bytes());
            hasher.update(field.as_bytes());
        }
        let hash = kefu_kit::text::hex(&hasher.finalize());
        let rewritten = entry::Model { seq, prev_hash: prev_hash.clone(), hash: hash.clone(), ..row };
        kefu_archives::store::audit_log::insert_entry(&db, rewritten).await.expect("rewritten");
        prev_hash = hash;
    }
    db.execute(sql(format!("UPDATE archive_audit_head SET seq = 3, hash = '{prev_hash}' WHERE id = 1")))
        .await
        .expect("the head moved");
    let _ = db.close().await;

    // Restarted: reported, not adopted; still serving.
    let logged_before = cluster.log("archives").len();
    cluster.start_as("archives", "archives", &archives_env);
    let line = eventually("archives reports the chain at start", || {
        let log = cluster.log("archives");
        let line = log[logged_before.min(log.len())..]
            .lines()
            .find(|line| line.contains("the audit chain is broken"))
            .map(str::to_owned);
        async move { line }
    })
    .await;
    assert!(line.contains("ERROR") && line.contains("the head file records entry 4"), "{line}");
    assert!(!line.contains("A1024") && !line.contains("NONE0"), "no one's name or file in it: {line}");
    let zero = eventually("the metric says the chain is not intact", || async {
        metric().await.filter(|value| *value == 0.0)
    })
    .await;
    assert_eq!(zero, 0.0);
    let rewritten = verified(&mut archives).await;
    assert!(!rewritten.intact, "a rewritten chain is never adopted: {rewritten:?}");
    assert_eq!(rewritten.first_broken_seq, 1, "{rewritten:?}");
    assert!(rewritten.problem.contains("sealed without the audit key"), "{}", rewritten.problem);
    refused_reads(&mut archives, 4..5).await;

    // The operator's command: a broken chain is refused, then sealed when the break is accepted.
    let kefu = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(args)
            .env_clear()
            .envs(cluster.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .output()
            .expect("run kefu")
    };
    let refused = kefu(&["audit", "seal"]);
    let said = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{said}");
    assert!(said.contains("the audit chain is broken at entry 1") && said.contains("--accept-broken"), "{said}");
    assert!(!verified(&mut archives).await.intact, "nothing sealed");
    let sealed = kefu(&["audit", "seal", "--accept-broken"]);
    let said = String::from_utf8_lossy(&sealed.stdout);
    assert!(sealed.status.success(), "{said}{}", String::from_utf8_lossy(&sealed.stderr));
    assert!(said.contains("Found: 4 entries; the head file") && said.contains("recorded entry 4"), "{said}");
    assert!(said.contains("Sealed 4 entries anew") && said.contains("as entry 5 (`chain_sealed`)"), "{said}");
    let sealed = verified(&mut archives).await;
    assert!(sealed.intact && sealed.entries_checked == 5, "{sealed:?}");
    assert_eq!(anchored_at(&head_file, 5).await.seq, 5);
    let one =
        eventually("archives sees the sealed chain", || async { metric().await.filter(|value| *value == 1.0) }).await;
    assert_eq!(one, 1.0);
    let actions = audit_actions(&mut archives).await;
    assert_eq!(actions.last().map(|(action, _)| action.as_str()), Some("chain_sealed"));
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}
