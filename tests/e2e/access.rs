//! The authorization matrix: every RPC of kefu's contracts, called through the gateway by each of
//! fourteen principals (an outsider of department `external` among them), answered as the access
//! table says — checked against the running suite, and printed; and one more row, who sees a
//! customer's name and phone.
//!
//! A cell the table denies must come back `PERMISSION_DENIED` from the gateway (its message names
//! the access table), or `UNAUTHENTICATED` for a caller without a token; a cell the table allows
//! must get past the gateway (whatever the service then answers to an empty request: usually
//! `INVALID_ARGUMENT`, sometimes its own rule's `PERMISSION_DENIED`, which never names the table).

use std::{collections::BTreeMap, str::FromStr};

use kefu_gateway::{
    AccessTable,
    access::every_method,
    identity::{Kind, Principal as GatewayPrincipal},
};
use kefu_kit::caller::Caller;
use tonic::{Code, Status, transport::Channel};

use crate::support::{Backend, Principal, TestSuite, as_principal, on_both_backends, system_clock};

/// Who calls: `None` is a caller without a token.
fn principals() -> Vec<(&'static str, Option<Principal>)> {
    let staff = |user: &str, department: &str, roles: &[&str]| Some(Principal::staff(user, department, roles));
    let branch = |code: &str| {
        Some(Principal {
            user: format!("branch-{code}"),
            department: String::new(),
            branch: code.into(),
            roles: vec!["branch_system".into()],
            clearance: String::new(),
        })
    };
    let archivist = Principal { clearance: "top_secret".into(), ..Principal::staff("D7", "archives", &["archivist"]) };
    vec![
        ("anonymous", None),
        ("branch SH01", branch("SH01")),
        ("branch BJ02", branch("BJ02")),
        ("agent intake", staff("A1", "intake", &["agent"])),
        ("agent inspection", staff("A2", "inspection", &["agent"])),
        ("agent claims", staff("A3", "claims", &["agent"])),
        ("agent settlement", staff("A4", "settlement", &["agent"])),
        ("agent archives", staff("A5", "archives", &["agent"])),
        ("supervisor settlement", staff("S1", "settlement", &["supervisor"])),
        ("head of intake", staff("H1", "intake", &["department_head"])),
        ("general manager", staff("G1", "", &["general_manager"])),
        ("archivist top_secret", Some(archivist)),
        ("admin", staff("it-admin", "", &["admin"])),
        ("outsider external", staff("X1", "external", &["agent", "supervisor", "general_manager"])),
    ]
}

/// What an outsider (department `external`, 003 第20条) may call, whatever roles its token holds:
/// who it is, and asking for and reading a file under an approved request. Written here, not read
/// from the table, so a table that makes outsiders staff again fails.
const OUTSIDER_MAY_CALL: [&str; 5] = [
    "kefu.archives.v1.Archives/CreateAccessRequest",
    "kefu.archives.v1.Archives/GetAccessRequest",
    "kefu.archives.v1.Archives/ListAccessRequests",
    "kefu.archives.v1.Archives/ReadCaseFile",
    "kefu.gateway.v1.Tokens/GetCaller",
];

/// The principal as the gateway sees it, for asking the table.
fn as_gateway_sees(principal: &Principal) -> GatewayPrincipal {
    GatewayPrincipal {
        caller: Caller {
            user: principal.user.clone(),
            department: principal.department.clone(),
            branch: principal.branch.clone(),
            roles: principal.roles.clone(),
            clearance: principal.clearance.clone(),
        },
        kind: Kind::Token("tokens/test".into()),
        expires: None,
    }
}

/// Calls `path` with an empty request (every field at its default).
async fn call<T>(channel: T, path: &str, principal: Option<&Principal>) -> Result<(), Status>
where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<tonic::codegen::StdError>,
    T::ResponseBody: http_body::Body<Data = tonic::codegen::Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error: Into<tonic::codegen::StdError> + Send,
{
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.map_err(|error| Status::unavailable(error.into().to_string()))?;
    let path = http::uri::PathAndQuery::from_str(path).expect("a path");
    let codec = tonic_prost::ProstCodec::<(), ()>::default();
    let request = match principal {
        Some(principal) => as_principal((), principal.clone()),
        None => tonic::Request::new(()),
    };
    grpc.unary(request, path, codec).await.map(drop)
}

/// How the gateway answered, as the matrix prints it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    /// Past the gateway: the service answered.
    Through,
    /// `PERMISSION_DENIED` by the access table.
    Denied,
    Unauthenticated,
}

fn cell_of(result: &Result<(), Status>) -> Cell {
    match result {
        Err(status) if status.code() == Code::Unauthenticated => Cell::Unauthenticated,
        Err(status) if status.code() == Code::PermissionDenied && status.message().contains("access table") => {
            Cell::Denied
        }
        _ => Cell::Through,
    }
}

on_both_backends!(every_rpc_answers_every_principal_as_the_access_table_says);
async fn every_rpc_answers_every_principal_as_the_access_table_says(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let table = AccessTable::load(None).expect("the built-in table");
    let anonymous =
        Channel::from_shared(format!("http://{}", suite.config.gateway_addr)).expect("a URL").connect_lazy();
    let principals = principals();
    let methods = every_method();
    assert!(methods.len() > 100, "the contracts were read: {}", methods.len());

    let mut matrix: BTreeMap<String, Vec<Cell>> = BTreeMap::new();
    let mut mismatches = Vec::new();
    let mut counts = [0usize; 3];
    for method in &methods {
        let path = format!("/{method}");
        let mut row = Vec::new();
        for (label, principal) in &principals {
            let result = match principal {
                Some(principal) => call(suite.gateway.clone(), &path, Some(principal)).await,
                None => call(anonymous.clone(), &path, None).await,
            };
            let observed = cell_of(&result);
            let expected = match principal {
                None => Cell::Unauthenticated,
                Some(principal) if table.allows(&path, &as_gateway_sees(principal)) => Cell::Through,
                Some(_) => Cell::Denied,
            };
            if observed != expected {
                mismatches.push(format!("{method} as {label}: expected {expected:?}, got {result:?}"));
            }
            counts[observed as usize] += 1;
            row.push(observed);
        }
        matrix.insert(method.clone(), row);
    }

    // The matrix, printed: ✓ past the gateway, · denied by the access table, ? no token.
    println!("{:<58} {}", "method \\ principal", (1..=principals.len()).map(|n| format!("{n:>3}")).collect::<String>());
    for (method, row) in &matrix {
        let cells: String = row
            .iter()
            .map(|cell| match cell {
                Cell::Through => "  ✓",
                Cell::Denied => "  ·",
                Cell::Unauthenticated => "  ?",
            })
            .collect();
        println!("{method:<58} {cells}");
    }
    for (index, (label, _)) in principals.iter().enumerate() {
        println!("{:>3}: {label}", index + 1);
    }
    println!(
        "{} cells: {} through, {} denied, {} unauthenticated",
        counts.iter().sum::<usize>(),
        counts[0],
        counts[1],
        counts[2]
    );

    assert!(
        mismatches.is_empty(),
        "{} cells differ from the access table:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    let outsider = principals.iter().position(|(label, _)| *label == "outsider external").expect("an outsider");
    let outsider_through: Vec<&str> =
        matrix.iter().filter(|(_, row)| row[outsider] == Cell::Through).map(|(method, _)| method.as_str()).collect();
    assert_eq!(outsider_through, OUTSIDER_MAY_CALL, "an outsider is never staff");
    // The matrix says something: every principal is let through somewhere and denied elsewhere.
    for (index, (label, principal)) in principals.iter().enumerate() {
        let through = matrix.values().filter(|row| row[index] == Cell::Through).count();
        let denied = matrix.values().filter(|row| row[index] != Cell::Through).count();
        assert!(denied > 0, "{label} is denied nothing");
        assert_eq!(through > 0, principal.is_some(), "{label}: {through} methods let through");
    }
    suite.stop().await;
}

/// How a principal sees the customer on a complaint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sight {
    Whole,
    Masked,
    NotFound,
    Refused,
}

on_both_backends!(a_customers_name_and_phone_are_seen_by_the_service_center_the_branch_and_the_owner_only);
/// The personal-data row of the matrix: a cargo damage complaint of SH01 (owned by claims), read
/// through the gateway by every principal. Whole for the service center, SH01's system and claims;
/// masked for every other department and the managers; another branch's system finds nothing; an
/// outsider and an admin are refused. A search by the customer's phone finds the case only for
/// those who see the phone.
async fn a_customers_name_and_phone_are_seen_by_the_service_center_the_branch_and_the_owner_only(backend: Backend) {
    use kefu_proto::gateway::v1::{GetComplaintRequest, ListComplaintsRequest};

    use crate::support::{complaint, create};

    let suite = TestSuite::start(backend, system_clock()).await;
    let filed = suite
        .complaints()
        .create_complaint(create("pd-1", complaint("cargo_damage", "YD-PD-1")))
        .await
        .expect("filed")
        .into_inner();
    let expected = |label: &str| match label {
        "agent intake" | "head of intake" | "branch SH01" | "agent claims" => Sight::Whole,
        "branch BJ02" => Sight::NotFound,
        "anonymous" | "admin" | "outsider external" => Sight::Refused,
        _ => Sight::Masked,
    };
    let mut mismatches = Vec::new();
    let mut row = String::new();
    for (label, principal) in principals() {
        let Some(principal) = principal else {
            row.push_str("  ?");
            continue;
        };
        let request = as_principal(GetComplaintRequest { name: filed.name.clone() }, principal.clone());
        let sight = match suite.complaints().get_complaint(request).await {
            Ok(found) => {
                let contact = found.into_inner().contact.unwrap_or_default();
                match (contact.name.as_str(), contact.phone.as_str()) {
                    ("王先生", "13800000000") => Sight::Whole,
                    ("王**", "138****0000") => Sight::Masked,
                    other => panic!("{label}: a contact neither whole nor masked: {other:?}"),
                }
            }
            Err(status) if status.code() == Code::NotFound => Sight::NotFound,
            Err(status) if status.code() == Code::PermissionDenied => Sight::Refused,
            Err(status) => panic!("{label}: {status:?}"),
        };
        row.push_str(match sight {
            Sight::Whole => "  W",
            Sight::Masked => "  m",
            Sight::NotFound => "  -",
            Sight::Refused => "  ·",
        });
        if sight != expected(label) {
            mismatches.push(format!("{label}: expected {:?}, saw {sight:?}", expected(label)));
        }
        // By phone: found only where the phone is seen whole.
        if sight == Sight::Whole || sight == Sight::Masked {
            let by_phone =
                ListComplaintsRequest { filter: "contact.phone = \"13800000000\"".into(), ..Default::default() };
            let listed =
                suite.complaints().list_complaints(as_principal(by_phone, principal.clone())).await.expect("listed");
            let found = listed.into_inner().complaints.iter().any(|listed| listed.name == filed.name);
            if found != (sight == Sight::Whole) {
                mismatches.push(format!("{label}: a search by the phone found the case: {found}"));
            }
        }
    }
    println!("{:<58} {row}", "sees the customer (W whole, m masked)");
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    suite.stop().await;
}
