//! The one configuration of the `kefu` binary, read from environment variables only. This table
//! is the documentation; `kefu --help` and README.md point here.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `KEFU_DATABASE_URL` | unset: SQLite files `<data dir>/<service>.db` | `postgres://user@host:port/db`: every service uses this database, each in its own schema named after it; a password in it (`user:…@`, `password=`, `passwd=`, `sslpassword=`) is never shown (`redact_password`) |
//! | `KEFU_DATABASE_POOL` | per service: intake 10, every other service and the gateway 2 (20 in all for `kefu up`) | PostgreSQL connections each service's pool holds at most, the same for every service (1–100) |
//! | `KEFU_DATA_DIR` | `./data` | where the SQLite files live |
//! | `KEFU_TIME_ZONE` | `Asia/Shanghai` | the company's time zone (IANA name): case-number dates, deadlines |
//! | `KEFU_GATEWAY_ADDR` | `127.0.0.1:50051` | where the gateway listens |
//! | `KEFU_GATEWAY_URL` | `http://` + `KEFU_GATEWAY_ADDR` | how services reach the gateway (settlement files late-remittance complaints there; in Kubernetes: `http://gateway:50051`) |
//! | `KEFU_<SERVICE>_ADDR` | intake `127.0.0.1:50061`, inspection `…62`, claims `…63`, settlement `…64`, archives `…65` | where that service listens |
//! | `KEFU_<SERVICE>_URL` | `http://` + its `_ADDR` | how the others reach it (in Kubernetes: `http://intake:50061`) |
//! | `KEFU_ROUTING_POLICY` | unset: the handbook's table | a routing policy file for the gateway (see `gateway/src/policy.rs`) |
//! | `KEFU_CLAIMS_POLICY` | unset: the handbook's standards | a claims policy file: compensation percentages, authority limit (see `services/claims/src/compensation-policy.txt`) |
//! | `KEFU_INSPECTION_POLICY` | unset: the handbook's standards | an inspection policy file: fines table, hours after the written report, recurrence window (see `services/inspection/src/inspection-policy.txt`) |
//! | `KEFU_WEBHOOK_TIMEOUT` | `10` | seconds one webhook POST to a branch's endpoint may take, connecting included; then it counts as failed and is retried later |
//! | `KEFU_WEBHOOK_CA_FILE` | unset: Mozilla's roots only | a PEM file of CA certificates trusted for `https://` webhook endpoints besides Mozilla's roots (a company CA of the branches' systems) |
//! | `KEFU_WEBHOOK_ALLOW_PRIVATE` | unset: public addresses only | networks webhooks may be posted to although they are not public, comma-separated: `10.20.0.0/16,fd00::/8` (a company's own branch systems) |
//! | `KEFU_WEBHOOK_MAX_PER_BRANCH` | `5` | active webhook endpoints one branch may have |
//! | `KEFU_INTERNAL_KEY` | `kefu up`: made at start; `kefu serve`: required | the secret (at least 32 characters) with which the gateway and the services sign the calls they make to each other (`kit::trust`); the same in every process of one installation, from the Kubernetes Secret `kefu-internal-key` |
//! | `KEFU_BOOTSTRAP_TOKEN` | unset: no bootstrap identity | a secret (at least 32 characters) that authenticates at the gateway as subject `bootstrap` with the single role `admin`: enough to create the first tokens, nothing else |
//! | `KEFU_AUDIT_KEY` | unset: a key file `<KEFU_DATA_DIR>/audit.key` made on first start | the secret (at least 32 characters) archives seals its audit chain with, so that no one who can write the database can rewrite the log and have it verify; in Kubernetes the Secret `kefu-audit-key` |
//! | `KEFU_AUDIT_HEAD_FILE` | `<KEFU_DATA_DIR>/audit.head` | the file (mode 0600) where archives anchors its audit chain's last sequence number and seal after each append, outside the database, so that entries cut off or a chain rewritten and sealed anew are reported (docs/operations.md, "The audit chain"); keep it where the database's users cannot write — in Kubernetes a volume of the archives pod |
//! | `KEFU_WEBHOOK_KEY` | unset: a key file `<KEFU_DATA_DIR>/webhook.key` made on first start | the secret (at least 32 characters) webhook endpoints' shared secrets are encrypted with in the database; in Kubernetes the Secret `kefu-webhook-key` |
//! | `KEFU_TLS_CERT_FILE`, `KEFU_TLS_KEY_FILE` | unset: the gateway speaks plaintext (for `kefu up` on loopback) | PEM certificate chain and key the gateway serves TLS with; both or neither |
//! | `KEFU_TLS_CLIENT_CA_FILE` | unset: no client certificates asked for | PEM CA certificates of branch systems' client certificates: with it, a caller without a certificate signed by one of them is refused at the handshake |
//! | `KEFU_ACCESS_POLICY` | unset: the built-in table | the access table: who may call which RPC (see `gateway/src/access-policy.txt`) |
//! | `KEFU_OIDC_ISSUER`, `KEFU_OIDC_AUDIENCE`, `KEFU_OIDC_JWKS_FILE` | unset: no single sign-on | staff's OIDC bearer JWTs are verified against the keys in the JWKS file (re-read within 5 seconds of a change), with this `iss` and `aud`; all three or none |
//! | `KEFU_OIDC_SUBJECT_CLAIM`, `KEFU_OIDC_DEPARTMENT_CLAIM`, `KEFU_OIDC_BRANCH_CLAIM`, `KEFU_OIDC_ROLES_CLAIM`, `KEFU_OIDC_CLEARANCE_CLAIM` | `sub`, `department`, `branch`, `roles`, `clearance` | which JWT claims carry the staff member's id, department, branch, roles (an array, or a string separated by spaces or commas) and clearance |
//! | `KEFU_MAX_CONNECTIONS`, `KEFU_MAX_CONNECTIONS_PER_PEER`, `KEFU_HANDSHAKE_TIMEOUT`, `KEFU_MAX_CALLS_PER_CONNECTION`, `KEFU_CALL_TIMEOUT`, `KEFU_KEEPALIVE`, `KEFU_MAX_CONNECTION_AGE`, `KEFU_RATE_LIMIT`, `KEFU_REFUSALS_PER_PEER`, `KEFU_DRAIN` | see `kit::limits` | what every server bounds; times in seconds, the rate in calls per second per subject |
//! | `KEFU_EVIDENCE_FILES_PER_CLAIM`, `KEFU_EVIDENCE_MIB_PER_CLAIM`, `KEFU_EVIDENCE_FILES_PER_DAY`, `KEFU_EVIDENCE_MIB_PER_DAY` | 50, 100, 200, 200 (see `kit::limits`) | the evidence one claim may hold, and one principal attach in a company day, in files and MiB |
//! | `KEFU_LOG` | `info` | log filter, `tracing-subscriber` syntax |
//! | `KEFU_LOG_FORMAT` | `text` | `json`: one JSON object a line, with the `trace_id` and `span_id` of the call (for a log collector) |
//! | `OTEL_EXPORTER_OTLP_ENDPOINT` and the other standard `OTEL_*` variables | unset: no traces exported | where servers export their spans over OTLP/gRPC (see `kit::telemetry`) |
//! | `KEFU_CONSOLE_ADDR` | `127.0.0.1:8080` | where `kefu up` (and `kefu serve console`) serves the service center's console, a web page; `off`: `kefu up` serves none |
//! | `KEFU_CONSOLE_OIDC_AUTHORIZE_URL`, `KEFU_CONSOLE_OIDC_TOKEN_URL`, `KEFU_CONSOLE_OIDC_CLIENT_ID`, `KEFU_CONSOLE_OIDC_SCOPE` | unset: staff sign in to the console with a token | the identity provider's authorization and token endpoints and the console's client id (a public client: authorization code with PKCE), all three or none; scope default `openid`. The token it returns must be one the gateway accepts (`KEFU_OIDC_*`) |
//! | `KEFU_METRICS_ADDR` | unset: no metrics | where Prometheus metrics are served, at `/metrics` (e.g. `0.0.0.0:9090`); one endpoint per process (see `kit::metrics`) |
//!
//! `<SERVICE>` is `INTAKE`, `INSPECTION`, `CLAIMS`, `SETTLEMENT` or `ARCHIVES`.

use std::{fmt, net::SocketAddr, path::PathBuf, str::FromStr};

use chrono_tz::Tz;

/// The five services, by the names the routing policy, the metadata and the events use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceName {
    Intake,
    Inspection,
    Claims,
    Settlement,
    Archives,
}

impl ServiceName {
    pub const ALL: [ServiceName; 5] = [
        ServiceName::Intake,
        ServiceName::Inspection,
        ServiceName::Claims,
        ServiceName::Settlement,
        ServiceName::Archives,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceName::Intake => "intake",
            ServiceName::Inspection => "inspection",
            ServiceName::Claims => "claims",
            ServiceName::Settlement => "settlement",
            ServiceName::Archives => "archives",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            ServiceName::Intake => 50061,
            ServiceName::Inspection => 50062,
            ServiceName::Claims => 50063,
            ServiceName::Settlement => 50064,
            ServiceName::Archives => 50065,
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL.into_iter().find(|service| service.as_str() == name).ok_or_else(|| {
            format!("unknown service {name:?}; the services are intake, inspection, claims, settlement, archives")
        })
    }
}

/// Where one service listens and how the others reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub listen: SocketAddr,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// `KEFU_DATABASE_URL`: a secret, as it may hold a password (never in `Debug`; printed only
    /// through [`redact_password`]).
    pub database_url: Option<Secret>,
    /// Connections each service's PostgreSQL pool holds at most, if set (`KEFU_DATABASE_POOL`);
    /// otherwise each service's own default (`crate::db::pool_size`).
    pub database_pool: Option<u32>,
    pub data_dir: PathBuf,
    pub time_zone: Tz,
    pub gateway_addr: SocketAddr,
    /// Where services reach the gateway (settlement files late-remittance complaints there).
    pub gateway_url: String,
    /// Indexed like [`ServiceName::ALL`].
    pub services: [Endpoint; 5],
    pub routing_policy: Option<PathBuf>,
    pub claims_policy: Option<PathBuf>,
    pub inspection_policy: Option<PathBuf>,
    /// How long one webhook POST may take.
    pub webhook_timeout: std::time::Duration,
    /// CA certificates trusted for HTTPS webhook endpoints besides Mozilla's roots.
    pub webhook_ca_file: Option<PathBuf>,
    /// Networks webhooks may go to although they are not public (parsed by intake).
    pub webhook_allow_private: String,
    /// Active webhook endpoints one branch may have.
    pub webhook_max_per_branch: usize,
    /// The key kefu's processes sign their calls to each other with (`crate::trust`).
    pub internal_key: Option<Secret>,
    /// The secret of the bootstrap administrator, if there is one.
    pub bootstrap_token: Option<Secret>,
    /// The key archives seals its audit chain with.
    pub audit_key: Option<Secret>,
    /// Where archives anchors its audit chain's head (`KEFU_AUDIT_HEAD_FILE`); unset, `audit.head`
    /// in the data directory.
    pub audit_head_file: Option<PathBuf>,
    /// The key webhook secrets are encrypted with at rest.
    pub webhook_key: Option<Secret>,
    /// The gateway's TLS: certificate chain and key files, and the CA of client certificates.
    pub tls: Option<TlsFiles>,
    /// The access table replacing the built-in one.
    pub access_policy: Option<PathBuf>,
    /// Staff single sign-on, if configured.
    pub oidc: Option<OidcConfig>,
    /// What every server bounds.
    pub limits: crate::limits::Limits,
    pub log: String,
    pub log_format: crate::telemetry::LogFormat,
    /// Where `/metrics` is served (`kit::metrics`); `None`: not served, nothing sampled.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the console is served (`KEFU_CONSOLE_ADDR`); `None` (`off`): `kefu up` serves none.
    pub console_addr: Option<SocketAddr>,
    /// The console's single sign-on (`KEFU_CONSOLE_OIDC_*`); `None`: staff sign in with a token.
    pub console_sign_on: Option<ConsoleSignOn>,
}

/// A secret from the environment: it never appears in `Debug` output, logs or errors.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The least length of `KEFU_INTERNAL_KEY` and `KEFU_BOOTSTRAP_TOKEN`.
pub const MIN_SECRET_LEN: usize = 32;

/// The files of the gateway's TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
}

/// How the console signs staff in through the company's identity provider: the OAuth 2.0
/// authorization code flow with PKCE, run by the page itself as a public client. The token it gets
/// is what the gateway verifies ([`OidcConfig`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsoleSignOn {
    pub authorize_url: String,
    pub token_url: String,
    pub client_id: String,
    pub scope: String,
}

/// Where staff's single sign-on keys are, and which claims say what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcConfig {
    pub issuer: String,
    pub audience: String,
    pub jwks_file: PathBuf,
    pub subject_claim: String,
    pub department_claim: String,
    pub branch_claim: String,
    pub roles_claim: String,
    pub clearance_claim: String,
}

#[derive(Debug, thiserror::Error)]
#[error("{variable}={value:?}: {problem}")]
pub struct ConfigError {
    pub variable: String,
    pub value: String,
    pub problem: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|key| std::env::var(key).ok())
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let get = |key: &str| lookup(key).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let parse_addr = |key: &str, default: SocketAddr| -> Result<SocketAddr, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| ConfigError {
                    variable: key.into(),
                    value,
                    problem: "expected an address like 127.0.0.1:50051".into(),
                }),
            }
        };
        let loopback = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));

        let mut services = Vec::with_capacity(5);
        for service in ServiceName::ALL {
            let upper = service.as_str().to_uppercase();
            let listen = parse_addr(&format!("KEFU_{upper}_ADDR"), loopback(service.default_port()))?;
            let url = get(&format!("KEFU_{upper}_URL")).unwrap_or_else(|| reach_url(listen));
            services.push(Endpoint { listen, url });
        }
        let services: [Endpoint; 5] = services.try_into().map_err(|_| ConfigError {
            variable: "KEFU_*_ADDR".into(),
            value: String::new(),
            problem: "internal: expected five services".into(),
        })?;

        let time_zone = match get("KEFU_TIME_ZONE") {
            None => chrono_tz::Asia::Shanghai,
            Some(value) => value.parse().map_err(|_| ConfigError {
                variable: "KEFU_TIME_ZONE".into(),
                value,
                problem: "expected an IANA time zone name like Asia/Shanghai".into(),
            })?,
        };
        let database_url = get("KEFU_DATABASE_URL").map(Secret::new);
        if let Some(url) = database_url.as_ref().map(Secret::expose)
            && !(url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            return Err(ConfigError {
                    variable: "KEFU_DATABASE_URL".into(),
                    value: redact_password(url),
                    problem: "expected a PostgreSQL URL like postgres://user@127.0.0.1:5432/kefu; leave it unset for SQLite files under KEFU_DATA_DIR".into(),
                });
        }
        let gateway_addr = parse_addr("KEFU_GATEWAY_ADDR", loopback(50051))?;
        let gateway_url = get("KEFU_GATEWAY_URL").unwrap_or_else(|| reach_url(gateway_addr));
        let webhook_timeout = match get("KEFU_WEBHOOK_TIMEOUT") {
            None => std::time::Duration::from_secs(10),
            Some(value) => value
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0 && *seconds <= 300.0)
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(|| ConfigError {
                    variable: "KEFU_WEBHOOK_TIMEOUT".into(),
                    value,
                    problem: "expected seconds, more than 0 and at most 300, like 10".into(),
                })?,
        };
        let secret = |key: &str| -> Result<Option<Secret>, ConfigError> {
            match get(key) {
                None => Ok(None),
                Some(value) if value.len() >= MIN_SECRET_LEN && value.is_ascii() => Ok(Some(Secret(value))),
                Some(_) => Err(ConfigError {
                    variable: key.into(),
                    value: "***".into(),
                    problem: format!(
                        "a secret of at least {MIN_SECRET_LEN} ASCII characters is needed, e.g. from `openssl rand -hex 32`"
                    ),
                }),
            }
        };
        let oidc = match (get("KEFU_OIDC_ISSUER"), get("KEFU_OIDC_AUDIENCE"), get("KEFU_OIDC_JWKS_FILE")) {
            (None, None, None) => None,
            (Some(issuer), Some(audience), Some(jwks_file)) => {
                let claim = |key: &str, default: &str| get(key).unwrap_or_else(|| default.to_owned());
                Some(OidcConfig {
                    issuer,
                    audience,
                    jwks_file: PathBuf::from(jwks_file),
                    subject_claim: claim("KEFU_OIDC_SUBJECT_CLAIM", "sub"),
                    department_claim: claim("KEFU_OIDC_DEPARTMENT_CLAIM", "department"),
                    branch_claim: claim("KEFU_OIDC_BRANCH_CLAIM", "branch"),
                    roles_claim: claim("KEFU_OIDC_ROLES_CLAIM", "roles"),
                    clearance_claim: claim("KEFU_OIDC_CLEARANCE_CLAIM", "clearance"),
                })
            }
            (issuer, audience, jwks) => {
                let missing: Vec<&str> = [
                    ("KEFU_OIDC_ISSUER", issuer.is_none()),
                    ("KEFU_OIDC_AUDIENCE", audience.is_none()),
                    ("KEFU_OIDC_JWKS_FILE", jwks.is_none()),
                ]
                .into_iter()
                .filter(|(_, missing)| *missing)
                .map(|(key, _)| key)
                .collect();
                return Err(ConfigError {
                    variable: missing.join(", "),
                    value: String::new(),
                    problem:
                        "single sign-on needs all three of KEFU_OIDC_ISSUER, KEFU_OIDC_AUDIENCE and KEFU_OIDC_JWKS_FILE"
                            .into(),
                });
            }
        };
        let console_sign_on = match (
            get("KEFU_CONSOLE_OIDC_AUTHORIZE_URL"),
            get("KEFU_CONSOLE_OIDC_TOKEN_URL"),
            get("KEFU_CONSOLE_OIDC_CLIENT_ID"),
        ) {
            (None, None, None) => None,
            (Some(authorize_url), Some(token_url), Some(client_id)) => {
                for (variable, url) in
                    [("KEFU_CONSOLE_OIDC_AUTHORIZE_URL", &authorize_url), ("KEFU_CONSOLE_OIDC_TOKEN_URL", &token_url)]
                {
                    let origin = url.split('/').nth(2).unwrap_or_default();
                    if !(url.starts_with("https://") || url.starts_with("http://")) || origin.is_empty() {
                        return Err(ConfigError {
                            variable: variable.into(),
                            value: url.clone(),
                            problem: "expected the identity provider's https:// address".into(),
                        });
                    }
                }
                Some(ConsoleSignOn {
                    authorize_url,
                    token_url,
                    client_id,
                    scope: get("KEFU_CONSOLE_OIDC_SCOPE").unwrap_or_else(|| "openid".into()),
                })
            }
            _ => {
                return Err(ConfigError {
                    variable:
                        "KEFU_CONSOLE_OIDC_AUTHORIZE_URL, KEFU_CONSOLE_OIDC_TOKEN_URL, KEFU_CONSOLE_OIDC_CLIENT_ID"
                            .into(),
                    value: String::new(),
                    problem: "the console's single sign-on needs all three".into(),
                });
            }
        };
        let number = |key: &str, range: std::ops::RangeInclusive<u64>, default: u64| -> Result<u64, ConfigError> {
            match get(key) {
                None => Ok(default),
                Some(value) => value.parse::<u64>().ok().filter(|n| range.contains(n)).ok_or_else(|| ConfigError {
                    variable: key.into(),
                    value,
                    problem: format!("expected a whole number from {} to {}", range.start(), range.end()),
                }),
            }
        };
        let tls = match (get("KEFU_TLS_CERT_FILE"), get("KEFU_TLS_KEY_FILE")) {
            (None, None) => None,
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: PathBuf::from(cert),
                key: PathBuf::from(key),
                client_ca: get("KEFU_TLS_CLIENT_CA_FILE").map(PathBuf::from),
            }),
            (cert, _) => {
                return Err(ConfigError {
                    variable: if cert.is_none() { "KEFU_TLS_CERT_FILE" } else { "KEFU_TLS_KEY_FILE" }.into(),
                    value: String::new(),
                    problem: "TLS needs both KEFU_TLS_CERT_FILE and KEFU_TLS_KEY_FILE".into(),
                });
            }
        };
        let defaults = crate::limits::Limits::default();
        let seconds = std::time::Duration::from_secs;
        let limits = crate::limits::Limits {
            max_connections: number("KEFU_MAX_CONNECTIONS", 1..=100_000, defaults.max_connections as u64)? as usize,
            max_connections_per_peer: number(
                "KEFU_MAX_CONNECTIONS_PER_PEER",
                1..=100_000,
                defaults.max_connections_per_peer as u64,
            )? as usize,
            handshake_timeout: seconds(number(
                "KEFU_HANDSHAKE_TIMEOUT",
                1..=300,
                defaults.handshake_timeout.as_secs(),
            )?),
            calls_per_connection: number(
                "KEFU_MAX_CALLS_PER_CONNECTION",
                1..=100_000,
                defaults.calls_per_connection as u64,
            )? as usize,
            call_timeout: seconds(number("KEFU_CALL_TIMEOUT", 1..=3_600, defaults.call_timeout.as_secs())?),
            max_connection_age: seconds(number(
                "KEFU_MAX_CONNECTION_AGE",
                10..=86_400,
                defaults.max_connection_age.as_secs(),
            )?),
            rate_per_principal: number("KEFU_RATE_LIMIT", 1..=1_000_000, u64::from(defaults.rate_per_principal))?
                as u32,
            refusals_per_peer: number("KEFU_REFUSALS_PER_PEER", 1..=1_000_000, u64::from(defaults.refusals_per_peer))?
                as u32,
            drain: seconds(number("KEFU_DRAIN", 0..=300, defaults.drain.as_secs())?),
            evidence: {
                const MIB: u64 = 1024 * 1024;
                let quota = defaults.evidence;
                crate::limits::EvidenceQuota {
                    files_per_claim: number("KEFU_EVIDENCE_FILES_PER_CLAIM", 1..=100_000, quota.files_per_claim)?,
                    bytes_per_claim: number("KEFU_EVIDENCE_MIB_PER_CLAIM", 1..=1_000_000, quota.bytes_per_claim / MIB)?
                        * MIB,
                    files_per_day: number("KEFU_EVIDENCE_FILES_PER_DAY", 1..=1_000_000, quota.files_per_day)?,
                    bytes_per_day: number("KEFU_EVIDENCE_MIB_PER_DAY", 1..=1_000_000, quota.bytes_per_day / MIB)? * MIB,
                }
            },
            ..defaults
        };
        let keepalive = seconds(number("KEFU_KEEPALIVE", 3..=3_600, limits.keepalive_interval.as_secs())?);
        let limits =
            crate::limits::Limits { keepalive_interval: keepalive, keepalive_timeout: keepalive * 2 / 3, ..limits };
        let log_format = match get("KEFU_LOG_FORMAT").as_deref() {
            None | Some("text") => crate::telemetry::LogFormat::Text,
            Some("json") => crate::telemetry::LogFormat::Json,
            Some(other) => {
                return Err(ConfigError {
                    variable: "KEFU_LOG_FORMAT".into(),
                    value: other.into(),
                    problem: "expected text (the default) or json".into(),
                });
            }
        };
        let metrics_addr = match get("KEFU_METRICS_ADDR") {
            None => None,
            Some(_) => Some(parse_addr("KEFU_METRICS_ADDR", loopback(0))?),
        };
        let console_addr = match get("KEFU_CONSOLE_ADDR") {
            Some(off) if off.trim() == "off" => None,
            _ => Some(parse_addr("KEFU_CONSOLE_ADDR", loopback(8080))?),
        };
        let database_pool = match get("KEFU_DATABASE_POOL") {
            None => None,
            Some(_) => Some(number("KEFU_DATABASE_POOL", 1..=100, 0)? as u32),
        };
        Ok(Config {
            database_url,
            database_pool,
            data_dir: get("KEFU_DATA_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("data")),
            time_zone,
            gateway_addr,
            gateway_url,
            services,
            routing_policy: get("KEFU_ROUTING_POLICY").map(PathBuf::from),
            claims_policy: get("KEFU_CLAIMS_POLICY").map(PathBuf::from),
            inspection_policy: get("KEFU_INSPECTION_POLICY").map(PathBuf::from),
            webhook_timeout,
            webhook_ca_file: get("KEFU_WEBHOOK_CA_FILE").map(PathBuf::from),
            webhook_allow_private: get("KEFU_WEBHOOK_ALLOW_PRIVATE").unwrap_or_default(),
            webhook_max_per_branch: match get("KEFU_WEBHOOK_MAX_PER_BRANCH") {
                None => 5,
                Some(value) => value.parse().ok().filter(|max| (1..=100).contains(max)).ok_or_else(|| ConfigError {
                    variable: "KEFU_WEBHOOK_MAX_PER_BRANCH".into(),
                    value,
                    problem: "expected a number of endpoints from 1 to 100".into(),
                })?,
            },
            internal_key: secret("KEFU_INTERNAL_KEY")?,
            bootstrap_token: secret("KEFU_BOOTSTRAP_TOKEN")?,
            audit_key: secret("KEFU_AUDIT_KEY")?,
            audit_head_file: get("KEFU_AUDIT_HEAD_FILE").map(PathBuf::from),
            webhook_key: secret("KEFU_WEBHOOK_KEY")?,
            access_policy: get("KEFU_ACCESS_POLICY").map(PathBuf::from),
            oidc,
            limits,
            tls,
            log: get("KEFU_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            metrics_addr,
            console_addr,
            console_sign_on,
        })
    }

    pub fn endpoint(&self, service: ServiceName) -> &Endpoint {
        &self.services[service as usize]
    }

    pub fn endpoint_mut(&mut self, service: ServiceName) -> &mut Endpoint {
        &mut self.services[service as usize]
    }
}

/// The URL a listener is reached at by default: a listener on all interfaces is reached on loopback.
pub fn reach_url(listen: SocketAddr) -> String {
    let reach = if listen.ip().is_unspecified() { SocketAddr::from(([127, 0, 0, 1], listen.port())) } else { listen };
    format!("http://{reach}")
}

/// The query parameters of a database URL that carry a password, compared without regard to case
/// and after percent-decoding (`pass%77ord` is `password` to the driver).
const PASSWORD_PARAMETERS: [&str; 3] = ["password", "passwd", "sslpassword"];

/// A database URL fit for messages and logs: every password in it replaced by `***` — the
/// userinfo's (`user:***@host`, where the separator is the **last** `@` before the host, so an
/// unencoded `@` in a password leaks nothing of it) and the value of every `password=`, `passwd=`
/// and `sslpassword=` parameter (`?password=***`). What is not a password is kept, so the message
/// still says which server and database it means. Every place kefu shows `KEFU_DATABASE_URL`, or
/// an error that may echo it ([`redact_in`]), goes through here.
pub fn redact_password(url: &str) -> String {
    let mut redacted = String::with_capacity(url.len());
    let mut at = 0;
    for span in secret_spans(url) {
        redacted.push_str(&url[at..span.start]);
        redacted.push_str("***");
        at = span.end;
    }
    redacted.push_str(&url[at..]);
    redacted
}

/// `text` (an error of the driver, which may echo the URL it was given) with the URL `url` and every
/// password in it, as written and percent-decoded, replaced as [`redact_password`] does.
pub fn redact_in(text: &str, url: &str) -> String {
    let mut text = text.replace(url, &redact_password(url));
    let mut secrets: Vec<String> = Vec::new();
    for span in secret_spans(url) {
        let written = &url[span];
        secrets.push(written.to_owned());
        secrets.push(percent_decode(written));
        secrets.push(percent_decode(&written.replace('+', " ")));
    }
    // The longest first, so a secret containing another is replaced whole.
    secrets.sort_by_key(|secret| std::cmp::Reverse(secret.len()));
    for secret in secrets.iter().filter(|secret| !secret.is_empty()) {
        text = text.replace(secret.as_str(), "***");
    }
    text
}

/// `url` without the password parameters its driver does not know (`passwd`, `sslpassword`, or
/// `password` spelled in other case): sqlx would log each as an unrecognized parameter, value and
/// all. sqlx ignores them anyway, so leaving them out changes nothing but the log.
pub fn without_unknown_password_parameters(url: &str) -> String {
    let Some(query_start) = url.find('?') else { return url.to_owned() };
    let (base, query) = url.split_at(query_start);
    let kept: Vec<&str> = query[1..]
        .split('&')
        .filter(|pair| {
            let key = percent_decode(pair.split_once('=').map_or(*pair, |(key, _)| key));
            key == "password" || !PASSWORD_PARAMETERS.contains(&key.to_ascii_lowercase().as_str())
        })
        .collect();
    if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) }
}

/// Where the passwords are in `url`, in order and not overlapping.
fn secret_spans(url: &str) -> Vec<std::ops::Range<usize>> {
    let bytes = url.as_bytes();
    let mut spans = Vec::new();
    // Parameters: `?key=value` or `&key=value`, a value running to the next `&` (or the end: a `#`
    // in a password is not taken for a fragment).
    for (separator, _) in url.match_indices(['?', '&']) {
        let key_start = separator + 1;
        let Some(equals) = url[key_start..].find(['=', '&', '?', '/']).map(|offset| key_start + offset) else {
            continue;
        };
        if bytes[equals] != b'=' {
            continue;
        }
        let key = percent_decode(&url[key_start..equals]).to_ascii_lowercase();
        if PASSWORD_PARAMETERS.contains(&key.as_str()) {
            let end = url[equals + 1..].find('&').map_or(url.len(), |offset| equals + 1 + offset);
            spans.push(equals + 1..end);
        }
    }
    // Userinfo: from after `://` to the last `@` before the host, which ends at the first `/`,
    // `?` or `#` after the first `@` (an `@` inside a parameter's password does not count).
    if let Some(scheme_end) = url.find("://") {
        let start = scheme_end + 3;
        let outside = |index: &usize| !spans.iter().any(|span| span.contains(index));
        let ats: Vec<usize> =
            url.match_indices('@').map(|(index, _)| index).filter(|i| *i >= start && outside(i)).collect();
        if let Some(&first) = ats.first() {
            let host_end = url[first..].find(['/', '?', '#']).map_or(url.len(), |offset| first + offset);
            let last = ats.iter().copied().filter(|at| *at < host_end).max().unwrap_or(first);
            if let Some(colon) = url[start..last].find(':') {
                spans.push(start + colon + 1..last);
            }
        }
    }
    spans.sort_by_key(|span| span.start);
    let mut merged: Vec<std::ops::Range<usize>> = Vec::new();
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

/// `%XX` decoded; anything else, and a `%` not followed by two hex digits, as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn defaults_are_loopback_sqlite_and_shanghai() {
        let config = config(&[]).expect("defaults are valid");
        assert_eq!(config.gateway_addr.to_string(), "127.0.0.1:50051");
        assert_eq!(config.endpoint(ServiceName::Claims).url, "http://127.0.0.1:50063");
        assert_eq!(config.database_url, None);
        assert_eq!(config.time_zone, chrono_tz::Asia::Shanghai);
    }

    #[test]
    fn the_console_is_served_on_loopback_unless_off_and_its_sign_on_needs_all_three_settings() {
        let defaults = config(&[]).expect("defaults are valid");
        assert_eq!(defaults.console_addr.map(|addr| addr.to_string()).as_deref(), Some("127.0.0.1:8080"));
        assert_eq!(defaults.console_sign_on, None);
        assert_eq!(config(&[("KEFU_CONSOLE_ADDR", "off")]).expect("valid").console_addr, None);
        let sign_on = [
            ("KEFU_CONSOLE_OIDC_AUTHORIZE_URL", "https://sso.example.com/authorize"),
            ("KEFU_CONSOLE_OIDC_TOKEN_URL", "https://sso.example.com/token"),
            ("KEFU_CONSOLE_OIDC_CLIENT_ID", "kefu-console"),
        ];
        let configured = config(&sign_on).expect("valid").console_sign_on.expect("configured");
        assert_eq!((configured.client_id.as_str(), configured.scope.as_str()), ("kefu-console", "openid"));
        let error = config(&sign_on[..2]).expect_err("two of three is an error");
        assert!(error.to_string().contains("KEFU_CONSOLE_OIDC_CLIENT_ID"), "{error}");
        let error = config(&[sign_on[0], ("KEFU_CONSOLE_OIDC_TOKEN_URL", "sso.example.com/token"), sign_on[2]])
            .expect_err("not an address");
        assert!(error.to_string().contains("KEFU_CONSOLE_OIDC_TOKEN_URL"), "{error}");
    }

    #[test]
    fn a_service_on_all_interfaces_is_reached_on_loopback_unless_told() {
        let config =
            config(&[("KEFU_INTAKE_ADDR", "0.0.0.0:7000"), ("KEFU_CLAIMS_URL", "http://claims:50063")]).expect("valid");
        assert_eq!(config.endpoint(ServiceName::Intake).url, "http://127.0.0.1:7000");
        assert_eq!(config.endpoint(ServiceName::Claims).url, "http://claims:50063");
    }

    #[test]
    fn services_reach_the_gateway_on_loopback_unless_told() {
        let gateway = config(&[("KEFU_GATEWAY_ADDR", "0.0.0.0:8443")]).expect("valid");
        assert_eq!(gateway.gateway_url, "http://127.0.0.1:8443");
        let told = config(&[("KEFU_GATEWAY_URL", "http://gateway:50051")]).expect("valid");
        assert_eq!(told.gateway_url, "http://gateway:50051");
    }

    /// Every form a password takes in a PostgreSQL URL is redacted, and nothing else is.
    #[test]
    fn a_configuration_printed_for_debugging_shows_no_database_password() {
        let config =
            config(&[("KEFU_DATABASE_URL", "postgres://kefu:hunter2-secret@db:5432/kefu?password=also-secret")])
                .expect("valid");
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2") && !printed.contains("also-secret"), "{printed}");
        assert_eq!(config.database_url.as_ref().map(Secret::expose).map(|url| url.contains("hunter2")), Some(true));
    }

    #[test]
    fn every_password_form_is_redacted() {
        for (url, shown) in [
            ("postgres://kefu:s3cret@db:5432/kefu", "postgres://kefu:***@db:5432/kefu"),
            // An unencoded `@` in the password: the last `@` before the host separates.
            ("postgres://kefu:p@ss@w0rd@db:5432/kefu", "postgres://kefu:***@db:5432/kefu"),
            ("postgresql://kefu:pa/ss?wo#rd@db/kefu", "postgresql://kefu:***@db/kefu"),
            ("postgres://kefu:%40s3cret@db/kefu", "postgres://kefu:***@db/kefu"),
            ("postgres://:s3cret@db/kefu", "postgres://:***@db/kefu"),
            ("postgres://kefu@db/kefu?password=s3cret", "postgres://kefu@db/kefu?password=***"),
            (
                "postgres://db/kefu?sslmode=disable&PassWord=s3cret&application_name=kefu",
                "postgres://db/kefu?sslmode=disable&PassWord=***&application_name=kefu",
            ),
            ("postgres://db/kefu?passwd=s3cret", "postgres://db/kefu?passwd=***"),
            ("postgres://db/kefu?SSLPASSWORD=s3cret", "postgres://db/kefu?SSLPASSWORD=***"),
            ("postgres://db/kefu?pass%77ord=s3cret", "postgres://db/kefu?pass%77ord=***"),
            ("postgres://db/kefu?password=s3@cret#x", "postgres://db/kefu?password=***"),
            (
                "postgres://kefu:one@two@db/kefu?user=kefu&password=three@four",
                "postgres://kefu:***@db/kefu?user=kefu&password=***",
            ),
            ("postgres://kefu@db:5432/kefu", "postgres://kefu@db:5432/kefu"),
            ("postgres://db/kefu?user=kefu&sslmode=require", "postgres://db/kefu?user=kefu&sslmode=require"),
        ] {
            assert_eq!(redact_password(url), shown, "{url}");
        }
    }

    #[test]
    fn an_error_echoing_the_url_or_its_password_shows_neither() {
        let url = "postgres://kefu:p%40ss@db/kefu?sslpassword=key+pass";
        let error =
            format!("The connection string '{url}' cannot be parsed; password p@ss, then key pass, then key+pass");
        let shown = redact_in(&error, url);
        assert_eq!(
            shown,
            "The connection string 'postgres://kefu:***@db/kefu?sslpassword=***' cannot be parsed; password ***, then ***, then ***"
        );
    }

    #[test]
    fn password_parameters_the_driver_would_log_are_left_out() {
        assert_eq!(
            without_unknown_password_parameters("postgres://db/kefu?passwd=a&sslmode=disable&SSLPassword=b&password=c"),
            "postgres://db/kefu?sslmode=disable&password=c"
        );
        assert_eq!(without_unknown_password_parameters("postgres://db/kefu?Password=a"), "postgres://db/kefu");
        assert_eq!(without_unknown_password_parameters("postgres://u:p@db/kefu"), "postgres://u:p@db/kefu");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let error = config(&[("KEFU_GATEWAY_ADDR", "localhost")]).expect_err("not an address");
        assert_eq!(error.variable, "KEFU_GATEWAY_ADDR");
        let error = config(&[("KEFU_DATABASE_URL", "mysql://root:secret@db/kefu")]).expect_err("not postgres");
        assert!(error.to_string().contains("root:***@db"), "{error}");
        assert!(!error.to_string().contains("secret"));
        let error = config(&[("KEFU_TIME_ZONE", "Mars/Olympus")]).expect_err("no such zone");
        assert_eq!(error.variable, "KEFU_TIME_ZONE");
        for timeout in ["0", "-1", "ten", "301"] {
            let error = config(&[("KEFU_WEBHOOK_TIMEOUT", timeout)]).expect_err("not a timeout");
            assert_eq!(error.variable, "KEFU_WEBHOOK_TIMEOUT");
        }
    }

    #[test]
    fn limits_have_defaults_and_overrides_within_bounds() {
        let defaults = config(&[]).expect("valid").limits;
        assert_eq!(defaults, crate::limits::Limits::default());
        let told = config(&[("KEFU_CALL_TIMEOUT", "5"), ("KEFU_KEEPALIVE", "30"), ("KEFU_RATE_LIMIT", "10")])
            .expect("valid")
            .limits;
        assert_eq!(told.call_timeout, std::time::Duration::from_secs(5));
        assert_eq!(told.keepalive_timeout, std::time::Duration::from_secs(20));
        assert_eq!(told.rate_per_principal, 10);
        let evidence = config(&[("KEFU_EVIDENCE_FILES_PER_DAY", "3"), ("KEFU_EVIDENCE_MIB_PER_CLAIM", "1")])
            .expect("valid")
            .limits
            .evidence;
        assert_eq!((evidence.files_per_day, evidence.bytes_per_claim, evidence.files_per_claim), (3, 1024 * 1024, 50));
        assert_eq!(
            config(&[("KEFU_EVIDENCE_MIB_PER_DAY", "0")]).expect_err("none").variable,
            "KEFU_EVIDENCE_MIB_PER_DAY"
        );
        for (variable, value) in [("KEFU_CALL_TIMEOUT", "0"), ("KEFU_MAX_CONNECTIONS", "many"), ("KEFU_KEEPALIVE", "1")]
        {
            assert_eq!(config(&[(variable, value)]).expect_err("out of bounds").variable, variable);
        }
    }

    #[test]
    fn secrets_are_long_enough_and_never_shown() {
        let error = config(&[("KEFU_INTERNAL_KEY", "short-secret")]).expect_err("too short");
        assert_eq!(error.variable, "KEFU_INTERNAL_KEY");
        assert!(!error.to_string().contains("short-secret"), "{error}");
        let key = "k".repeat(MIN_SECRET_LEN);
        let config = config(&[("KEFU_INTERNAL_KEY", &key), ("KEFU_BOOTSTRAP_TOKEN", &key)]).expect("valid");
        assert_eq!(config.internal_key.as_ref().map(Secret::expose), Some(key.as_str()));
        assert!(!format!("{config:?}").contains(&key), "Debug shows no secret");
    }

    #[test]
    fn single_sign_on_needs_issuer_audience_and_keys() {
        let error = config(&[("KEFU_OIDC_ISSUER", "https://sso.example.com")]).expect_err("incomplete");
        assert!(error.variable.contains("KEFU_OIDC_AUDIENCE") && error.variable.contains("KEFU_OIDC_JWKS_FILE"));
        let oidc = config(&[
            ("KEFU_OIDC_ISSUER", "https://sso.example.com"),
            ("KEFU_OIDC_AUDIENCE", "kefu"),
            ("KEFU_OIDC_JWKS_FILE", "/etc/kefu/jwks.json"),
            ("KEFU_OIDC_ROLES_CLAIM", "groups"),
        ])
        .expect("valid")
        .oidc
        .expect("configured");
        assert_eq!((oidc.subject_claim.as_str(), oidc.roles_claim.as_str()), ("sub", "groups"));
    }

    #[test]
    fn webhook_posts_time_out_after_ten_seconds_unless_told() {
        assert_eq!(config(&[]).expect("valid").webhook_timeout, std::time::Duration::from_secs(10));
        let told = config(&[("KEFU_WEBHOOK_TIMEOUT", "2.5")]).expect("valid");
        assert_eq!(told.webhook_timeout, std::time::Duration::from_millis(2500));
    }
}
