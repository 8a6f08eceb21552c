//! The command line. `main.rs` only calls [`main`].

use std::{process::ExitCode, sync::Arc, time::Duration};

use clap::{Parser, Subcommand};
use kefu_kit::{Config, Shutdown, SystemClock};

use crate::{
    client::Failure,
    suite::{self, Target},
};

const CONFIGURATION: &str = "\
Configuration comes from environment variables only:
  KEFU_DATABASE_URL    postgres://user@host:5432/db — every service in its own schema;
                       unset: SQLite files under KEFU_DATA_DIR (default ./data)
  KEFU_DATABASE_POOL   PostgreSQL connections per service (default intake 10, the
                       others 2: 20 in all for `kefu up`)
  KEFU_GATEWAY_ADDR    where the gateway listens (default 127.0.0.1:50051)
  KEFU_<SERVICE>_ADDR  where a service listens (intake 127.0.0.1:50061, inspection …62,
                       claims …63, settlement …64, archives …65)
  KEFU_<SERVICE>_URL   how the others reach it (default http:// + its _ADDR)
  KEFU_ROUTING_POLICY  a routing policy file (default: the handbook's table)
  KEFU_CLAIMS_POLICY   a claims policy file: compensation percentages, authority limit
                       (default: the handbook's standards)
  KEFU_INSPECTION_POLICY  an inspection policy file: the fines table, the hours after
                       the written report, the recurrence window (default: the handbook's)
  KEFU_TIME_ZONE       the company's time zone (default Asia/Shanghai)
  KEFU_WEBHOOK_TIMEOUT seconds one webhook POST to a branch may take (default 10)
  KEFU_WEBHOOK_CA_FILE PEM CA certificates trusted for https:// webhook endpoints besides
                       Mozilla's roots (docs/webhooks.md)
  KEFU_INTERNAL_KEY    the secret kefu's processes sign calls to each other with, the
                       same in every process (kefu up makes one; kefu serve needs it)
  KEFU_BOOTSTRAP_TOKEN a secret (32+ characters) that authenticates as the bootstrap
                       admin, to create the first tokens with `kefu token create`
  KEFU_ACCESS_POLICY   the access table file (default: gateway/src/access-policy.txt)
  KEFU_OIDC_ISSUER, KEFU_OIDC_AUDIENCE, KEFU_OIDC_JWKS_FILE  staff single sign-on
  KEFU_AUDIT_KEY, KEFU_WEBHOOK_KEY  keys kept out of the database (kefu up makes key
                       files under KEFU_DATA_DIR)
  KEFU_AUDIT_HEAD_FILE where archives anchors its audit chain's head, outside the
                       database (default KEFU_DATA_DIR/audit.head; `kefu audit seal`)
  KEFU_TLS_CERT_FILE, KEFU_TLS_KEY_FILE, KEFU_TLS_CLIENT_CA_FILE  TLS on the gateway
  KEFU_WEBHOOK_ALLOW_PRIVATE, KEFU_WEBHOOK_MAX_PER_BRANCH  where webhooks may go, how many
  KEFU_MAX_CONNECTIONS, KEFU_HANDSHAKE_TIMEOUT, KEFU_MAX_CALLS_PER_CONNECTION,
  KEFU_CALL_TIMEOUT, KEFU_KEEPALIVE, KEFU_MAX_CONNECTION_AGE, KEFU_RATE_LIMIT  limits
                       (the table is in services/kit/src/limits.rs)
  KEFU_DRAIN           seconds a server goes on answering after SIGTERM while health
                       says NOT_SERVING (default 5; Ctrl-C stops at once)
  KEFU_TOKEN, KEFU_GATEWAY_URL  as whom and where client commands call
  KEFU_LOG             log filter (default info)
  KEFU_LOG_FORMAT      text (default) or json: one object a line, with trace and span ids
  OTEL_EXPORTER_OTLP_ENDPOINT  export traces over OTLP/gRPC there (and the other OTEL_*
                       variables: OTEL_SERVICE_NAME, headers, sampler); unset: none
  KEFU_METRICS_ADDR    serve Prometheus metrics at http://<addr>/metrics (default: none)
  KEFU_CONSOLE_ADDR    where `kefu up` serves the web console (default 127.0.0.1:8080;
                       off: none)
The full table is in services/kit/src/config.rs.";

/// kefu (客服): the complaint-handling backbone of a logistics company's customer service center.
///
/// Complaints arrive at the gateway, are recorded by intake with a case number and a deadline,
/// and are routed by category to the department that owns them: inspection (监察部), claims
/// (理赔部) or settlement (结算部). Archives (档案室) keeps closed files.
#[derive(Debug, Parser)]
#[command(name = "kefu", version, after_help = CONFIGURATION)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway and all five services in one process, each on its own port with its own
    /// database. Stop with Ctrl-C.
    ///
    /// Then, with a token (`kefu token create`):  kefu complaint list
    Up,
    /// Run one service, or the gateway, alone: what each Kubernetes Deployment runs.
    ///
    /// The others are found at KEFU_<SERVICE>_URL. On SIGTERM it reports NOT_SERVING and goes
    /// on answering for KEFU_DRAIN seconds, then finishes the calls in flight and stops; Ctrl-C
    /// skips the drain.
    Serve {
        /// gateway, intake, inspection, claims, settlement, archives, or console (the web console,
        /// at KEFU_CONSOLE_ADDR, calling the gateway at KEFU_GATEWAY_URL)
        target: Target,
    },
    /// Create or update every service's tables, then exit (the Kubernetes migration Job).
    Migrate,
    /// Drive CreateComplaint through a running gateway and report throughput, latency, errors,
    /// CPU per complaint and whether the handoff to the owners keeps up.
    Bench(crate::bench::BenchArgs),
    /// Create, list or revoke tokens (administrators; KEFU_TOKEN holds yours, or the bootstrap
    /// secret for the first ones).
    ///
    /// Example:  KEFU_TOKEN=$KEFU_BOOTSTRAP_TOKEN kefu token create --subject A1024 --department intake --role agent
    Token(crate::token::TokenArgs),
    /// Copy every SQLite database of the suite (under KEFU_DATA_DIR) and its key files into a new
    /// directory, consistently, while the suite runs. To restore, start kefu with KEFU_DATA_DIR set
    /// to the copy. On PostgreSQL use pg_dump (docs/operations.md).
    ///
    /// Example:  KEFU_DATA_DIR=./data kefu backup ./backups/2026-11-27
    Backup {
        /// A directory that does not exist yet, or is empty.
        dir: std::path::PathBuf,
    },
    /// Archives' audit chain: `kefu audit seal` checks it and, when an operator decides, seals it
    /// with the audit key (archives reports an unsealed or broken chain at start, and never seals
    /// it itself). Runs against archives' database directly, like `kefu migrate`.
    ///
    /// Example:  KEFU_DATA_DIR=./data kefu audit seal
    Audit(crate::audit::AuditArgs),
    /// Call any method of kefu's public API with JSON in and JSON out (`kefu call --list`).
    ///
    /// Example:  kefu call kefu.gateway.v1.Complaints/GetComplaint '{"name": "complaints/20261122-7K3M9Q"}'
    Call(crate::call::CallArgs),
    /// File, look up, list and move complaints: the service center's daily work.
    ///
    /// Example:  kefu complaint list --state routed --output csv
    Complaint(crate::complaint::ComplaintArgs),
    /// Record an inquiry, consultation, suggestion or change request.
    Request(crate::complaint::RequestArgs),
    /// Ask what the compensation standards give, look up a claim, approve a payout.
    ///
    /// Example:  kefu claim quote --declared 1000 --market-value 800 --accident transit_damage
    Claim(crate::claim::ClaimArgs),
    /// Print a completion script for your shell.
    ///
    /// bash:  kefu completions bash > ~/.local/share/bash-completion/completions/kefu
    /// zsh:   kefu completions zsh > "${fpath[1]}/_kefu"
    Completions {
        /// bash, zsh, fish, elvish or powershell
        shell: clap_complete::Shell,
    },
    /// Print a monthly report as CSV, fetched from a running gateway.
    ///
    /// Example:  kefu report claims --month 2026-11 > claims-2026-11.csv
    Report(crate::report::ReportArgs),
}

pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("kefu: configuration: {error}\n\n{CONFIGURATION}");
            return ExitCode::from(2);
        }
    };
    // Servers export traces (where OTEL_EXPORTER_OTLP_ENDPOINT says); client commands do not.
    let service_name = match &cli.command {
        Command::Up => Some("kefu".to_owned()),
        Command::Serve { target } => Some(format!("kefu-{target}")),
        _ => None,
    };
    let telemetry = kefu_kit::telemetry::init(&config.log, config.log_format, service_name.as_deref());
    let result = match cli.command {
        Command::Up => {
            let targets = suite::all_targets(&config);
            run_targets(config, &targets, true).await.map_err(Failure::from)
        }
        Command::Serve { target } => run_targets(config, &[target], false).await.map_err(Failure::from),
        Command::Migrate => {
            suite::migrate(&config, Arc::new(SystemClock)).await.map_err(|error| Failure::from(error.to_string()))
        }
        Command::Bench(args) => crate::bench::run(args).await,
        Command::Backup { dir } => backup(&config, &dir).await.map_err(Failure::from),
        Command::Audit(args) => crate::audit::run(args, &config).await,
        Command::Report(args) => crate::report::run(args).await,
        Command::Token(args) => crate::token::run(args).await,
        Command::Call(args) => crate::call::run(args).await,
        Command::Completions { shell } => {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut <Cli as clap::CommandFactory>::command(), "kefu", &mut script);
            crate::say!("{}", String::from_utf8_lossy(&script).trim_end());
            Ok(())
        }
        Command::Complaint(args) => crate::complaint::run(args, config.time_zone).await,
        Command::Request(args) => crate::complaint::run_request(args, config.time_zone).await,
        Command::Claim(args) => crate::claim::run(args, config.time_zone).await,
    };
    // What spans are still buffered go to the collector before the process ends.
    let _ = tokio::task::spawn_blocking(move || telemetry.flush()).await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("kefu: {}", failure.message);
            ExitCode::from(failure.exit as u8)
        }
    }
}

async fn run_targets(mut config: Config, targets: &[Target], announce: bool) -> Result<(), String> {
    // A broken policy stops start-up before anything listens.
    kefu_gateway::RoutingPolicy::load(config.routing_policy.as_deref()).map_err(|error| error.to_string())?;
    kefu_gateway::AccessTable::load(config.access_policy.as_deref()).map_err(|error| error.to_string())?;
    kefu_claims::CompensationPolicy::load(config.claims_policy.as_deref()).map_err(|error| error.to_string())?;
    kefu_inspection::InspectionPolicy::load(config.inspection_policy.as_deref()).map_err(|error| error.to_string())?;
    if config.internal_key.is_none() {
        if !announce {
            return Err("KEFU_INTERNAL_KEY is not set: every kefu process of one installation needs the same internal key, at least 32 characters (e.g. `openssl rand -hex 32`; in Kubernetes the Secret kefu-internal-key)".into());
        }
        // One process: its parts share a key made now.
        config.internal_key = Some(kefu_kit::config::Secret::new(kefu_kit::trust::InternalKey::generate_secret()?));
    }
    if announce && config.bootstrap_token.is_none() {
        eprintln!(
            "kefu: KEFU_BOOTSTRAP_TOKEN is not set, so no one can create the first tokens. Set it to a secret of 32+ characters (e.g. `export KEFU_BOOTSTRAP_TOKEN=$(openssl rand -hex 32)`), then: KEFU_TOKEN=$KEFU_BOOTSTRAP_TOKEN kefu token create …"
        );
    }
    let bound = suite::bind(config, targets).await.map_err(|error| error.to_string())?;
    let metrics = match bound.config.metrics_addr {
        None => None,
        Some(addr) => Some(tokio::net::TcpListener::bind(addr).await.map_err(|error| {
            format!("cannot listen on {addr} for metrics: {error}. Set KEFU_METRICS_ADDR to another address.")
        })?),
    };
    let storage = match &bound.config.database_url {
        Some(url) => format!("PostgreSQL {} (a schema per service)", kefu_kit::config::redact_password(url.expose())),
        None => format!("SQLite files under {}/", bound.config.data_dir.display()),
    };
    let mut lines = Vec::new();
    for target in targets {
        match bound.address(*target) {
            Some(addr) if *target == Target::Console => lines.push(format!("  {target:<11} http://{addr}/")),
            Some(addr) => lines.push(format!("  {target:<11} {addr}")),
            None => {}
        }
    }
    if let Some(addr) = metrics.as_ref().and_then(|listener| listener.local_addr().ok()) {
        lines.push(format!("  {:<11} http://{addr}/metrics", "metrics"));
    }
    if announce {
        println!("kefu is up. Storage: {storage}");
        println!("{}", lines.join("\n"));
        if let Some(addr) = bound.address(Target::Console) {
            println!("Open the console:  http://{addr}/  (sign in with a token from `kefu token create`)");
        }
        println!("Call the gateway:  kefu complaint list  (or `kefu call --list`; KEFU_TOKEN says as whom)");
        println!("Stop with Ctrl-C.");
    } else {
        println!("kefu serving. Storage: {storage}\n{}", lines.join("\n"));
    }
    let (trigger, shutdown) = Shutdown::new();
    if let Some(listener) = metrics {
        tokio::spawn(kefu_kit::metrics::serve(listener, shutdown.clone()));
    }
    let drain = bound.config.limits.drain;
    tokio::spawn(async move {
        if wait_for_signal().await == Signal::Terminate && !drain.is_zero() {
            // Kubernetes: report NOT_SERVING so no new calls are routed here, and answer those
            // that still come until the drain is over (or a second signal).
            eprintln!("kefu: SIGTERM: draining for {drain:?} (not ready, still answering)");
            trigger.drain();
            tokio::select! {
                _ = wait_for_signal() => {}
                _ = tokio::time::sleep(drain) => {}
            }
        }
        eprintln!("kefu: stopping; letting calls in flight finish");
        trigger.trigger();
        // A second signal, or fifteen more seconds, and we are gone regardless.
        tokio::select! {
            _ = wait_for_signal() => {}
            _ = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
        std::process::exit(130);
    });
    suite::run(bound, Arc::new(SystemClock), shutdown).await.map_err(|error| error.to_string())?;
    println!("kefu stopped.");
    Ok(())
}

async fn backup(config: &Config, dir: &std::path::Path) -> Result<(), String> {
    eprintln!("kefu: backing up {} into {} …", config.data_dir.display(), dir.display());
    let copied = kefu_kit::backup::sqlite(config, dir).await?;
    for (file, tables, bytes) in &copied.databases {
        println!("  {file:<16} {tables:>3} tables  {:>8} KiB", bytes.div_ceil(1024));
    }
    if !copied.key_files.is_empty() {
        println!("  key files: {}", copied.key_files.join(", "));
    }
    println!(
        "Backed up into {}. Restore: stop kefu, then start it with KEFU_DATA_DIR={} (or copy the files back).",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum Signal {
    /// Ctrl-C: a person at a terminal, who wants it stopped now.
    Interrupt,
    /// SIGTERM: Kubernetes (or an init system) asking for a graceful stop.
    Terminate,
}

async fn wait_for_signal() -> Signal {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = ctrl_c.await;
                return Signal::Interrupt;
            }
        };
        tokio::select! {
            _ = ctrl_c => Signal::Interrupt,
            _ = terminate.recv() => Signal::Terminate,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
        Signal::Interrupt
    }
}
