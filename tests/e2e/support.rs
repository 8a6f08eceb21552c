//! The test harness: a suite per test with a fresh database, clients, and waiting without sleeping
//! longer than needed.

use std::{future::Future, path::Path, sync::Arc, time::Duration};

use kefu::suite;
use kefu_kit::{Config, Shutdown, clock::SharedClock, shutdown::ShutdownTrigger};
use kefu_proto::gateway::v1::{
    Channel as ComplaintChannel, Complaint, Contact, CreateComplaintRequest, complaints_client::ComplaintsClient,
};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tonic::transport::Channel;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test once on SQLite and once on PostgreSQL.
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name(crate::support::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name(crate::support::Backend::Postgres).await
            }
        }
    };
}
pub(crate) use on_both_backends;

pub fn postgres_admin_url() -> String {
    std::env::var("KEFU_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// A fresh PostgreSQL database, dropped by [`TestDatabase::drop_database`].
pub struct TestDatabase {
    pub name: String,
    pub url: String,
}

impl TestDatabase {
    pub async fn create() -> TestDatabase {
        let admin_url = postgres_admin_url();
        let admin = Database::connect(&admin_url)
            .await
            .unwrap_or_else(|error| panic!("PostgreSQL at {admin_url} is needed for this test: {error}"));
        let name = format!("kefu_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute(Statement::from_string(DbBackend::Postgres, format!("CREATE DATABASE {name}")))
            .await
            .expect("create the test database");
        let _ = admin.close().await;
        let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
        TestDatabase { url: format!("{base}/{name}"), name }
    }

    pub async fn drop_database(&self) {
        if let Ok(admin) = Database::connect(&postgres_admin_url()).await {
            let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
            let _ = admin.execute(Statement::from_string(DbBackend::Postgres, drop)).await;
            let _ = admin.close().await;
        }
    }
}

/// A configuration with every address on a free loopback port and storage in `dir` or `database`.
pub fn test_config(dir: &Path, database: Option<&TestDatabase>) -> Config {
    let mut vars = vec![
        ("KEFU_DATA_DIR".to_owned(), dir.join("data").display().to_string()),
        ("KEFU_GATEWAY_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        // A webhook endpoint that never answers is given up on after 3 seconds.
        ("KEFU_WEBHOOK_TIMEOUT".to_owned(), "3".to_owned()),
        // HTTPS webhook endpoints of the tests present certificates of this test CA.
        (
            "KEFU_WEBHOOK_CA_FILE".to_owned(),
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/webhook-tls/ca.pem").to_owned(),
        ),
    ];
    for service in ["INTAKE", "INSPECTION", "CLAIMS", "SETTLEMENT", "ARCHIVES"] {
        vars.push((format!("KEFU_{service}_ADDR"), "127.0.0.1:0".to_owned()));
    }
    if let Some(database) = database {
        vars.push(("KEFU_DATABASE_URL".to_owned(), database.url.clone()));
    }
    Config::from_lookup(|key| vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()))
        .expect("a valid test configuration")
}

/// The whole suite, in this process.
pub struct TestSuite {
    pub gateway: Channel,
    /// The configuration the suite runs with, its addresses as bound.
    pub config: Config,

    trigger: ShutdownTrigger,
    task: tokio::task::JoinHandle<Result<(), suite::SuiteError>>,
    database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl TestSuite {
    pub async fn start(backend: Backend, clock: SharedClock) -> TestSuite {
        TestSuite::start_with(backend, clock, None).await
    }

    /// Starts the suite; `policy`, if given, is the text of a routing policy file.
    pub async fn start_with(backend: Backend, clock: SharedClock, policy: Option<&str>) -> TestSuite {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let mut config = test_config(dir.path(), database.as_ref());
        if let Some(policy) = policy {
            let path = dir.path().join("routing-policy.txt");
            std::fs::write(&path, policy).expect("write the policy");
            config.routing_policy = Some(path);
        }
        let bound = suite::bind(config, &suite::all_targets()).await.expect("bind loopback ports");
        let config = bound.config.clone();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(suite::run(bound, clock, shutdown));
        let gateway = Channel::from_shared(format!("http://{}", config.gateway_addr)).expect("a URL").connect_lazy();
        let suite = TestSuite { gateway, config, trigger, task, database, _dir: dir };
        suite.wait_until_serving().await;
        suite
    }

    pub fn complaints(&self) -> ComplaintsClient<Channel> {
        ComplaintsClient::new(self.gateway.clone())
    }

    async fn wait_until_serving(&self) {
        let health = tonic_health::pb::health_client::HealthClient::new(self.gateway.clone());
        eventually("the gateway serves", || {
            let mut health = health.clone();
            async move {
                health
                    .check(tonic_health::pb::HealthCheckRequest { service: String::new() })
                    .await
                    .is_ok()
                    .then_some(())
            }
        })
        .await;
    }

    /// Stops the suite and checks that it stopped cleanly.
    pub async fn stop(self) {
        self.trigger.trigger();
        let result = tokio::time::timeout(Duration::from_secs(20), self.task).await;
        if let Some(database) = &self.database {
            database.drop_database().await;
        }
        match result {
            Ok(Ok(Ok(()))) => {}
            other => panic!("the suite did not stop cleanly: {other:?}"),
        }
    }
}

/// Polls `check` until it returns `Some`, for at most 30 seconds.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A complaint a branch office might send.
pub fn complaint(category: &str, waybill: &str) -> Complaint {
    Complaint {
        category: category.into(),
        waybill_number: waybill.into(),
        channel: ComplaintChannel::Phone as i32,
        description: "货物晚到三天,客户多次查询".into(),
        customer_request: "尽快送达".into(),
        contact: Some(Contact { name: "王先生".into(), phone: "13800000000".into() }),
        branch: "SH01".into(),
        ..Default::default()
    }
}

pub fn create(request_id: &str, complaint: Complaint) -> CreateComplaintRequest {
    CreateComplaintRequest { request_id: request_id.into(), complaint: Some(complaint), from_request: String::new() }
}

/// A request carrying the caller's identity headers.
pub fn as_user<T>(message: T, user: &str, department: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert("x-kefu-user", user.parse().expect("ascii"));
    request.metadata_mut().insert("x-kefu-department", department.parse().expect("ascii"));
    request
}

/// The field names of an `INVALID_ARGUMENT` status's `google.rpc.BadRequest`.
pub fn violated_fields(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|violation| violation.field).collect())
        .unwrap_or_default()
}

pub fn system_clock() -> SharedClock {
    Arc::new(kefu_kit::SystemClock)
}
