//! The real `kefu` binary as separate processes, one per service, as Kubernetes runs them: the
//! handoff across processes, `kill -9` at any moment, restart, and start-up refusing a bad policy.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use kefu_proto::{
    events::v1::{Event, event::Payload},
    gateway::v1::{GetComplaintRequest, ListComplaintsRequest, State, complaints_client::ComplaintsClient},
    inspection::v1::{ListCasesRequest, inspection_client::InspectionClient},
};
use prost::Message;
use sea_orm::{ConnectionTrait, Database, Statement};
use tonic::transport::Channel;

use crate::support::{
    BOOTSTRAP_TOKEN, Backend, Gateway, INTERNAL_KEY, Principal, TestDatabase, TestSuite, TokenChannel, complaint,
    create, delivered_everything, eventually, free_port, free_ports, on_both_backends, test_config,
};

const TARGETS: [&str; 7] = ["gateway", "intake", "inspection", "claims", "settlement", "archives", "console"];

/// Free loopback ports for every target, and the environment that tells each process of the others.
pub(crate) struct Cluster {
    dir: PathBuf,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) ports: HashMap<&'static str, u16>,
    children: HashMap<&'static str, Child>,
}

impl Cluster {
    pub(crate) fn new(dir: &Path, database: Option<&TestDatabase>) -> Cluster {
        let mut env = vec![
            ("KEFU_DATA_DIR".to_owned(), dir.join("data").display().to_string()),
            ("KEFU_LOG".into(), "info".into()),
            ("KEFU_INTERNAL_KEY".into(), INTERNAL_KEY.into()),
            ("KEFU_BOOTSTRAP_TOKEN".into(), BOOTSTRAP_TOKEN.into()),
        ];
        let mut ports = HashMap::new();
        for (target, port) in TARGETS.into_iter().zip(free_ports(TARGETS.len())) {
            ports.insert(target, port);
            env.push((format!("KEFU_{}_ADDR", target.to_uppercase()), format!("127.0.0.1:{port}")));
        }
        if let Some(database) = database {
            env.push(("KEFU_DATABASE_URL".into(), database.url.clone()));
        }
        Cluster { dir: dir.to_owned(), env, ports, children: HashMap::new() }
    }

    fn start(&mut self, target: &'static str) {
        self.start_as(target, target, &[]);
    }

    /// Starts `target` under the name `name`, with `extra` environment on top of the cluster's.
    pub(crate) fn start_as(&mut self, name: &'static str, target: &'static str, extra: &[(String, String)]) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.log")))
            .expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["serve", target])
            .envs(self.env.iter().chain(extra).map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kefu serve");
        self.children.insert(name, child);
    }

    /// Starts the whole suite as one process (`kefu up`), named `up`, with `extra` environment.
    pub(crate) fn up(&mut self, extra: &[(&str, &str)]) {
        let log = std::fs::File::create(self.dir.join("up.log")).expect("a log file");
        let child = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .arg("up")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start kefu up");
        self.children.insert("up", child);
    }

    /// Sends `signal` (`TERM`, `INT`) to the process named `name`.
    pub(crate) fn signal(&self, name: &str, signal: &str) {
        let pid = self.children[name].id().to_string();
        let sent = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("kill");
        assert!(sent.success(), "kill -{signal} {pid}");
    }

    /// Waits for the process named `name` to exit, at most `limit`.
    pub(crate) async fn exit_of(&mut self, name: &str, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.children.remove(name).expect("a process of that name");
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("its status") {
                return status;
            }
            if tokio::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{name} did not exit within {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no flush, no goodbye.
    fn kill_9(&mut self, target: &str) {
        if let Some(mut child) = self.children.remove(target) {
            child.kill().expect("kill -9");
            child.wait().expect("reaped");
        }
    }

    pub(crate) fn gateway(&self) -> Gateway {
        TokenChannel::new(
            Channel::from_shared(format!("http://127.0.0.1:{}", self.ports["gateway"])).expect("a URL").connect_lazy(),
        )
    }

    pub(crate) fn log(&self, target: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{target}.log"))).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for (_, mut child) in self.children.drain() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

async fn state_of(client: &ComplaintsClient<Gateway>, name: &str) -> Option<State> {
    let complaint = client.clone().get_complaint(GetComplaintRequest { name: name.into() }).await.ok()?.into_inner();
    Some(complaint.state())
}

/// Files `complaint` once the cluster answers, and waits until its owner holds it: the complaint's
/// name and the owner's record name.
async fn file_with_owner(
    complaints: &ComplaintsClient<Gateway>,
    request_id: &str,
    complaint: kefu_proto::gateway::v1::Complaint,
) -> (String, String) {
    let created = eventually("the gateway, intake and the owner answer", || {
        let mut complaints = complaints.clone();
        let request = create(request_id, complaint.clone());
        async move { complaints.create_complaint(request).await.ok() }
    })
    .await
    .into_inner();
    let owner_reference = eventually("the owner accepts the complaint", || {
        let mut complaints = complaints.clone();
        let name = created.name.clone();
        async move {
            let complaint = complaints.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (!complaint.owner_reference.is_empty()).then_some(complaint.owner_reference)
        }
    })
    .await;
    (created.name, owner_reference)
}

on_both_backends!(a_handoff_survives_kill_9_and_completes_across_processes);
async fn a_handoff_survives_kill_9_and_completes_across_processes(backend: Backend) {
    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    // The owner is down: complaints are acknowledged and their handoff waits in intake's outbox.
    cluster.start("intake");
    cluster.start("gateway");
    let client = ComplaintsClient::new(cluster.gateway());
    let mut acknowledged = Vec::new();
    // The first complaint comes with the caller's trace context; its handoff must carry it.
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traced = create("traced", complaint("late_delivery", "YD0"));
    let traced = eventually("the gateway and intake answer", || {
        let mut client = client.clone();
        let mut request = tonic::Request::new(traced.clone());
        request
            .metadata_mut()
            .insert("traceparent", format!("00-{trace_id}-00f067aa0ba902b7-01").parse().expect("ascii"));
        async move { client.create_complaint(request).await.ok() }
    })
    .await
    .into_inner();
    acknowledged.push(traced.name.clone());
    let pending = pending_events(dir.path(), database.as_ref()).await;
    let handoff = pending
        .iter()
        .find(|event| match &event.payload {
            Some(Payload::CaseRouted(routed)) => routed.complaint.as_ref().is_some_and(|c| c.complaint == traced.name),
            _ => false,
        })
        .expect("the handoff waits in intake's outbox while inspection is down");
    assert_eq!(handoff.traceparent.get(3..35), Some(trace_id), "the event carries the caller's trace");
    assert_eq!(handoff.caller.as_ref().map(|caller| caller.user.as_str()), Some("agent-intake"));
    for i in 0..10 {
        let created = eventually("the gateway and intake answer", || {
            let mut client = client.clone();
            async move {
                client.create_complaint(create(&format!("first-{i}"), complaint("late_delivery", "YD1"))).await.ok()
            }
        })
        .await
        .into_inner();
        acknowledged.push(created.name);
    }
    for name in &acknowledged {
        assert_eq!(state_of(&client, name).await, Some(State::Routed), "inspection is down, so {name} waits");
    }

    // kill -9 while handoffs are pending; then a burst of complaints with intake killed mid-way.
    cluster.kill_9("intake");
    cluster.start("intake");
    let burst = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..2000 {
                match client.clone().create_complaint(create(&format!("burst-{i}"), complaint("attitude", "YD2"))).await
                {
                    Ok(created) => names.push(created.into_inner().name),
                    Err(_) if !names.is_empty() => break,
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            names
        })
    };
    eventually("the burst is under way", || async { (cluster_log_has_registered(&cluster)).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.kill_9("intake");
    let burst_acknowledged = burst.await.expect("burst");
    assert!(!burst_acknowledged.is_empty(), "some complaints were acknowledged before the kill");
    acknowledged.extend(burst_acknowledged);

    // Restart intake, bring up the owner: every acknowledged complaint is there and reaches it.
    cluster.start("intake");
    cluster.start("inspection");
    for name in &acknowledged {
        eventually(&format!("{name} reaches inspection"), || async {
            (state_of(&client, name).await == Some(State::Accepted)).then_some(())
        })
        .await;
    }
    // A complaint committed but not acknowledged before the kill may still be on its way (its row
    // leased by the killed process until the lease runs out): count once intake has sent everything.
    delivered_everything(&test_config(dir.path(), database.as_ref()), "intake").await;
    let mut inspection = InspectionClient::new(cluster.gateway());
    let mut held = 0;
    let mut page_token = String::new();
    loop {
        let page = inspection
            .list_cases(ListCasesRequest { page_size: 500, page_token, ..Default::default() })
            .await
            .expect("listed")
            .into_inner();
        held += page.cases.len();
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let registered = {
        let mut total = 0;
        let mut page_token = String::new();
        loop {
            let page = client
                .clone()
                .list_complaints(ListComplaintsRequest { page_size: 500, page_token, filter: String::new() })
                .await
                .expect("listed")
                .into_inner();
            total += page.complaints.len();
            if page.next_page_token.is_empty() {
                break total;
            }
            page_token = page.next_page_token;
        }
    };
    assert!(registered >= acknowledged.len(), "nothing acknowledged was lost");
    assert_eq!(held, registered, "inspection holds each complaint once: no loss, no duplicate");
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}

/// The events waiting in intake's outbox, read from its own database.
async fn pending_events(dir: &Path, database: Option<&TestDatabase>) -> Vec<Event> {
    let (url, table) = match database {
        Some(database) => (database.url.clone(), "intake.outbox"),
        None => (format!("sqlite://{}?mode=ro", dir.join("data").join("intake.db").display()), "outbox"),
    };
    let db = Database::connect(url).await.expect("intake's database");
    let backend = db.get_database_backend();
    let rows = db
        .query_all(Statement::from_string(backend, format!("SELECT payload FROM {table}")))
        .await
        .expect("outbox rows");
    let events = rows
        .iter()
        .map(|row| Event::decode(row.try_get::<Vec<u8>>("", "payload").expect("payload").as_slice()).expect("an event"))
        .collect();
    let _ = db.close().await;
    events
}

fn cluster_log_has_registered(cluster: &Cluster) -> bool {
    cluster.log("intake").matches("case registered").count() > 15
}

#[tokio::test]
async fn kefu_migrate_creates_every_service_s_tables() {
    use sea_orm::{ConnectionTrait, Statement};
    let dir = tempfile::tempdir().expect("a directory");
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("migrate")
        .env("KEFU_DATA_DIR", dir.path())
        .env_remove("KEFU_DATABASE_URL")
        .output()
        .expect("run kefu");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for (service, table) in [
        ("intake", "complaints"),
        ("inspection", "inspection_cases"),
        ("claims", "claims"),
        ("settlement", "settlement_waybills"),
        ("archives", "archive_case_files"),
        ("archives", "archive_audit"),
    ] {
        let file = dir.path().join(format!("{service}.db"));
        let db = sea_orm::Database::connect(format!("sqlite://{}?mode=ro", file.display())).await.expect("open");
        let found = db
            .query_one(Statement::from_string(
                db.get_database_backend(),
                format!("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{table}'"),
            ))
            .await
            .expect("query");
        assert!(found.is_some(), "kefu migrate made no table {table} for {service}");
    }
}

#[test]
fn a_broken_routing_policy_stops_start_up_naming_the_line() {
    let dir = tempfile::tempdir().expect("a directory");
    let policy = dir.path().join("policy.txt");
    std::fs::write(&policy, "# owners\nattitude inspection staff 72h\nlate_delivery warehouse branch 48h\n")
        .expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "gateway"])
        .env("KEFU_ROUTING_POLICY", &policy)
        .env("KEFU_GATEWAY_ADDR", "127.0.0.1:0")
        .output()
        .expect("run kefu");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains("warehouse"), "{stderr}");
}

on_both_backends!(an_approved_claim_survives_kill_9_and_settlement_posts_it_exactly_once);
/// Claims approves a payout while settlement is down, is killed with SIGKILL, and restarts; when
/// settlement comes up the payout and the deduction are posted once each and the customer is told.
async fn an_approved_claim_survives_kill_9_and_settlement_posts_it_exactly_once(backend: Backend) {
    use kefu_proto::{
        claims::v1::claims_client::ClaimsClient,
        settlement::v1::{ListLedgerEntriesRequest, settlement_client::SettlementClient},
    };

    use crate::claims::{accept, facts, investigation, offer, uninsured_loss};

    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    for target in ["intake", "claims", "gateway"] {
        cluster.start(target);
    }
    let complaints = ComplaintsClient::new(cluster.gateway());
    let (complaint_name, claim) = file_with_owner(&complaints, "crash-claim", complaint("cargo_damage", "YD-K9")).await;
    let mut claims = ClaimsClient::new(cluster.gateway());
    claims.record_claim_facts(facts(&claim, uninsured_loss())).await.expect("facts");
    claims.record_investigation(investigation(&claim, "person", "B042", 30)).await.expect("investigation");
    claims.make_offer(offer(&claim, 50_000)).await.expect("offer");
    let approved = claims.record_customer_response(accept(&claim, "k9")).await.expect("accept").into_inner();
    assert_eq!(approved.agreed_amount_fen, 50_000);

    // The payout waits in claims' outbox; claims dies without a goodbye and comes back.
    cluster.kill_9("claims");
    cluster.start("claims");
    cluster.start("settlement");

    let settlement = SettlementClient::new(cluster.gateway());
    let entries = || {
        let mut settlement = settlement.clone();
        let origin_prefix = format!("{claim}/");
        async move {
            let request = ListLedgerEntriesRequest { origin_prefix, ..Default::default() };
            settlement.list_ledger_entries(request).await.ok().map(|reply| reply.into_inner().entries)
        }
    };
    eventually("settlement posts the payout and the deduction", || {
        let entries = entries();
        async move { entries.await.filter(|entries| entries.len() == 2) }
    })
    .await;
    eventually("intake tells the customer", || {
        let complaints = complaints.clone();
        let name = complaint_name.clone();
        async move { (state_of(&complaints, &name).await? == State::Resolved).then_some(()) }
    })
    .await;
    // A restart of claims again re-delivers nothing new: still one payout and one deduction.
    cluster.kill_9("claims");
    cluster.start("claims");
    delivered_everything(&test_config(dir.path(), database.as_ref()), "claims").await;
    let entries = entries().await.expect("the ledger");
    let kinds: Vec<&str> = entries.iter().map(|entry| entry.kind.as_str()).collect();
    assert_eq!(kinds, ["claim_payout", "claim_deduction"]);
    let amounts: Vec<i64> = entries.iter().map(|entry| entry.postings[0].amount_fen).collect();
    assert_eq!(amounts, [50_000, 15_000]);
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}

on_both_backends!(fines_decided_while_settlement_is_down_are_deducted_once_when_it_returns);
/// Inspection fines while settlement is down and is killed with SIGKILL; when settlement comes up
/// each fine is deducted once, and restarting inspection again re-deducts nothing.
async fn fines_decided_while_settlement_is_down_are_deducted_once_when_it_returns(backend: Backend) {
    use kefu_proto::{
        inspection::v1::{GetCaseRequest, inspection_client::InspectionClient},
        settlement::v1::{ListLedgerEntriesRequest, settlement_client::SettlementClient},
    };

    use crate::inspection::{decide, divide, findings, fine, party, report};

    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    for target in ["intake", "inspection", "gateway"] {
        cluster.start(target);
    }
    let complaints = ComplaintsClient::new(cluster.gateway());
    let (_, case) = file_with_owner(&complaints, "crash-fine", complaint("attitude", "YD-K9F")).await;
    let mut inspection = InspectionClient::new(cluster.gateway());
    inspection.record_written_report(report(&case, party("person", "B042"))).await.expect("report");
    inspection.record_findings(findings(&case)).await.expect("findings");
    inspection
        .divide_responsibility(divide(&case, &[("person", "B042", 60), ("branch", "SH01", 40)]))
        .await
        .expect("divided");
    let decision = decide(
        &case,
        vec![
            fine("person", "B042", "attitude_or_inefficiency", 8_000, ""),
            fine("branch", "SH01", "operational_error", 15_000, ""),
        ],
        "k9-fines",
    );
    inspection.decide_penalties(decision).await.expect("decided");

    // The fines wait in inspection's outbox; inspection dies without a goodbye and comes back.
    cluster.kill_9("inspection");
    cluster.start("inspection");
    cluster.start("settlement");
    let settlement = SettlementClient::new(cluster.gateway());
    let entries = || {
        let mut settlement = settlement.clone();
        let origin_prefix = format!("inspection/{case}/");
        async move {
            let request = ListLedgerEntriesRequest { origin_prefix, ..Default::default() };
            settlement.list_ledger_entries(request).await.ok().map(|reply| reply.into_inner().entries)
        }
    };
    eventually("settlement deducts both fines", || {
        let entries = entries();
        async move { entries.await.filter(|entries| entries.len() == 2) }
    })
    .await;
    cluster.kill_9("inspection");
    cluster.start("inspection");
    eventually("inspection answers again", || {
        let mut inspection = inspection.clone();
        let name = case.clone();
        async move { inspection.get_case(GetCaseRequest { name }).await.ok() }
    })
    .await;
    delivered_everything(&test_config(dir.path(), database.as_ref()), "inspection").await;
    let entries = entries().await.expect("the ledger");
    // Each fine once; two events of one decision may arrive in either order.
    let mut charged: Vec<(&str, i64)> =
        entries.iter().map(|entry| (entry.postings[0].account.as_str(), entry.postings[0].amount_fen)).collect();
    charged.sort();
    assert_eq!(charged, [("branch:SH01", 15_000), ("person:B042", 8_000)]);
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}

on_both_backends!(settlement_killed_during_delivery_moves_every_yuan_exactly_once);
/// Settlement is killed with SIGKILL while fines are being delivered to it and while a branch
/// records COD collections (retrying, with the same request ids, the calls the crash cut off).
/// Afterwards the ledger holds exactly one entry per fine decided and per waybill step, and
/// reconciliation finds every event received with exactly one effect.
async fn settlement_killed_during_delivery_moves_every_yuan_exactly_once(backend: Backend) {
    use kefu_proto::{
        inspection::v1::{Audit, CreateAuditRequest},
        settlement::v1::{
            ListLedgerEntriesRequest, ReconcileRequest, RecordCodCollectionRequest, RecordWaybillRequest, Waybill,
            settlement_client::SettlementClient,
        },
    };

    use crate::inspection::{decide, divide, fine};

    const FINES: usize = 12;
    const WAYBILLS: usize = 6;
    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    for target in ["intake", "inspection", "settlement", "gateway"] {
        cluster.start(target);
    }
    let inspection = InspectionClient::new(cluster.gateway());
    let settlement = SettlementClient::new(cluster.gateway());
    // Each fine: an audit of branch SH01's person B0nn, fined 100 yuan + n fen. Retried until the
    // cluster answers; the audit's request id makes a retry the same audit.
    let decide_fine = |n: usize| {
        let mut inspection = inspection.clone();
        async move {
            let audit = CreateAuditRequest {
                request_id: format!("k9-audit-{n}"),
                audit: Some(Audit {
                    kind: "service_standard".into(),
                    branch: "SH01".into(),
                    subject: format!("counter service {n}"),
                    findings: "rude to a customer".into(),
                }),
            };
            let audit = eventually("inspection answers", || {
                let mut inspection = inspection.clone();
                let audit = audit.clone();
                async move { inspection.create_audit(audit).await.ok() }
            })
            .await
            .into_inner();
            let person = format!("B0{n:02}");
            inspection.divide_responsibility(divide(&audit.name, &[("person", &person, 100)])).await.expect("divided");
            let amount = 10_000 + i64::try_from(n).expect("small");
            let decision = decide(&audit.name, vec![fine("person", &person, "operational_error", amount, "")], "");
            inspection.decide_penalties(decision).await.expect("decided");
            (format!("inspection/{}/penalties/1", audit.name), format!("person:{person}"), amount)
        }
    };
    let entries = |prefix: &'static str| {
        let mut settlement = settlement.clone();
        async move {
            let mut all = Vec::new();
            let mut page_token = String::new();
            loop {
                let request = ListLedgerEntriesRequest { origin_prefix: prefix.into(), page_size: 500, page_token };
                let reply = settlement.list_ledger_entries(request).await.ok()?.into_inner();
                all.extend(reply.entries);
                if reply.next_page_token.is_empty() {
                    return Some(all);
                }
                page_token = reply.next_page_token;
            }
        }
    };
    // A branch's COD work: each call retried with its request id until settlement answers.
    let cod_work = |waybills: std::ops::Range<usize>| {
        let settlement = settlement.clone();
        async move {
            for n in waybills {
                let name = format!("waybills/K9-{n}");
                let record = RecordWaybillRequest {
                    waybill: Some(Waybill {
                        name: name.clone(),
                        shipper: "S1001".into(),
                        branch: "SH01".into(),
                        freight_fen: 1_000,
                        payment_method: "collect".into(),
                        cod_amount_fen: 30_000,
                        ..Default::default()
                    }),
                    request_id: format!("k9-record-{n}"),
                };
                eventually("settlement records the waybill", || {
                    let mut settlement = settlement.clone();
                    let record = record.clone();
                    async move { settlement.record_waybill(record).await.ok() }
                })
                .await;
                let collect =
                    RecordCodCollectionRequest { name, collect_time: None, request_id: format!("k9-collect-{n}") };
                eventually("settlement records the collection", || {
                    let mut settlement = settlement.clone();
                    let collect = collect.clone();
                    async move { settlement.record_cod_collection(collect).await.ok() }
                })
                .await;
            }
        }
    };

    let mut decided = Vec::new();
    for n in 0..FINES / 2 {
        decided.push(decide_fine(n).await);
    }
    cod_work(0..WAYBILLS / 2).await;
    // Kill settlement as soon as the first fine reaches it: the rest are in flight or queued.
    eventually("the first fine reaches settlement", || {
        let entries = entries("inspection/");
        async move { entries.await.filter(|entries| !entries.is_empty()) }
    })
    .await;
    cluster.kill_9("settlement");
    let late_fines = async {
        let mut more = Vec::new();
        for n in FINES / 2..FINES {
            more.push(decide_fine(n).await);
        }
        more
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cluster.start("settlement");
        tokio::time::sleep(Duration::from_millis(700)).await;
        cluster.kill_9("settlement");
        cluster.start("settlement");
    };
    let (more, (), ()) = tokio::join!(late_fines, restart, cod_work(WAYBILLS / 2..WAYBILLS));
    decided.extend(more);

    let fines = eventually("every fine reaches the ledger", || {
        let entries = entries("inspection/");
        async move { entries.await.filter(|entries| entries.len() >= FINES) }
    })
    .await;
    delivered_everything(&test_config(dir.path(), database.as_ref()), "inspection").await;
    let fines = entries("inspection/").await.unwrap_or(fines);
    let mut posted: Vec<(String, String, i64)> = fines
        .iter()
        .map(|entry| (entry.origin.clone(), entry.postings[0].account.clone(), entry.postings[0].amount_fen))
        .collect();
    posted.sort();
    decided.sort();
    assert_eq!(posted, decided, "one entry per fine decided, with its money");
    let waybill_entries = entries("waybills/").await.expect("the ledger");
    assert_eq!(waybill_entries.len(), 2 * WAYBILLS, "charges and collection of each waybill, once");
    let found = settlement.clone().reconcile(ReconcileRequest {}).await.expect("reconciled").into_inner();
    assert_eq!(found.problems, Vec::<String>::new());
    assert_eq!((found.events_received, found.waybills), (i64::try_from(FINES).expect("small"), 6));
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}

#[test]
fn a_broken_policy_stops_start_up_naming_the_line() {
    let cases = [
        (
            "claims",
            "KEFU_CLAIMS_POLICY",
            "# board decision\ndeclared_uninsured_percent = 170\n",
            "claims policy",
            "declared_uninsured_percent",
        ),
        (
            "inspection",
            "KEFU_INSPECTION_POLICY",
            "# board decision\nfine smoking = 80-20 yuan | board | smoking\n",
            "inspection policy",
            "fine smoking",
        ),
    ];
    for (service, variable, text, policy_name, named) in cases {
        let dir = tempfile::tempdir().expect("a directory");
        let policy = dir.path().join("policy.txt");
        std::fs::write(&policy, text).expect("write");
        let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
            .args(["serve", service])
            .env(variable, &policy)
            .env(format!("KEFU_{}_ADDR", service.to_uppercase()), "127.0.0.1:0")
            .env("KEFU_DATA_DIR", dir.path())
            .output()
            .expect("run kefu");
        assert!(!output.status.success(), "{service}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(policy_name) && stderr.contains("line 2"), "{stderr}");
        assert!(stderr.contains(named), "{stderr}");
    }
}

/// `kefu report claims|inspection` prints the month's report as CSV from a running gateway, and says what is
/// wrong with a bad month.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_report_prints_the_monthly_reports_as_csv() {
    let suite = TestSuite::start(Backend::Sqlite, std::sync::Arc::new(kefu_kit::SystemClock)).await;
    let gateway = format!("http://{}", suite.config.gateway_addr);
    let token = suite.gateway.token(&Principal::staff("GM1", "", &["general_manager"])).await;
    let report = |kind: &'static str, month: &str| {
        let (gateway, token) = (gateway.clone(), token.clone());
        let month = month.to_owned();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .args(["report", kind, "--month", &month, "--gateway", &gateway])
                .env("KEFU_TOKEN", &token)
                .output()
                .expect("run kefu")
        })
    };
    let output = report("claims", "2026-11").await.expect("joined");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let csv = String::from_utf8(output.stdout).expect("UTF-8");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("month,dimension,key,claims,amount_fen,responsible_share_fen,insurer_claimed_fen,insurer_recovered_fen")
    );
    assert_eq!(lines.next(), Some("2026-11,total,approved,0,0,0,0,0"));

    let output = report("inspection", "2026-11").await.expect("joined");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let csv = String::from_utf8(output.stdout).expect("UTF-8");
    assert_eq!(
        csv,
        "month,party_kind,party_id,fines,fines_fen,warnings,criticisms,incidents,veto\n\
         2026-11,total,0 cases decided,0,0,0,0,0,0 vetoes\n"
    );

    let output = report("settlement", "2026-11").await.expect("joined");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(
        String::from_utf8(output.stdout).expect("UTF-8"),
        "month,section,name,entries,amount_fen\n\
         2026-11,cod,outstanding,,0\n\
         2026-11,cod,late,0,\n\
         2026-11,balance,total,,0\n"
    );

    let output = report("inspection", "11/2026").await.expect("joined");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("month") && stderr.contains("2026-11"), "{stderr}");
    suite.stop().await;
}

/// Two gateways, each with its own intake replica, on one PostgreSQL database: case numbers never
/// collide, a request id retried at either replica makes one complaint, and the two intake relays
/// share one outbox without delivering anything twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_database_without_collisions_or_duplicates() {
    let dir = tempfile::tempdir().expect("a directory");
    let database = TestDatabase::create().await;
    let mut cluster = Cluster::new(dir.path(), Some(&database));
    let (intake_b, gateway_b) = (free_port(), free_port());
    cluster.start("intake");
    cluster.start("inspection");
    cluster.start("gateway");
    let replica = vec![
        ("KEFU_INTAKE_ADDR".to_owned(), format!("127.0.0.1:{intake_b}")),
        ("KEFU_GATEWAY_ADDR".to_owned(), format!("127.0.0.1:{gateway_b}")),
    ];
    cluster.start_as("intake-b", "intake", &replica);
    cluster.start_as("gateway-b", "gateway", &replica);
    let a = ComplaintsClient::new(cluster.gateway());
    let b = ComplaintsClient::new(TokenChannel::new(
        Channel::from_shared(format!("http://127.0.0.1:{gateway_b}")).expect("URL").connect_lazy(),
    ));
    for client in [&a, &b] {
        eventually("both replicas answer", || {
            let mut client = client.clone();
            async move { client.list_complaints(ListComplaintsRequest::default()).await.ok() }
        })
        .await;
    }

    // Every request id goes to both replicas at once: 60 distinct complaints, each asked for twice.
    let mut calls = Vec::new();
    for i in 0..60 {
        for client in [&a, &b] {
            let mut client = client.clone();
            calls.push(tokio::spawn(async move {
                let created = client.create_complaint(create(&format!("both-{i}"), complaint("mis_sort", "YD3"))).await;
                (i, created.expect("created").into_inner().name)
            }));
        }
    }
    let mut by_request: HashMap<usize, Vec<String>> = HashMap::new();
    for call in calls {
        let (i, name) = call.await.expect("joined");
        by_request.entry(i).or_default().push(name);
    }
    for (i, names) in &by_request {
        assert_eq!(names[0], names[1], "request both-{i} made one complaint at both replicas");
    }
    let distinct: std::collections::HashSet<&String> = by_request.values().map(|names| &names[0]).collect();
    assert_eq!(distinct.len(), 60, "no two complaints share a case number");

    for name in &distinct {
        eventually(&format!("{name} reaches inspection"), || async {
            (state_of(&a, name).await == Some(State::Accepted)).then_some(())
        })
        .await;
    }
    let held = InspectionClient::new(cluster.gateway())
        .list_cases(ListCasesRequest { page_size: 500, ..Default::default() })
        .await
        .expect("listed")
        .into_inner()
        .cases
        .len();
    assert_eq!(held, 60, "inspection holds each complaint once");
    drop(cluster);
    database.drop_database().await;
}

/// `kefu up` says where everything listens and stops cleanly on Ctrl-C (SIGINT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_up_says_where_everything_listens_and_stops_on_ctrl_c() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().expect("a directory");
    let cluster = Cluster::new(dir.path(), None);
    // Zero configuration but the bootstrap secret: `kefu up` makes its own internal key.
    let mut child = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .arg("up")
        .envs(cluster.env.iter().filter(|(k, _)| k != "KEFU_INTERNAL_KEY").map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start kefu up");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut banner = String::new();
    while !banner.contains("Stop with Ctrl-C") {
        let mut line = String::new();
        if stdout.read_line(&mut line).expect("read stdout") == 0 {
            panic!("kefu up ended early: {banner}");
        }
        banner.push_str(&line);
    }
    for target in TARGETS {
        let port = cluster.ports[target];
        assert!(banner.contains(&target.to_string()) && banner.contains(&format!("127.0.0.1:{port}")), "{banner}");
    }
    let client = ComplaintsClient::new(cluster.gateway());
    let created = eventually("the gateway answers", || {
        let mut client = client.clone();
        async move { client.create_complaint(create("up-1", complaint("cargo_damage", "YD4"))).await.ok() }
    })
    .await
    .into_inner();
    eventually("the claim is accepted", || async {
        (state_of(&client, &created.name).await == Some(State::Accepted)).then_some(())
    })
    .await;

    let interrupted = Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill -INT");
    assert!(interrupted.success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.expect("joined").expect("waited");
    assert!(status.success(), "kefu up exits 0 on Ctrl-C: {status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read the rest");
    assert!(rest.contains("kefu stopped."), "{rest}");
}

on_both_backends!(refusals_are_logged_and_counted_without_secrets);
/// Refusals are logged with the method, the reason and (for denials) who was denied, counted, and
/// never with a secret: not the bootstrap secret, not a token, not a forged one.
async fn refusals_are_logged_and_counted_without_secrets(backend: Backend) {
    use kefu_proto::{
        claims::v1::{ListClaimsRequest, claims_client::ClaimsClient},
        gateway::v1::{ListTokensRequest, tokens_client::TokensClient},
    };

    let dir = tempfile::tempdir().expect("a directory");
    let database = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(TestDatabase::create().await),
    };
    let mut cluster = Cluster::new(dir.path(), database.as_ref());
    cluster.start("gateway");
    cluster.start("claims");
    let gateway = cluster.gateway();
    // Each refusal from an address of its own: the gateway logs one line per address every ten
    // seconds, with how many it did not (see `edges::refused_calls_from_one_address_…`).
    let gateway_port = cluster.ports["gateway"];
    let raw_from = |ip: &str| {
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{gateway_port}"))
            .expect("URL")
            .local_address(Some(ip.parse().expect("an address")))
            .connect_lazy()
    };
    let agent = eventually("the gateway makes tokens", || {
        let gateway = gateway.clone();
        async move { gateway.try_token(&Principal::staff("A3", "claims", &["agent"])).await.ok() }
    })
    .await;

    let no_token = ClaimsClient::new(raw_from("127.0.0.2")).list_claims(ListClaimsRequest::default()).await;
    assert_eq!(no_token.expect_err("no token").code(), tonic::Code::Unauthenticated);
    let forged = "kefu_0123456789abcdef_forgedsecretforgedsecretforgedsecretforgedsecret0123456789abcd";
    let mut request = tonic::Request::new(ListClaimsRequest::default());
    crate::support::bearer(&mut request, forged);
    let unknown = ClaimsClient::new(raw_from("127.0.0.3")).list_claims(request).await;
    assert_eq!(unknown.expect_err("unknown token").code(), tonic::Code::Unauthenticated);
    let mut request = tonic::Request::new(ListTokensRequest::default());
    crate::support::bearer(&mut request, &agent);
    let denied = TokensClient::new(raw_from("127.0.0.4")).list_tokens(request).await;
    assert_eq!(denied.expect_err("an agent lists no tokens").code(), tonic::Code::PermissionDenied);
    let claims_port =
        Channel::from_shared(format!("http://127.0.0.1:{}", cluster.ports["claims"])).expect("URL").connect_lazy();
    // The claims process may still be starting: wait until its port answers at all.
    let direct = eventually("the claims port answers", || {
        let port = claims_port.clone();
        async move {
            match ClaimsClient::new(port).list_claims(ListClaimsRequest::default()).await {
                Err(status) if status.code() == tonic::Code::Unavailable => None,
                answered => Some(answered),
            }
        }
    })
    .await;
    assert_eq!(direct.expect_err("straight to the port").code(), tonic::Code::Unauthenticated);

    let gateway_log = eventually("the gateway logs the denial", || async {
        let log = cluster.log("gateway");
        log.contains("call denied by the access table").then_some(log)
    })
    .await;
    assert!(
        gateway_log.contains("call not authenticated method=/kefu.claims.v1.Claims/ListClaims reason=\"missing\""),
        "{gateway_log}"
    );
    assert!(
        gateway_log.contains("reason=\"unknown_or_revoked\" unauthenticated_calls=2 refusals_not_logged=0"),
        "{gateway_log}"
    );
    // Counted with every denial since start: a stray call from a process of another test, which
    // found a free port of this one's, may have been denied first.
    assert!(
        gateway_log.contains(
            "method=/kefu.gateway.v1.Tokens/ListTokens subject=A3 roles=agent department=claims denied_calls="
        ),
        "{gateway_log}"
    );
    assert!(gateway_log.contains("the bootstrap token was used"), "its use is a warning: {gateway_log}");
    let claims_log = cluster.log("claims");
    assert!(
        claims_log.contains("call refused at a service port") && claims_log.contains("refused_calls=1"),
        "{claims_log}"
    );
    for log in [&gateway_log, &claims_log] {
        for secret in [BOOTSTRAP_TOKEN, agent.as_str(), forged, "forgedsecret", INTERNAL_KEY] {
            assert!(!log.contains(secret), "a secret in the log: {secret}");
        }
    }
    drop(cluster);
    if let Some(database) = database {
        database.drop_database().await;
    }
}

/// `kefu token create|list|revoke`, as an administrator runs them against a real gateway; and a
/// gateway without KEFU_BOOTSTRAP_TOKEN has no bootstrap identity at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_token_creates_lists_and_revokes_tokens() {
    let suite = TestSuite::start(Backend::Sqlite, std::sync::Arc::new(kefu_kit::SystemClock)).await;
    let gateway = format!("http://{}", suite.config.gateway_addr);
    let kefu = |args: Vec<String>, token: String| {
        let gateway = gateway.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .args(&args)
                .env("KEFU_GATEWAY_URL", &gateway)
                .env("KEFU_TOKEN", &token)
                .output()
                .expect("run kefu")
        })
    };
    let words = |text: &str| text.split_whitespace().map(str::to_owned).collect::<Vec<_>>();

    let created = kefu(
        words("token create --subject A1024 --department intake --role agent --role supervisor --days 30"),
        BOOTSTRAP_TOKEN.into(),
    )
    .await
    .expect("joined");
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let secret = String::from_utf8(created.stdout).expect("UTF-8").trim().to_owned();
    assert!(secret.starts_with("kefu_"), "only the secret on standard output: {secret}");
    let told = String::from_utf8_lossy(&created.stderr).to_string();
    assert!(told.contains("A1024 [agent,supervisor] department=intake") && told.contains("shown this once"), "{told}");

    // The secret works, for what its roles allow.
    let mut complaints = kefu_proto::gateway::v1::complaints_client::ComplaintsClient::new(
        Channel::from_shared(gateway.clone()).expect("URL").connect_lazy(),
    );
    let mut request = tonic::Request::new(create("cli-1", complaint("late_delivery", "YD-CLI")));
    crate::support::bearer(&mut request, &secret);
    assert_eq!(complaints.create_complaint(request).await.expect("filed").into_inner().received_by, "A1024");

    let listed = kefu(words("token list"), BOOTSTRAP_TOKEN.into()).await.expect("joined");
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).expect("UTF-8");
    let name = listed
        .lines()
        .find(|line| line.contains("A1024"))
        .and_then(|line| line.split_whitespace().next())
        .expect("the token is listed")
        .to_owned();
    assert!(!listed.contains(&secret), "a list never shows a secret");
    let by_agent = kefu(words("token list"), secret.clone()).await.expect("joined");
    assert!(!by_agent.status.success());
    assert!(String::from_utf8_lossy(&by_agent.stderr).contains("ask an administrator"));

    let revoked =
        kefu(vec!["token".into(), "revoke".into(), name.clone()], BOOTSTRAP_TOKEN.into()).await.expect("joined");
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    assert!(String::from_utf8_lossy(&revoked.stdout).contains(&format!("revoked {name}")));
    let mut request = tonic::Request::new(create("cli-2", complaint("late_delivery", "YD-CLI")));
    crate::support::bearer(&mut request, &secret);
    assert_eq!(complaints.create_complaint(request).await.expect_err("revoked").code(), tonic::Code::Unauthenticated);
    let listed = kefu(words("token list"), BOOTSTRAP_TOKEN.into()).await.expect("joined");
    assert!(String::from_utf8_lossy(&listed.stdout).contains("REVOKED"));

    let no_token = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["token", "list", "--gateway", &gateway])
        .env_remove("KEFU_TOKEN")
        .output()
        .expect("run kefu");
    assert!(String::from_utf8_lossy(&no_token.stderr).contains("set KEFU_TOKEN"));
    suite.stop().await;

    // A gateway whose operator set no bootstrap secret: the test's secret means nothing there.
    let dir = tempfile::tempdir().expect("a directory");
    let mut cluster = Cluster::new(dir.path(), None);
    cluster.env.retain(|(key, _)| key != "KEFU_BOOTSTRAP_TOKEN");
    cluster.start("gateway");
    let raw =
        Channel::from_shared(format!("http://127.0.0.1:{}", cluster.ports["gateway"])).expect("URL").connect_lazy();
    let refused = eventually("the gateway answers", || {
        let raw = raw.clone();
        async move {
            let mut request = tonic::Request::new(kefu_proto::gateway::v1::ListTokensRequest::default());
            crate::support::bearer(&mut request, BOOTSTRAP_TOKEN);
            let answer = kefu_proto::gateway::v1::tokens_client::TokensClient::new(raw).list_tokens(request).await;
            answer.err().filter(|status| status.code() != tonic::Code::Unavailable)
        }
    })
    .await;
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
}

/// No secret reaches the output: the database password in the start-up line and connection errors,
/// the token in `--help` (which shows where a value comes from, never the value).
#[test]
fn secrets_never_reach_the_output() {
    let password = "s3cret-pa55word";
    let output = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["serve", "intake"])
        .env("KEFU_INTERNAL_KEY", INTERNAL_KEY)
        .env("KEFU_INTAKE_ADDR", "127.0.0.1:0")
        .env("KEFU_DATABASE_URL", format!("postgres://postgres:{password}@127.0.0.1:5432/kefu_no_such_database"))
        .output()
        .expect("run kefu");
    assert!(!output.status.success(), "there is no such database");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(said.contains("postgres://postgres:***@127.0.0.1:5432/kefu_no_such_database"), "{said}");
    assert!(!said.contains(password), "{said}");

    let secret = "kefu_0123456789abcdef_thisisthesecretpartofthetoken";
    let help = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["token", "create", "--help"])
        .env("KEFU_TOKEN", secret)
        .output()
        .expect("run kefu");
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(help.contains("KEFU_TOKEN") && !help.contains("thisisthesecret"), "{help}");
}
