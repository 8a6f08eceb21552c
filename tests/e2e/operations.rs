//! What an operator relies on, shown with the real `kefu` binary: on SIGTERM a server reports
//! `NOT_SERVING`, goes on answering for the drain, and finishes the calls in flight before it
//! stops; while PostgreSQL is away calls fail fast with `UNAVAILABLE`, readiness says so, the log
//! says so once, and everything resumes by itself when it returns.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Command,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use kefu_proto::gateway::v1::{
    GetComplaintRequest, ListTokensRequest, complaints_client::ComplaintsClient, tokens_client::TokensClient,
};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, TransactionTrait};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{
    processes::Cluster,
    support::{TestDatabase, accepted_by_owner, complaint, create, eventually, free_port},
};

/// What `grpc.health.v1` says of the server at `port` (the overall status: readiness), if it answers.
async fn health_at(port: u16) -> Option<ServingStatus> {
    health_of(port, "").await
}

/// What `grpc.health.v1` says of `service` at `port` (`liveness`: what Kubernetes' liveness probe asks).
async fn health_of(port: u16, service: &str) -> Option<ServingStatus> {
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}")).ok()?.connect().await.ok()?;
    let answer = HealthClient::new(channel).check(HealthCheckRequest { service: service.into() }).await.ok()?;
    ServingStatus::try_from(answer.into_inner().status).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_sigterm_a_server_drains_and_finishes_the_calls_in_flight() {
    let dir = tempfile::tempdir().expect("a directory");
    let database = TestDatabase::create().await;
    let mut cluster = Cluster::new(dir.path(), Some(&database));
    cluster.up(&[("KEFU_DRAIN", "2")]);
    let client = ComplaintsClient::new(cluster.gateway());
    eventually("the suite answers", || {
        let mut client = client.clone();
        async move { client.create_complaint(create("warm-up", complaint("late_delivery", "YD1"))).await.ok() }
    })
    .await;
    // Tokens for the calls below, made before the drain.
    let mut tokens = TokensClient::new(cluster.gateway());
    tokens.list_tokens(ListTokensRequest::default()).await.expect("the tokens");

    // The test holds intake's complaints table: registrations wait for it, in flight.
    let db = Database::connect(&database.url).await.expect("the database");
    let lock = db.begin().await.expect("a transaction");
    lock.execute(Statement::from_string(DbBackend::Postgres, "LOCK TABLE intake.complaints IN ACCESS EXCLUSIVE MODE"))
        .await
        .expect("the lock");
    let in_flight: Vec<_> = (0..5)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .create_complaint(create(&format!("in-flight-{i}"), complaint("attitude", &format!("YD2{i}"))))
                    .await
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(done) = in_flight.iter().position(|call| call.is_finished()) {
        let answer = in_flight.into_iter().nth(done).expect("that call").await;
        panic!("the registrations wait for the database, but one was answered: {answer:?}");
    }

    cluster.signal("up", "TERM");
    let signalled = Instant::now();
    eventually("the gateway reports NOT_SERVING", || async {
        (health_at(cluster.ports["gateway"]).await == Some(ServingStatus::NotServing)).then_some(())
    })
    .await;
    assert_eq!(health_at(cluster.ports["intake"]).await, Some(ServingStatus::NotServing), "intake drains too");
    assert_eq!(health_of(cluster.ports["intake"], "liveness").await, Some(ServingStatus::Serving), "and is alive");
    // Draining, it still answers whoever still calls.
    let answered = tokens.list_tokens(ListTokensRequest::default()).await;
    assert!(answered.is_ok(), "a call during the drain is answered: {answered:?}");
    assert!(signalled.elapsed() < Duration::from_secs(2), "all of that within the drain");

    // The drain ends with the registrations still waiting; once the database is free they finish.
    tokio::time::sleep(Duration::from_millis(2_500).saturating_sub(signalled.elapsed())).await;
    assert!(in_flight.iter().all(|call| !call.is_finished()), "still in flight when the server stops");
    lock.rollback().await.expect("let go");
    for call in in_flight {
        let created = call.await.expect("joined").expect("a call in flight at SIGTERM completes");
        assert!(created.into_inner().name.starts_with("complaints/"));
    }
    let status = cluster.exit_of("up", Duration::from_secs(20)).await;
    assert!(status.success(), "kefu up exits 0 after a drain: {status:?}");
    let log = cluster.log("up");
    assert!(log.contains("draining for 2s") && log.contains("kefu stopped."), "{log}");
    database.drop_database().await;
}

/// A PostgreSQL server of the test's own, in a temporary directory on a free port, which the test
/// may stop and start (the machine's shared one serves every other test).
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    const BIN: &str = "/usr/lib/postgresql/15/bin";

    fn start_new(dir: &Path) -> PrivatePostgres {
        let port = free_port();
        let server = PrivatePostgres { dir: dir.to_owned(), port };
        // PostgreSQL will not run as root: as the postgres user, where the tests run as root.
        std::fs::create_dir_all(dir).expect("a directory");
        if running_as_root() {
            let owned = Command::new("chown").args(["-R", "postgres", &dir.display().to_string()]).status();
            assert!(owned.is_ok_and(|status| status.success()), "chown the PostgreSQL directory");
        }
        server.pg(&["initdb", "-D", "data", "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]);
        server.start();
        server
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    fn start(&self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off", self.port, self.dir.display());
        self.pg(&["pg_ctl", "-D", "data", "-l", "server.log", "-o", &options, "-w", "start"]);
    }

    fn stop(&self) {
        self.pg(&["pg_ctl", "-D", "data", "-m", "fast", "-w", "stop"]);
    }

    fn pg(&self, command: &[&str]) {
        let program = format!("{}/{}", Self::BIN, command[0]);
        let mut run = if running_as_root() {
            let mut run = Command::new("runuser");
            run.args(["-u", "postgres", "--", &program]);
            run
        } else {
            Command::new(&program)
        };
        let output = run.args(&command[1..]).current_dir(&self.dir).output().expect("run a PostgreSQL tool");
        assert!(
            output.status.success(),
            "{command:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = Command::new(format!("{}/pg_ctl", Self::BIN))
            .args(["-D", "data", "-m", "immediate", "stop"])
            .current_dir(&self.dir)
            .output();
        if running_as_root() {
            let _ = Command::new("runuser")
                .args([
                    "-u",
                    "postgres",
                    "--",
                    &format!("{}/pg_ctl", Self::BIN),
                    "-D",
                    "data",
                    "-m",
                    "immediate",
                    "stop",
                ])
                .current_dir(&self.dir)
                .output();
        }
    }
}

fn running_as_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|output| output.stdout.starts_with(b"0\n"))
}

/// What the callers saw: each call's outcome and how long it took.
#[derive(Default)]
struct Seen {
    acknowledged: Vec<String>,
    failed: Vec<(tonic::Code, Duration, Instant)>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_postgresql_is_away_calls_fail_fast_readiness_says_so_and_everything_resumes() {
    let dir = tempfile::tempdir().expect("a directory");
    let postgres = PrivatePostgres::start_new(&dir.path().join("postgres"));
    let mut cluster = Cluster::new(dir.path(), None);
    let url = postgres.url();
    let metrics = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics}");
    cluster.up(&[("KEFU_DATABASE_URL", &url), ("KEFU_RATE_LIMIT", "100000"), ("KEFU_METRICS_ADDR", &metrics_addr)]);
    let client = ComplaintsClient::new(cluster.gateway());
    eventually("the suite answers", || {
        let mut client = client.clone();
        async move { client.create_complaint(create("warm-up", complaint("late_delivery", "YD0"))).await.ok() }
    })
    .await;

    // Sixteen callers, each filing complaint after complaint until told to stop.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..16)
        .map(|caller| {
            let (mut client, seen, stopped) = (client.clone(), seen.clone(), stopped.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if stopped.has_changed().unwrap_or(true) {
                        return;
                    }
                    let started = Instant::now();
                    let request =
                        create(&format!("c{caller}-{i}"), complaint("late_delivery", &format!("YD{caller}x{i}")));
                    let answer = client.create_complaint(request).await;
                    {
                        let mut seen = seen.lock().expect("not poisoned");
                        match answer {
                            Ok(created) => seen.acknowledged.push(created.into_inner().name),
                            Err(status) => seen.failed.push((status.code(), started.elapsed(), started)),
                        }
                    }
                    if started.elapsed() < Duration::from_millis(20) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = seen.lock().expect("not poisoned").acknowledged.len();
    assert!(before > 0, "complaints are registered before the outage");

    let down_at = Instant::now();
    postgres.stop();
    eprintln!("stopping PostgreSQL took {:?}", down_at.elapsed());
    let intake_port = cluster.ports["intake"];
    eventually("intake reports NOT_SERVING while its database is away", || async {
        (health_at(intake_port).await == Some(ServingStatus::NotServing)).then_some(())
    })
    .await;
    eventually("the gateway reports NOT_SERVING too (its tokens are in the same database)", || async {
        (health_at(cluster.ports["gateway"]).await == Some(ServingStatus::NotServing)).then_some(())
    })
    .await;
    // Not ready, but alive: Kubernetes must not restart a server that waits for its database.
    assert_eq!(health_of(intake_port, "liveness").await, Some(ServingStatus::Serving));
    // The same over HTTP, for probes that cannot ask gRPC health.
    assert_eq!(status_of_get(metrics, "/ready").await, Some(503));
    assert_eq!(status_of_get(metrics, "/live").await, Some(200));
    tokio::time::sleep(Duration::from_secs(6).saturating_sub(down_at.elapsed())).await;
    let up_at = Instant::now();
    postgres.start();
    eprintln!("starting PostgreSQL took {:?}", up_at.elapsed());
    eventually("intake is ready again", || async {
        (health_at(intake_port).await == Some(ServingStatus::Serving)).then_some(())
    })
    .await;
    eventually("every part is ready again", || async {
        (status_of_get(metrics, "/ready").await == Some(200)).then_some(())
    })
    .await;
    let after_outage = seen.lock().expect("not poisoned").acknowledged.len();
    eventually("complaints are registered again", || async {
        (seen.lock().expect("not poisoned").acknowledged.len() > after_outage + 50).then_some(())
    })
    .await;
    let _ = stop.send(true);
    for caller in callers {
        caller.await.expect("a caller");
    }

    let seen = Arc::try_unwrap(seen).ok().expect("the callers are done").into_inner().expect("not poisoned");
    // Calls made while the database was away failed, each within a few seconds, as UNAVAILABLE.
    let during: Vec<_> = seen.failed.iter().filter(|(_, _, started)| *started >= down_at && *started < up_at).collect();
    assert!(
        during.len() >= 16,
        "calls failed while PostgreSQL was down: {:?}, acknowledged {}\n{}",
        seen.failed
            .iter()
            .map(|(code, took, started)| (code, took, started.checked_duration_since(down_at).is_some()))
            .collect::<Vec<_>>(),
        seen.acknowledged.len(),
        cluster.log("up")
    );
    let codes: HashMap<tonic::Code, usize> = seen.failed.iter().fold(HashMap::new(), |mut codes, (code, _, _)| {
        *codes.entry(*code).or_default() += 1;
        codes
    });
    assert_eq!(codes.keys().copied().collect::<Vec<_>>(), [tonic::Code::Unavailable], "{codes:?}");
    let slowest = seen.failed.iter().map(|(_, took, _)| *took).max().expect("failures");
    assert!(slowest < Duration::from_secs(5), "a failing call took {slowest:?}");

    // The log says so once per cause and interval, not once per call.
    let log = cluster.log("up");
    let unreachable = log.lines().filter(|line| line.contains("the database is unreachable")).count();
    eprintln!(
        "{} acknowledged, {} failed ({} while PostgreSQL was down), the slowest failure in {slowest:?}, {unreachable} log lines of it",
        seen.acknowledged.len(),
        seen.failed.len(),
        during.len()
    );
    assert!((1..=40).contains(&unreachable), "{unreachable} lines for {} failures:\n{log}", seen.failed.len());
    assert!(log.contains("the database does not answer: not ready") && log.contains("the database answers again"));

    // Everything acknowledged reached its owner and came back accepted.
    for name in &seen.acknowledged {
        accepted_by_owner(&client, name).await;
    }
    cluster.signal("up", "INT");
    let status = cluster.exit_of("up", Duration::from_secs(20)).await;
    assert!(status.success(), "{status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kefu_backup_copies_a_running_suite_and_the_copy_starts_with_everything_acknowledged() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut cluster = Cluster::new(dir.path(), None);
    cluster.up(&[("KEFU_RATE_LIMIT", "100000")]);
    let client = ComplaintsClient::new(cluster.gateway());
    eventually("the suite answers", || {
        let mut client = client.clone();
        async move { client.create_complaint(create("warm-up", complaint("cargo_damage", "YD0"))).await.ok() }
    })
    .await;

    // Four callers go on filing complaints while the backup is taken.
    let acknowledged = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let callers: Vec<_> = (0..4)
        .map(|caller| {
            let (mut client, acknowledged, stopped) = (client.clone(), acknowledged.clone(), stopped.clone());
            tokio::spawn(async move {
                for i in 0.. {
                    if stopped.has_changed().unwrap_or(true) {
                        return;
                    }
                    let category = ["late_delivery", "cargo_damage", "attitude"][i % 3];
                    let request = create(&format!("b{caller}-{i}"), complaint(category, &format!("YB{caller}x{i}")));
                    if let Ok(created) = client.create_complaint(request).await {
                        acknowledged.lock().expect("not poisoned").push((created.into_inner().name, Instant::now()));
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let copy = tempfile::tempdir().expect("a directory");
    let target = copy.path().join("data");
    let started = Instant::now();
    let data_dir = dir.path().join("data");
    let output = {
        let target = target.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(env!("CARGO_BIN_EXE_kefu"))
                .args(["backup", &target.display().to_string()])
                .env("KEFU_DATA_DIR", &data_dir)
                .output()
                .expect("run kefu backup")
        })
        .await
        .expect("joined")
    };
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{printed}{}", String::from_utf8_lossy(&output.stderr));
    for file in ["intake.db", "inspection.db", "claims.db", "settlement.db", "archives.db", "gateway.db"] {
        assert!(printed.contains(file), "{file} is backed up: {printed}");
    }
    assert!(printed.contains("audit.key") && printed.contains("webhook.key"), "{printed}");
    let _ = stop.send(true);
    for caller in callers {
        caller.await.expect("a caller");
    }
    // Acknowledged before the backup began: these must be in the copy.
    let before: Vec<String> = acknowledged
        .lock()
        .expect("not poisoned")
        .iter()
        .filter(|(_, at)| *at < started)
        .map(|(name, _)| name.clone())
        .collect();
    assert!(before.len() > 20, "complaints were filed before the backup: {}", before.len());

    // A second backup into the same directory is refused, naming what to do.
    let again = Command::new(env!("CARGO_BIN_EXE_kefu"))
        .args(["backup", &target.display().to_string()])
        .env("KEFU_DATA_DIR", dir.path().join("data"))
        .output()
        .expect("run kefu backup");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("is not empty: back up into a new directory"));

    cluster.signal("up", "INT");
    assert!(cluster.exit_of("up", Duration::from_secs(20)).await.success());

    // A suite started on the copy has every one of them, and delivers what was still in flight.
    let mut restored = Cluster::new(copy.path(), None);
    restored.up(&[("KEFU_RATE_LIMIT", "100000")]);
    let client = ComplaintsClient::new(restored.gateway());
    for name in &before {
        accepted_by_owner(&client, name).await;
    }
    let mut client = client.clone();
    let created = client.create_complaint(create("after-restore", complaint("late_delivery", "YR1"))).await;
    assert!(created.is_ok(), "the restored suite takes new complaints: {created:?}");
}

/// The schemas of kefu in a PostgreSQL database: a service's each, and the gateway's.
const SCHEMAS: [&str; 6] = ["intake", "inspection", "claims", "settlement", "archives", "gateway"];

/// docs/operations.md's PostgreSQL backup, done once as written there: `pg_dump` of kefu's schemas
/// while the suite runs, `pg_restore` into a new database, and a suite started on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_dump_of_the_kefu_schemas_restores_into_a_suite_that_has_every_complaint() {
    let dir = tempfile::tempdir().expect("a directory");
    let database = TestDatabase::create().await;
    let mut cluster = Cluster::new(dir.path(), Some(&database));
    cluster.up(&[]);
    let client = ComplaintsClient::new(cluster.gateway());
    let mut names = Vec::new();
    for i in 0..10 {
        let created = eventually("the suite answers", || {
            let mut client = client.clone();
            let category = ["late_delivery", "cargo_damage"][i % 2];
            async move {
                client.create_complaint(create(&format!("pg-{i}"), complaint(category, &format!("YP{i}")))).await.ok()
            }
        })
        .await;
        names.push(created.into_inner().name);
    }

    let dump = dir.path().join("kefu.dump");
    let mut pg_dump = Command::new("pg_dump");
    pg_dump.args(["--format=custom", "--file", &dump.display().to_string()]);
    for schema in SCHEMAS {
        pg_dump.args(["--schema", schema]);
    }
    let dumped = pg_dump.arg(&database.url).output().expect("run pg_dump");
    assert!(dumped.status.success(), "{}", String::from_utf8_lossy(&dumped.stderr));
    cluster.signal("up", "INT");
    assert!(cluster.exit_of("up", Duration::from_secs(20)).await.success());

    let restored_database = TestDatabase::create().await;
    let restored = Command::new("pg_restore")
        .args(["--no-owner", "--exit-on-error", "--dbname", &restored_database.url, &dump.display().to_string()])
        .output()
        .expect("run pg_restore");
    assert!(restored.status.success(), "{}", String::from_utf8_lossy(&restored.stderr));
    let other = tempfile::tempdir().expect("a directory");
    let mut cluster = Cluster::new(other.path(), Some(&restored_database));
    cluster.up(&[]);
    let client = ComplaintsClient::new(cluster.gateway());
    for name in &names {
        accepted_by_owner(&client, name).await;
    }
    cluster.signal("up", "INT");
    assert!(cluster.exit_of("up", Duration::from_secs(20)).await.success());
    database.drop_database().await;
    restored_database.drop_database().await;
}

/// `GET path` from `port`: the head and the body.
async fn http_get(port: u16, path: &str) -> Option<(String, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: kefu\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    Some((head.to_owned(), body.to_owned()))
}

/// `GET /metrics` from `port`: the body.
pub(crate) async fn scrape(port: u16) -> Option<String> {
    let (head, body) = http_get(port, "/metrics").await?;
    (head.starts_with("HTTP/1.1 200") && head.contains("text/plain; version=0.0.4")).then_some(body)
}

/// The status code of `GET path` from `port`.
async fn status_of_get(port: u16, path: &str) -> Option<u16> {
    let (head, _) = http_get(port, path).await?;
    head.split(' ').nth(1)?.parse().ok()
}

/// The value of the sample `series` (its name and labels exactly as exposed).
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_served_for_prometheus_and_count_what_happened() {
    let dir = tempfile::tempdir().expect("a directory");
    let mut cluster = Cluster::new(dir.path(), None);
    let port = free_port();
    cluster.up(&[("KEFU_METRICS_ADDR", &format!("127.0.0.1:{port}"))]);
    let client = ComplaintsClient::new(cluster.gateway());
    let mut names = Vec::new();
    for i in 0..5 {
        let created = eventually("the suite answers", || {
            let mut client = client.clone();
            async move {
                client.create_complaint(create(&format!("m-{i}"), complaint("attitude", &format!("YM{i}")))).await.ok()
            }
        })
        .await;
        names.push(created.into_inner().name);
    }
    let refused = client.clone().create_complaint(create("m-bad", complaint("", "YM9"))).await;
    assert_eq!(refused.map(drop).map_err(|status| status.code()), Err(tonic::Code::InvalidArgument));
    // The suite may have refused the loop's first tries before it knew the test's token: the one
    // anonymous call is counted against what was counted before it.
    let unauthenticated_series = "kefu_gateway_refused_calls_total{reason=\"unauthenticated\"}";
    let refused_before = eventually("the metrics are served", || scrape(port)).await;
    let refused_before = sample(&refused_before, unauthenticated_series).unwrap_or(0.0);
    let anonymous =
        Channel::from_shared(format!("http://127.0.0.1:{}", cluster.ports["gateway"])).expect("a URL").connect_lazy();
    let unauthenticated =
        ComplaintsClient::new(anonymous).get_complaint(GetComplaintRequest { name: names[0].clone() }).await;
    assert_eq!(unauthenticated.map(drop).map_err(|status| status.code()), Err(tonic::Code::Unauthenticated));
    for name in &names {
        accepted_by_owner(&client, name).await;
    }

    // The gauges read from the databases come with the next sample (every 5 s).
    let text = eventually("the databases' gauges are sampled", || async {
        let text = scrape(port).await?;
        text.contains("kefu_cases_overdue{owner=\"inspection\"}").then_some(text)
    })
    .await;
    let create_ok = "rpc_server_call_duration_seconds_count{part=\"gateway\",rpc_system_name=\"grpc\",rpc_method=\"kefu.gateway.v1.Complaints/CreateComplaint\",rpc_response_status_code=\"OK\"}";
    assert!(sample(&text, create_ok).is_some_and(|calls| calls >= 5.0), "{text}");
    let create_invalid = "rpc_server_call_duration_seconds_count{part=\"gateway\",rpc_system_name=\"grpc\",rpc_method=\"kefu.gateway.v1.Complaints/CreateComplaint\",rpc_response_status_code=\"INVALID_ARGUMENT\"}";
    assert_eq!(sample(&text, create_invalid), Some(1.0), "{text}");
    let registered = "rpc_server_call_duration_seconds_count{part=\"intake\",rpc_system_name=\"grpc\",rpc_method=\"kefu.intake.v1.Intake/RegisterComplaint\",rpc_response_status_code=\"OK\"}";
    assert!(sample(&text, registered).is_some_and(|calls| calls >= 5.0), "{text}");
    assert_eq!(sample(&text, unauthenticated_series), Some(refused_before + 1.0), "{text}");
    let applied = "kefu_inbox_events_applied_total{part=\"inspection\",source=\"intake\"}";
    assert!(sample(&text, applied).is_some_and(|events| events >= 5.0), "{text}");
    for part in ["gateway", "intake", "inspection", "claims", "settlement", "archives"] {
        assert_eq!(sample(&text, &format!("kefu_ready{{part=\"{part}\"}}")), Some(1.0), "{part}: {text}");
        assert!(
            text.contains(&format!("kefu_database_connections{{part=\"{part}\",state=\"idle\"}}")) || part == "gateway"
        );
    }
    assert_eq!(sample(&text, "kefu_cases_overdue{owner=\"inspection\"}"), Some(0.0), "{text}");
    assert_eq!(sample(&text, &format!("kefu_build_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))), Some(1.0));
    assert!(text.contains("# TYPE rpc_server_call_duration_seconds histogram"));
    assert!(!text.contains("13800000000") && !text.contains("王先生"), "no personal data in the metrics");
    assert_eq!(status_of_get(port, "/ready").await, Some(200), "every part is ready");
    assert_eq!(status_of_get(port, "/live").await, Some(200));

    // Prometheus' own checker, where it is installed (CI installs it: Debian's `prometheus`).
    match Command::new("promtool").args(["check", "metrics"]).stdin(std::process::Stdio::piped()).output_with(&text) {
        Some(output) => assert!(
            output.status.success(),
            "promtool check metrics: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
        None => assert!(std::env::var_os("CI").is_none(), "CI must have promtool (Debian's prometheus package)"),
    }
    cluster.signal("up", "INT");
    assert!(cluster.exit_of("up", Duration::from_secs(20)).await.success());
}

/// Runs a command with `input` on its standard input; `None` when it cannot be started.
trait OutputWith {
    fn output_with(&mut self, input: &str) -> Option<std::process::Output>;
}

impl OutputWith for Command {
    fn output_with(&mut self, input: &str) -> Option<std::process::Output> {
        use std::io::Write;
        let mut child = self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().ok()?;
        child.stdin.take()?.write_all(input.as_bytes()).ok()?;
        child.wait_with_output().ok()
    }
}
