//! Who is calling, end to end through the gateway: refusals that say what to do, headers a caller
//! forges dropped, the bootstrap admin and the rule of delegation, tokens revoked on one gateway
//! replica refused by another within 10 seconds, expiry, staff single sign-on with keys the test
//! makes, and branch systems kept to their own branch.

use std::time::{Duration, Instant};

use kefu_gateway::RoutingPolicy;
use kefu_kit::{Shutdown, time::to_timestamp};
use kefu_proto::{
    claims::v1::{ListClaimsRequest, claims_client::ClaimsClient},
    gateway::v1::{
        CreateTokenRequest, GetCallerRequest, GetComplaintRequest, ListComplaintsRequest, ListTokensRequest,
        RevokeTokenRequest, Token, complaints_client::ComplaintsClient, tokens_client::TokensClient,
    },
    intake::v1::{
        self as intake_pb, CreateRequestRequest, GetComplaintSummaryRequest, GetComplaintTimelineRequest,
        intake_client::IntakeClient,
    },
    settlement::v1::{ReverseLedgerEntryRequest, settlement_client::SettlementClient},
};
use ring::signature::KeyPair;
use serde_json::json;
use tonic::{Code, Request, transport::Channel};

use crate::support::{
    BOOTSTRAP_TOKEN, Backend, Principal, TestSuite, as_branch_system, bearer, complaint, create, eventually,
    on_both_backends, system_clock, violated_fields,
};

fn raw(suite: &TestSuite) -> Channel {
    Channel::from_shared(format!("http://{}", suite.config.gateway_addr)).expect("a URL").connect_lazy()
}

fn with_secret<T>(message: T, secret: &str) -> Request<T> {
    let mut request = Request::new(message);
    bearer(&mut request, secret);
    request
}

fn token(subject: &str, department: &str, roles: &[&str]) -> Token {
    Token {
        subject: subject.into(),
        department: department.into(),
        roles: roles.iter().map(|role| role.to_string()).collect(),
        ..Default::default()
    }
}

async fn create_token(
    channel: &Channel,
    admin_secret: &str,
    request_id: &str,
    token: Token,
) -> Result<(Token, String), tonic::Status> {
    let request = CreateTokenRequest { request_id: request_id.into(), token: Some(token) };
    let created =
        TokensClient::new(channel.clone()).create_token(with_secret(request, admin_secret)).await?.into_inner();
    Ok((created.token.expect("a token"), created.secret))
}

on_both_backends!(a_caller_learns_who_it_is_and_what_the_access_table_lets_it_call);
/// `GetCaller`: what a console shows in its header and offers, from the gateway's own access table.
async fn a_caller_learns_who_it_is_and_what_the_access_table_lets_it_call(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let channel = raw(&suite);
    let (_, agent) = create_token(&channel, BOOTSTRAP_TOKEN, "c-agent", token("L3001", "claims", &["agent"]))
        .await
        .expect("a claims agent");
    let (_, supervisor) = create_token(&channel, BOOTSTRAP_TOKEN, "c-super", token("S2003", "claims", &["supervisor"]))
        .await
        .expect("a claims supervisor");
    let ask = |secret: String| {
        let channel = channel.clone();
        async move {
            TokensClient::new(channel)
                .get_caller(with_secret(GetCallerRequest {}, &secret))
                .await
                .map(|r| r.into_inner())
        }
    };
    let caller = ask(agent).await.expect("an agent may ask");
    assert_eq!((caller.subject.as_str(), caller.department.as_str()), ("L3001", "claims"));
    assert_eq!(caller.roles, vec!["agent".to_owned()]);
    assert!(caller.expire_time.is_some(), "a kefu token says when it expires");
    let table = kefu_gateway::AccessTable::load(None).expect("the built-in table");
    assert!(caller.methods.windows(2).all(|pair| pair[0] < pair[1]), "sorted");
    assert!(caller.methods.iter().all(|method| table.methods().any(|named| named == method)));
    assert!(caller.methods.contains(&"kefu.claims.v1.Claims/MakeOffer".to_owned()));
    assert!(caller.methods.contains(&"kefu.gateway.v1.Tokens/GetCaller".to_owned()));
    for not_an_agent_s in ["kefu.claims.v1.Claims/ApproveClaim", "kefu.gateway.v1.Tokens/CreateToken"] {
        assert!(!caller.methods.contains(&not_an_agent_s.to_owned()), "{not_an_agent_s}");
    }
    let caller = ask(supervisor).await.expect("a supervisor may ask");
    assert!(caller.methods.contains(&"kefu.claims.v1.Claims/ApproveClaim".to_owned()));
    let bootstrap = ask(BOOTSTRAP_TOKEN.to_owned()).await.expect("the bootstrap admin may ask");
    assert_eq!(bootstrap.subject, "bootstrap");
    assert!(bootstrap.methods.contains(&"kefu.gateway.v1.Tokens/CreateToken".to_owned()));
    let refused = ask("kefu_nope_0000".to_owned()).await.expect_err("a forged token");
    assert_eq!(refused.code(), Code::Unauthenticated);
    suite.stop().await;
}

on_both_backends!(a_call_without_a_valid_token_is_refused_and_told_what_to_do);
async fn a_call_without_a_valid_token_is_refused_and_told_what_to_do(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut complaints = ComplaintsClient::new(raw(&suite));
    let list = || ListComplaintsRequest::default();

    let none = complaints.list_complaints(list()).await.expect_err("no token");
    assert_eq!(none.code(), Code::Unauthenticated);
    assert!(none.message().contains("authorization: Bearer"), "{}", none.message());
    let mut basic = Request::new(list());
    basic.metadata_mut().insert("authorization", "Basic QTEwMjQ6cGFzc3dvcmQ=".parse().expect("ascii"));
    assert_eq!(complaints.list_complaints(basic).await.expect_err("not bearer").code(), Code::Unauthenticated);
    let forged = "kefu_0123456789abcdef_00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    let unknown = complaints.list_complaints(with_secret(list(), forged)).await.expect_err("unknown");
    assert_eq!(unknown.code(), Code::Unauthenticated);
    assert!(
        unknown.message().contains("unknown or revoked") && !unknown.message().contains(forged),
        "{}",
        unknown.message()
    );
    let garbage = complaints.list_complaints(with_secret(list(), "let-me-in")).await.expect_err("garbage");
    assert_eq!(garbage.code(), Code::Unauthenticated);
    let jwt = complaints.list_complaints(with_secret(list(), "aaa.bbb.ccc")).await.expect_err("no single sign-on");
    assert!(jwt.message().contains("KEFU_OIDC_ISSUER"), "{}", jwt.message());

    // Headers a caller sends about itself are dropped: an agent claiming to be a supervisor is an agent.
    let agent = suite.gateway.token(&Principal::staff("A3", "settlement", &["agent"])).await;
    let mut claims_more = with_secret(
        ReverseLedgerEntryRequest {
            name: "ledgerEntries/1".into(),
            reason: "forged".into(),
            request_id: String::new(),
        },
        &agent,
    );
    for (key, value) in [("x-kefu-user", "S1"), ("x-kefu-roles", "supervisor"), ("x-kefu-department", "settlement")] {
        claims_more.metadata_mut().insert(key, value.parse().expect("ascii"));
    }
    let refused =
        SettlementClient::new(raw(&suite)).reverse_ledger_entry(claims_more).await.expect_err("still an agent");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("A3 (agent)"), "the table saw the token's identity: {}", refused.message());
    let intake_agent = suite.gateway.token(&Principal::staff("A1024", "intake", &["agent"])).await;
    let mut filed = with_secret(create("id-forged", complaint("late_delivery", "YD-ID-1")), &intake_agent);
    filed.metadata_mut().insert("x-kefu-user", "somebody-else".parse().expect("ascii"));
    let filed = complaints.create_complaint(filed).await.expect("filed").into_inner();
    assert_eq!(filed.received_by, "A1024", "who took it is the token's subject");

    // Health and reflection need no token.
    let health = tonic_health::pb::health_client::HealthClient::new(raw(&suite))
        .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
        .await;
    assert!(health.is_ok(), "{health:?}");
    suite.stop().await;
}

on_both_backends!(admins_give_no_more_than_they_hold_and_a_revoked_token_dies_on_every_replica);
async fn admins_give_no_more_than_they_hold_and_a_revoked_token_dies_on_every_replica(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let a = raw(&suite);
    // A second gateway replica on the same database.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a port");
    let b_addr = listener.local_addr().expect("bound");
    let (stop_b, shutdown_b) = Shutdown::new();
    let replica = tokio::spawn({
        let config = suite.config.clone();
        async move { kefu_gateway::run(&config, RoutingPolicy::load(None).expect("policy"), listener, shutdown_b).await }
    });
    let b = Channel::from_shared(format!("http://{b_addr}")).expect("a URL").connect_lazy();

    // The bootstrap admin makes tokens, and nothing else.
    let bootstrap_files = ComplaintsClient::new(a.clone())
        .create_complaint(with_secret(create("boot-1", complaint("late_delivery", "YD-BOOT")), BOOTSTRAP_TOKEN))
        .await
        .expect_err("the bootstrap admin files no complaint");
    assert_eq!(bootstrap_files.code(), Code::PermissionDenied);
    let claims_admin = Token { clearance: "confidential".into(), ..token("claims-admin", "claims", &["admin"]) };
    let (admin, admin_secret) = create_token(&a, BOOTSTRAP_TOKEN, "t-admin", claims_admin).await.expect("an admin");
    assert_eq!((admin.creator.as_str(), admin.roles.as_slice()), ("bootstrap", ["admin".to_owned()].as_slice()));
    let again = create_token(&a, BOOTSTRAP_TOKEN, "t-admin", token("claims-admin", "claims", &["admin"])).await;
    let again = again.expect_err("the same request_id");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&admin.name), "names the token made the first time: {}", again.message());

    // An admin of claims gives tokens of claims, up to its own clearance.
    let (agent, agent_secret) =
        create_token(&a, &admin_secret, "t-agent", token("A3", "claims", &["agent"])).await.expect("a claims agent");
    assert_eq!(agent.creator, "claims-admin");
    let other = create_token(&a, &admin_secret, "t-other", token("A1", "intake", &["agent"])).await;
    let other = other.expect_err("another department");
    assert_eq!(other.code(), Code::PermissionDenied);
    assert!(other.message().contains("department claims only"), "{}", other.message());
    let secret = Token { clearance: "top_secret".into(), ..token("A4", "claims", &["agent"]) };
    let secret = create_token(&a, &admin_secret, "t-secret", secret).await.expect_err("above its clearance");
    assert!(secret.message().contains("above your own"), "{}", secret.message());
    let year = Token {
        expire_time: Some(to_timestamp(chrono::Utc::now() + chrono::Duration::days(400))),
        ..token("A5", "claims", &["agent"])
    };
    let year = create_token(&a, &admin_secret, "t-year", year).await.expect_err("longer than a year");
    assert_eq!(violated_fields(&year), ["token.expire_time"]);
    // The claims admin lists the claims tokens (itself among them), a page at a time; not the
    // bootstrap's others.
    create_token(&a, BOOTSTRAP_TOKEN, "t-intake", token("A1", "intake", &["agent"])).await.expect("an intake agent");
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = TokensClient::new(a.clone())
            .list_tokens(with_secret(ListTokensRequest { page_size: 1, page_token }, &admin_secret))
            .await
            .expect("listed")
            .into_inner();
        assert!(page.tokens.len() <= 1);
        listed.extend(page.tokens.into_iter().map(|token| token.subject));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(listed, ["A3", "claims-admin"], "newest first, its department only");
    let by_agent = TokensClient::new(a.clone())
        .list_tokens(with_secret(ListTokensRequest::default(), &agent_secret))
        .await
        .expect_err("an agent manages no tokens");
    assert_eq!(by_agent.code(), Code::PermissionDenied);

    // The agent's token works on both replicas (replica B learns of it within its refresh).
    let list_claims = |channel: &Channel| {
        let mut claims = ClaimsClient::new(channel.clone());
        let secret = agent_secret.clone();
        async move { claims.list_claims(with_secret(ListClaimsRequest::default(), &secret)).await }
    };
    list_claims(&a).await.expect("on replica A at once");
    eventually("replica B accepts the new token", || async { list_claims(&b).await.ok() }).await;

    // Revoked on A: refused on A at once and on B within 10 seconds.
    let revoked = TokensClient::new(a.clone())
        .revoke_token(with_secret(RevokeTokenRequest { name: agent.name.clone() }, &admin_secret))
        .await
        .expect("revoked")
        .into_inner();
    assert!(revoked.revoke_time.is_some());
    let started = Instant::now();
    assert_eq!(list_claims(&a).await.expect_err("revoked").code(), Code::Unauthenticated);
    eventually("replica B refuses the revoked token", || async {
        (list_claims(&b).await.err()?.code() == Code::Unauthenticated).then_some(())
    })
    .await;
    assert!(started.elapsed() < Duration::from_secs(10), "revocation took {:?} to reach replica B", started.elapsed());

    // A token past its expiry is refused.
    let soon = Token {
        expire_time: Some(to_timestamp(chrono::Utc::now() + chrono::Duration::seconds(2))),
        ..token("A6", "claims", &["agent"])
    };
    let (_, soon_secret) = create_token(&a, &admin_secret, "t-soon", soon).await.expect("a short token");
    ClaimsClient::new(a.clone())
        .list_claims(with_secret(ListClaimsRequest::default(), &soon_secret))
        .await
        .expect("valid");
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let expired = ClaimsClient::new(a.clone())
        .list_claims(with_secret(ListClaimsRequest::default(), &soon_secret))
        .await
        .expect_err("expired");
    assert!(expired.message().contains("expired"), "{}", expired.message());

    stop_b.trigger();
    replica.await.expect("joined").expect("replica B stopped cleanly");
    suite.stop().await;
}

on_both_backends!(an_admin_gives_only_its_own_scope_and_what_it_made_falls_with_it);
/// Issue 41: a limited admin minted unlimited powers. An admin of claims gives claims' own roles
/// only — no company-wide role, no admin, no branch system; an admin bound to SH01 gives SH01's
/// branch system only; only a company-wide admin makes admins. Revoking an admin suspends every
/// token it made; another admin's request id is a fresh id, and names nothing.
async fn an_admin_gives_only_its_own_scope_and_what_it_made_falls_with_it(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let a = raw(&suite);
    let (claims_admin, claims_secret) =
        create_token(&a, BOOTSTRAP_TOKEN, "scope-admin", token("claims-admin", "claims", &["admin"]))
            .await
            .expect("a claims admin");
    let mut sh01 = token("sh01-admin", "", &["admin"]);
    sh01.branch = "SH01".into();
    let (_, sh01_secret) = create_token(&a, BOOTSTRAP_TOKEN, "scope-sh01", sh01).await.expect("an SH01 admin");

    let refused = |what: &'static str, by: &'static str, result: Result<(Token, String), tonic::Status>| {
        let status = result.expect_err(what);
        assert_eq!(status.code(), Code::PermissionDenied, "{by}: {what}: {status:?}");
    };
    for role in ["general_manager", "business_manager", "admin"] {
        refused(role, "claims admin", create_token(&a, &claims_secret, role, token("X1", "claims", &[role])).await);
    }
    refused(
        "settlement supervisor",
        "claims admin",
        create_token(&a, &claims_secret, "s-sup", token("X2", "settlement", &["supervisor"])).await,
    );
    let mut other_branch = token("X3", "claims", &["branch_system"]);
    other_branch.branch = "BJ02".into();
    refused("BJ02 system", "claims admin", create_token(&a, &claims_secret, "bj02", other_branch).await);
    let mut sh01_supervisor = token("X4", "claims", &["supervisor"]);
    sh01_supervisor.branch = "SH01".into();
    refused("claims supervisor", "SH01 admin", create_token(&a, &sh01_secret, "sup", sh01_supervisor).await);
    let mut sh01_system = token("X5", "", &["branch_system"]);
    sh01_system.branch = "SH01".into();
    create_token(&a, &sh01_secret, "sys", sh01_system).await.expect("the SH01 admin gives SH01's system");
    let (_, supervisor_secret) =
        create_token(&a, &claims_secret, "c-sup", token("S7", "claims", &["supervisor"])).await.expect("its own");
    let (_, gm_secret) = create_token(&a, BOOTSTRAP_TOKEN, "gm", token("GM1", "", &["general_manager"]))
        .await
        .expect("a company-wide admin gives company-wide roles");

    // Another admin's request id is a fresh one: no token of the other admin is named.
    let (reused, _) = create_token(&a, &claims_secret, "gm", token("S8", "claims", &["agent"]))
        .await
        .expect("the bootstrap's request id is fresh for the claims admin");
    assert_eq!(reused.subject, "S8");
    let again = create_token(&a, &claims_secret, "gm", token("S8", "claims", &["agent"])).await.expect_err("its own");
    assert_eq!(again.code(), Code::AlreadyExists);
    assert!(again.message().contains(&reused.name), "{}", again.message());

    // Revoking the claims admin suspends what it made, at once on this replica; not the others.
    let list_claims = |secret: String| {
        let mut claims = ClaimsClient::new(a.clone());
        async move { claims.list_claims(with_secret(ListClaimsRequest::default(), &secret)).await }
    };
    list_claims(supervisor_secret.clone()).await.expect("the supervisor works");
    TokensClient::new(a.clone())
        .revoke_token(with_secret(RevokeTokenRequest { name: claims_admin.name.clone() }, BOOTSTRAP_TOKEN))
        .await
        .expect("revoked");
    let suspended = list_claims(supervisor_secret).await.expect_err("suspended with its maker");
    assert_eq!(suspended.code(), Code::Unauthenticated, "{suspended:?}");
    list_claims(gm_secret).await.expect("the bootstrap's tokens stand");
    suite.stop().await;
}

/// Base64url without padding, as JWKs and JWTs write keys.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, byte)| n | (u32::from(*byte) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// An Ed25519 key pair made now: its PKCS#8 document and its JWK.
fn key_pair(kid: &str) -> (Vec<u8>, serde_json::Value) {
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new()).expect("a key");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("readable");
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid,
                     "x": base64url(pair.public_key().as_ref())});
    (pkcs8.as_ref().to_vec(), jwk)
}

fn jwt(pkcs8: &[u8], kid: &str, claims: &serde_json::Value) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(&header, claims, &jsonwebtoken::EncodingKey::from_ed_der(pkcs8)).expect("signed")
}

on_both_backends!(staff_sign_in_with_the_companys_single_sign_on);
async fn staff_sign_in_with_the_companys_single_sign_on(backend: Backend) {
    let (pkcs8, jwk) = key_pair("2026-11");
    let (stranger, _) = key_pair("2026-11");
    let mut keys_file = std::path::PathBuf::new();
    let suite = TestSuite::start_configured(backend, system_clock(), |config, dir| {
        let keys = dir.join("jwks.json");
        std::fs::write(&keys, json!({"keys": [jwk.clone()]}).to_string()).expect("write the keys");
        keys_file = keys.clone();
        config.oidc = Some(kefu_kit::config::OidcConfig {
            issuer: "https://sso.example.com".into(),
            audience: "kefu".into(),
            jwks_file: keys,
            subject_claim: "preferred_username".into(),
            department_claim: "department".into(),
            branch_claim: "branch".into(),
            roles_claim: "groups".into(),
            clearance_claim: "clearance".into(),
        });
    })
    .await;
    let now = chrono::Utc::now().timestamp();
    let claims = |changes: serde_json::Value| {
        let mut claims = json!({"iss": "https://sso.example.com", "aud": "kefu", "sub": "u-93",
            "preferred_username": "C2001", "department": "claims", "groups": ["agent", "wizard"],
            "iat": now, "nbf": now - 5, "exp": now + 600});
        for (key, value) in changes.as_object().expect("an object") {
            if value.is_null() {
                claims.as_object_mut().expect("an object").remove(key);
            } else {
                claims[key] = value.clone();
            }
        }
        claims
    };
    let mut claims_api = ClaimsClient::new(raw(&suite));
    let list = |token: &str| with_secret(ListClaimsRequest::default(), token);

    let good = jwt(&pkcs8, "2026-11", &claims(json!({})));
    claims_api.list_claims(list(&good)).await.expect("a claims agent signed in");
    let refusals = [
        (jwt(&pkcs8, "2026-11", &claims(json!({"aud": "payroll"}))), "another audience"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"iss": "https://evil.example.com"}))), "another issuer"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"exp": now - 600}))), "expired"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"nbf": now + 600}))), "not valid yet"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"exp": null}))), "exp"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"exp": "tomorrow"}))), "exp"),
        (jwt(&stranger, "2026-11", &claims(json!({}))), "bad signature"),
        (jwt(&pkcs8, "2025-01", &claims(json!({}))), "does not hold"),
        // The rules of a kefu token hold for a single sign-on identity too.
        (jwt(&pkcs8, "2026-11", &claims(json!({"groups": ["admin", "agent"]}))), "admin is given alone"),
        (
            jwt(&pkcs8, "2026-11", &claims(json!({"groups": ["branch_system", "supervisor"], "branch": "SH01"}))),
            "branch_system is given alone",
        ),
        (jwt(&pkcs8, "2026-11", &claims(json!({"groups": ["branch_system"]}))), "the branch it acts for"),
        (jwt(&pkcs8, "2026-11", &claims(json!({"exp": 32_503_680_000_i64}))), "more than a year away"),
    ];
    for (token, why) in refusals {
        let refused = claims_api.list_claims(list(&token)).await.expect_err(why);
        assert_eq!(refused.code(), Code::Unauthenticated, "{why}");
        assert!(refused.message().contains(why), "{why}: {}", refused.message());
    }
    // A token signed with a shared secret is never accepted, whatever its key.
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims(json!({})),
        &jsonwebtoken::EncodingKey::from_secret(b"the public key, abused as a secret"),
    )
    .expect("signed");
    assert!(claims_api.list_claims(list(&hs)).await.expect_err("HS256").message().contains("not accepted"));
    // Roles come from the claims: an agent of claims may not file complaints for the service center.
    let filed = ComplaintsClient::new(raw(&suite))
        .create_complaint(with_secret(create("sso-1", complaint("late_delivery", "YD-SSO")), &good))
        .await
        .expect_err("not the service center");
    assert_eq!(filed.code(), Code::PermissionDenied);
    assert!(filed.message().contains("C2001 (agent)"), "{}", filed.message());
    let center = jwt(&pkcs8, "2026-11", &claims(json!({"department": "intake", "preferred_username": "A2002"})));
    let filed = ComplaintsClient::new(raw(&suite))
        .create_complaint(with_secret(create("sso-2", complaint("late_delivery", "YD-SSO")), &center))
        .await
        .expect("filed by the service center")
        .into_inner();
    assert_eq!(filed.received_by, "A2002");

    // The issuer rotates its keys: the new key's tokens are accepted once the file changes.
    let (rotated, rotated_jwk) = key_pair("2026-12");
    let fresh = jwt(&rotated, "2026-12", &claims(json!({})));
    assert!(claims_api.list_claims(list(&fresh)).await.is_err(), "not before the rotation");
    std::fs::write(&keys_file, json!({"keys": [jwk, rotated_jwk]}).to_string()).expect("rotate the keys");
    eventually("the gateway rereads the issuer's keys", || {
        let mut claims_api = claims_api.clone();
        let request = list(&fresh);
        async move { claims_api.list_claims(request).await.ok() }
    })
    .await;
    suite.stop().await;
}

on_both_backends!(a_branch_system_files_and_sees_its_own_branch_only);
async fn a_branch_system_files_and_sees_its_own_branch_only(backend: Backend) {
    let suite = TestSuite::start(backend, system_clock()).await;
    let mut complaints = suite.complaints();
    let mut intake = IntakeClient::new(suite.gateway.clone());
    let ours = |id: &str, branch: &str| {
        let mut complaint = complaint("late_delivery", &format!("YD-{id}"));
        complaint.branch = branch.into();
        create(id, complaint)
    };

    // SH01's system files for SH01 (an empty branch is its own), not for BJ02.
    let own = complaints.create_complaint(as_branch_system(ours("b-1", ""), "SH01")).await.expect("own").into_inner();
    assert_eq!(own.branch, "SH01");
    let refused = complaints.create_complaint(as_branch_system(ours("b-2", "BJ02"), "SH01")).await.expect_err("BJ02's");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert!(refused.message().contains("own branch (SH01)"), "{}", refused.message());
    let inquiry = CreateRequestRequest {
        request_id: "b-3".into(),
        request: Some(intake_pb::Complaint {
            kind: intake_pb::Kind::Inquiry as i32,
            waybill_number: "YD-B3".into(),
            channel: intake_pb::Channel::Online as i32,
            description: "where is my parcel".into(),
            branch: "BJ02".into(),
            contact: Some(intake_pb::Contact { name: "李女士".into(), phone: "13900000002".into() }),
            ..Default::default()
        }),
    };
    let refused = intake.create_request(as_branch_system(inquiry, "SH01")).await.expect_err("an inquiry for BJ02");
    assert_eq!(refused.code(), Code::PermissionDenied);

    // The service center files one for BJ02, with the customer's name and phone.
    let mut theirs = complaint("late_delivery", "YD-BJ");
    theirs.branch = "BJ02".into();
    theirs.contact = Some(kefu_proto::gateway::v1::Contact { name: "赵先生".into(), phone: "13700000003".into() });
    let theirs = complaints.create_complaint(create("b-4", theirs)).await.expect("BJ02's").into_inner();

    // Reusing BJ02's request_id does not show SH01 BJ02's complaint.
    let reused = complaints.create_complaint(as_branch_system(ours("b-4", ""), "SH01")).await;
    let reused = reused.expect_err("another branch's request_id");
    assert_eq!(reused.code(), Code::AlreadyExists);
    assert!(
        !reused.message().contains(&theirs.name) && !reused.message().contains("13700000003"),
        "{}",
        reused.message()
    );

    // SH01 sees its own and nothing of BJ02's: not in lists, not by name, not in a timeline.
    let listed = complaints
        .list_complaints(as_branch_system(ListComplaintsRequest::default(), "SH01"))
        .await
        .expect("listed")
        .into_inner();
    assert_eq!(listed.complaints.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), [own.name.as_str()]);
    let filtered = ListComplaintsRequest { filter: "branch = BJ02".into(), ..Default::default() };
    let filtered = complaints.list_complaints(as_branch_system(filtered, "SH01")).await.expect("listed").into_inner();
    assert!(filtered.complaints.is_empty(), "a filter does not widen the view");
    let hidden =
        complaints.get_complaint(as_branch_system(GetComplaintRequest { name: theirs.name.clone() }, "SH01")).await;
    let hidden = hidden.expect_err("BJ02's complaint");
    let missing = complaints
        .get_complaint(as_branch_system(GetComplaintRequest { name: "complaints/20261122-7K3M9Q".into() }, "SH01"))
        .await
        .expect_err("no such complaint");
    assert_eq!((hidden.code(), missing.code()), (Code::NotFound, Code::NotFound), "answered alike");
    assert!(!hidden.message().contains("13700000003") && !hidden.message().contains("赵"), "{}", hidden.message());
    let timeline = intake
        .get_complaint_timeline(as_branch_system(GetComplaintTimelineRequest { name: theirs.name.clone() }, "SH01"))
        .await
        .expect_err("BJ02's timeline");
    assert_eq!(timeline.code(), Code::NotFound);
    let via_intake = intake
        .list_complaints(as_branch_system(intake_pb::ListComplaintsRequest::default(), "SH01"))
        .await
        .expect("listed")
        .into_inner();
    let text = format!("{via_intake:?}");
    assert!(!text.contains("13700000003") && !text.contains("赵先生"), "no personal data of BJ02's customers");
    // BJ02's own system does see it; the service center sees both.
    let theirs_seen =
        complaints.get_complaint(as_branch_system(GetComplaintRequest { name: theirs.name.clone() }, "BJ02")).await;
    assert_eq!(theirs_seen.expect("BJ02 sees its own").into_inner().name, theirs.name);
    let all = complaints.list_complaints(ListComplaintsRequest::default()).await.expect("listed").into_inner();
    assert_eq!(all.complaints.len(), 2);
    // Reports across branches are not for branch systems.
    let summary = GetComplaintSummaryRequest { week: "2026-11-23".into() };
    let summary = intake.get_complaint_summary(as_branch_system(summary, "SH01")).await.expect_err("a report");
    assert_eq!(summary.code(), Code::PermissionDenied);
    suite.stop().await;
}
