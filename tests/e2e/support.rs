//! The test harness: a suite per test with a fresh database, clients, and waiting without sleeping
//! longer than needed.

use std::{
    collections::HashMap,
    future::Future,
    path::Path,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Duration,
};

use kefu::suite;
use kefu_kit::{Config, Shutdown, clock::SharedClock, shutdown::ShutdownTrigger};
use kefu_proto::gateway::v1::{
    Channel as ComplaintChannel, Complaint, Contact, CreateComplaintRequest, CreateTokenRequest, GetComplaintRequest,
    State, Token, complaints_client::ComplaintsClient, tokens_client::TokensClient,
};
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use tonic::{body::Body, transport::Channel};

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

/// Intake's database alone, fresh, with no server in front of it: for tests of what the kit keeps
/// in a service's database.
pub struct IntakeDatabase {
    pub context: kefu_kit::server::ServiceContext,
    database: Option<TestDatabase>,
    _dir: tempfile::TempDir,
}

impl IntakeDatabase {
    pub async fn open(backend: Backend, clock: SharedClock) -> IntakeDatabase {
        let dir = tempfile::tempdir().expect("a directory");
        let database = match backend {
            Backend::Postgres => Some(TestDatabase::create().await),
            Backend::Sqlite => None,
        };
        let config = test_config(dir.path(), database.as_ref());
        let context = kefu_kit::server::ServiceContext::open(
            kefu_kit::config::ServiceName::Intake,
            &config,
            clock,
            kefu_intake::MIGRATIONS,
        )
        .await
        .expect("intake's database");
        IntakeDatabase { context, database, _dir: dir }
    }

    /// Closes the connections and drops the PostgreSQL database.
    pub async fn close(self) {
        let _ = self.context.db.close().await;
        if let Some(database) = self.database {
            database.drop_database().await;
        }
    }
}

/// A configuration with every address on a free loopback port and storage in `dir` or `database`.
pub fn test_config(dir: &Path, database: Option<&TestDatabase>) -> Config {
    let mut vars = vec![
        ("KEFU_DATA_DIR".to_owned(), dir.join("data").display().to_string()),
        ("KEFU_INTERNAL_KEY".to_owned(), INTERNAL_KEY.to_owned()),
        ("KEFU_BOOTSTRAP_TOKEN".to_owned(), BOOTSTRAP_TOKEN.to_owned()),
        ("KEFU_GATEWAY_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        ("KEFU_CONSOLE_ADDR".to_owned(), "127.0.0.1:0".to_owned()),
        // A webhook endpoint that never answers is given up on after 3 seconds.
        ("KEFU_WEBHOOK_TIMEOUT".to_owned(), "3".to_owned()),
        // A test drives many calls as one principal; the tests of the rate set their own.
        ("KEFU_RATE_LIMIT".to_owned(), "100000".to_owned()),
        // The authorization matrix is refused by the hundred from one address; the tests of
        // refusals set their own.
        ("KEFU_REFUSALS_PER_PEER".to_owned(), "100000".to_owned()),
        // The tests' webhook endpoints are servers on loopback, which production refuses.
        ("KEFU_WEBHOOK_ALLOW_PRIVATE".to_owned(), "127.0.0.0/8".to_owned()),
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

/// A fixture file of the tests.
pub fn fixture(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(path)
}

/// A channel to the suite's gateway: plaintext, or TLS trusting the test CA when the suite serves
/// TLS — presenting the test branch system's certificate if `with_certificate`.
pub fn gateway_channel(config: &Config, with_certificate: bool) -> Channel {
    if config.tls.is_none() {
        return Channel::from_shared(format!("http://{}", config.gateway_addr)).expect("a URL").connect_lazy();
    }
    let read = |path: &str| std::fs::read(fixture(path)).expect("a fixture");
    let mut tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(read("webhook-tls/ca.pem")))
        .domain_name("localhost");
    if with_certificate {
        tls = tls.identity(tonic::transport::Identity::from_pem(
            read("gateway-tls/client.pem"),
            read("gateway-tls/client.key"),
        ));
    }
    Channel::from_shared(format!("https://{}", config.gateway_addr))
        .expect("a URL")
        .tls_config(tls)
        .expect("a TLS configuration")
        .connect_lazy()
}

/// The internal key and bootstrap secret of every suite the tests start.
pub const INTERNAL_KEY: &str = "test-internal-key-0123456789abcdef0123456789";
pub const BOOTSTRAP_TOKEN: &str = "test-bootstrap-secret-0123456789abcdef0123";

/// Who a test calls as. Set on a request with [`as_user`], [`with_roles`], [`with_branch`],
/// [`with_clearance`]; a request without one is made by an agent of the department that owns the
/// method (the service center for the Complaints API), and Tokens calls by the bootstrap admin.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    pub user: String,
    pub department: String,
    pub branch: String,
    pub roles: Vec<String>,
    pub clearance: String,
}

impl Principal {
    pub fn staff(user: &str, department: &str, roles: &[&str]) -> Principal {
        Principal {
            user: user.into(),
            department: department.into(),
            branch: String::new(),
            roles: roles.iter().map(|role| role.to_string()).collect(),
            clearance: String::new(),
        }
    }

    /// An agent of the department that owns the method at `path`.
    fn default_for(path: &str) -> Principal {
        let package = path.trim_start_matches('/').split('.').nth(1).unwrap_or("");
        let department = match package {
            "inspection" | "claims" | "settlement" | "archives" => package,
            _ => "intake",
        };
        Principal::staff(&format!("agent-{department}"), department, &["agent"])
    }
}

/// The gateway as the tests call it: every call carries a real kefu token for its [`Principal`],
/// created through `kefu.gateway.v1.Tokens` with the bootstrap secret the first time it is needed.
pub type Gateway = TokenChannel;

#[derive(Clone)]
pub struct TokenChannel {
    channel: Channel,
    tokens: Arc<Mutex<HashMap<Principal, String>>>,
}

impl TokenChannel {
    pub fn new(channel: Channel) -> TokenChannel {
        TokenChannel { channel, tokens: Arc::default() }
    }

    /// The secret of a token for `principal`, created on first use.
    pub async fn token(&self, principal: &Principal) -> String {
        self.try_token(principal).await.unwrap_or_else(|status| panic!("a token for {principal:?}: {status:?}"))
    }

    pub async fn try_token(&self, principal: &Principal) -> Result<String, tonic::Status> {
        if let Some(token) = self.tokens.lock().expect("not poisoned").get(principal) {
            return Ok(token.clone());
        }
        let mut tokens = TokensClient::new(self.channel.clone());
        let mut request = tonic::Request::new(CreateTokenRequest {
            request_id: uuid::Uuid::new_v4().to_string(),
            token: Some(Token {
                subject: principal.user.clone(),
                department: principal.department.clone(),
                branch: principal.branch.clone(),
                roles: principal.roles.clone(),
                clearance: principal.clearance.clone(),
                ..Default::default()
            }),
        });
        bearer(&mut request, BOOTSTRAP_TOKEN);
        let secret = tokens.create_token(request).await?.into_inner().secret;
        self.tokens.lock().expect("not poisoned").insert(principal.clone(), secret.clone());
        Ok(secret)
    }
}

/// Sets `authorization: Bearer <secret>` on a request.
pub fn bearer<T>(request: &mut tonic::Request<T>, secret: &str) {
    request.metadata_mut().insert("authorization", format!("Bearer {secret}").parse().expect("ascii"));
}

impl tower::Service<http::Request<Body>> for TokenChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower::Service::poll_ready(&mut self.channel, cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let this = self.clone();
        let mut channel = self.channel.clone();
        std::mem::swap(&mut channel, &mut self.channel);
        Box::pin(async move {
            if !request.headers().contains_key("authorization") {
                let path = request.uri().path().to_owned();
                let secret = if path.starts_with("/kefu.gateway.v1.Tokens/")
                    && request.extensions().get::<Principal>().is_none()
                {
                    Some(BOOTSTRAP_TOKEN.to_owned())
                } else {
                    let principal = request
                        .extensions()
                        .get::<Principal>()
                        .cloned()
                        .unwrap_or_else(|| Principal::default_for(&path));
                    // A gateway not up yet: the call goes without a token and fails as it would have.
                    this.try_token(&principal).await.ok()
                };
                if let Some(secret) = secret {
                    request.headers_mut().insert("authorization", format!("Bearer {secret}").parse().expect("ascii"));
                }
            }
            tower::Service::call(&mut channel, request).await
        })
    }
}

/// The whole suite, in this process.
pub struct TestSuite {
    pub gateway: Gateway,
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
        TestSuite::start_configured(backend, clock, |config, dir| {
            if let Some(policy) = policy {
                let path = dir.join("routing-policy.txt");
                std::fs::write(&path, policy).expect("write the policy");
                config.routing_policy = Some(path);
            }
        })
        .await
    }

    /// Starts the suite with the test configuration changed by `edit`, given a directory for files.
    pub async fn start_configured(
        backend: Backend,
        clock: SharedClock,
        edit: impl FnOnce(&mut Config, &Path),
    ) -> TestSuite {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let database = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => Some(TestDatabase::create().await),
        };
        let mut config = test_config(dir.path(), database.as_ref());
        edit(&mut config, dir.path());
        let targets = suite::all_targets(&config);
        let bound = suite::bind(config, &targets).await.expect("bind loopback ports");
        let config = bound.config.clone();
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(suite::run(bound, clock, shutdown));
        let gateway = TokenChannel::new(gateway_channel(&config, true));
        let suite = TestSuite { gateway, config, trigger, task, database, _dir: dir };
        suite.wait_until_serving().await;
        suite
    }

    /// The connections the suite holds to its PostgreSQL database now (none on SQLite).
    pub async fn postgres_connections(&self) -> i64 {
        let Some(database) = &self.database else { return 0 };
        let admin = Database::connect(&postgres_admin_url()).await.expect("PostgreSQL");
        let count = format!("SELECT count(*) AS held FROM pg_stat_activity WHERE datname = '{}'", database.name);
        let row = admin
            .query_one(Statement::from_string(DbBackend::Postgres, count))
            .await
            .expect("pg_stat_activity")
            .expect("a row");
        let held: i64 = row.try_get("", "held").expect("a count");
        let _ = admin.close().await;
        held
    }

    pub fn complaints(&self) -> ComplaintsClient<Gateway> {
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

/// Waits until `service` (of the suite `config` describes) holds no event it has not delivered:
/// its relay deletes an outbox row only once the receiver has the event, so from then on nothing
/// more can arrive from it, and a count taken is final. This is how "exactly once" is checked —
/// by the sender having nothing left to send, not by sleeping and hoping.
pub async fn delivered_everything(config: &Config, service: &str) {
    use sea_orm::{EntityTrait, PaginatorTrait};
    let db = kefu_kit::db::connect(config, service).await.expect("the service's database");
    eventually(&format!("{service} has delivered every event it holds"), || {
        let db = db.clone();
        async move { (kefu_kit::outbox::Entity::find().count(&db).await.ok()? == 0).then_some(()) }
    })
    .await;
    let _ = db.close().await;
}

/// Waits until the complaint `name` has been accepted by its owner: the owner's acceptance is back
/// at intake.
pub async fn accepted_by_owner(client: &ComplaintsClient<Gateway>, name: &str) {
    eventually(&format!("{name} is accepted by its owner"), || {
        let mut client = client.clone();
        let name = name.to_owned();
        async move {
            let complaint = client.get_complaint(GetComplaintRequest { name }).await.ok()?.into_inner();
            (complaint.state == State::Accepted as i32).then_some(())
        }
    })
    .await;
}

/// A loopback port free a moment ago, for a process the test starts.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `count` free loopback ports, all different: each is held until all are found, so the kernel
/// cannot hand the same one out twice.
pub fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> =
        (0..count).map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("a free port")).collect();
    held.iter().map(|listener| listener.local_addr().expect("its address").port()).collect()
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

/// A request made by `user`, an agent of `department` (with a token of their own).
pub fn as_user<T>(message: T, user: &str, department: &str) -> tonic::Request<T> {
    as_principal(message, Principal::staff(user, department, &["agent"]))
}

pub fn as_principal<T>(message: T, principal: Principal) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.extensions_mut().insert(principal);
    request
}

fn principal_of<T>(request: &mut tonic::Request<T>) -> &mut Principal {
    if request.extensions().get::<Principal>().is_none() {
        request.extensions_mut().insert(Principal::staff("anyone", "intake", &["agent"]));
    }
    request.extensions_mut().get_mut::<Principal>().expect("just set")
}

/// The same caller with these roles (comma-separated) instead.
pub fn with_roles<T>(mut request: tonic::Request<T>, roles: &str) -> tonic::Request<T> {
    principal_of(&mut request).roles = roles.split(',').filter(|role| !role.is_empty()).map(str::to_owned).collect();
    request
}

pub fn with_clearance<T>(mut request: tonic::Request<T>, clearance: &str) -> tonic::Request<T> {
    principal_of(&mut request).clearance = clearance.into();
    request
}

/// A request of branch `code`'s own system.
pub fn as_branch_system<T>(message: T, code: &str) -> tonic::Request<T> {
    let principal = Principal {
        user: format!("branch-{code}-system"),
        department: String::new(),
        branch: code.into(),
        roles: vec!["branch_system".into()],
        clearance: String::new(),
    };
    as_principal(message, principal)
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
