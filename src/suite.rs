//! Starting kefu: the whole suite in one process (`kefu up`), or one service alone (`kefu serve`).
//! Either way each service is its own gRPC server on its own port with its own database, so
//! `kefu up` runs the same code path as a cluster.

use std::net::SocketAddr;

use kefu_gateway::RoutingPolicy;
use kefu_kit::{
    Config, Shutdown,
    clock::SharedClock,
    config::ServiceName,
    server::{ServiceContext, StartError},
};
use tokio::{net::TcpListener, task::JoinSet};

/// What `kefu serve` can run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Gateway,
    Service(ServiceName),
    /// The service center's console, a web page ([`crate::console`]).
    Console,
}

impl std::str::FromStr for Target {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, String> {
        match name {
            "gateway" => return Ok(Target::Gateway),
            "console" => return Ok(Target::Console),
            _ => {}
        }
        name.parse::<ServiceName>().map(Target::Service).map_err(|_| {
            format!(
                "unknown target {name:?}; choose gateway, intake, inspection, claims, settlement, archives or console"
            )
        })
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Gateway => f.pad("gateway"),
            Target::Service(service) => f.pad(service.as_str()),
            Target::Console => f.pad("console"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(
        "cannot listen on {addr} for {target}: {source}. Is another kefu running? Set KEFU_{env}_ADDR to another address."
    )]
    Bind { target: Target, addr: SocketAddr, env: String, source: std::io::Error },
    #[error("KEFU_CONSOLE_ADDR is off, so there is no console to serve; set it to an address such as 127.0.0.1:8080")]
    NoConsole,
    #[error(transparent)]
    Policy(#[from] kefu_gateway::policy::PolicyError),
    #[error(transparent)]
    Start(#[from] StartError),
}

/// Listeners bound for the targets, and the configuration updated with the addresses actually
/// bound (a port 0 becomes a real port, and the other services are told of it).
pub struct Bound {
    pub config: Config,
    pub listeners: Vec<(Target, TcpListener)>,
}

impl Bound {
    pub fn address(&self, target: Target) -> Option<SocketAddr> {
        self.listeners.iter().find(|(bound, _)| *bound == target).and_then(|(_, listener)| listener.local_addr().ok())
    }
}

/// Binds a listener for each target before anything starts, so that every service knows where
/// every other is.
pub async fn bind(mut config: Config, targets: &[Target]) -> Result<Bound, SuiteError> {
    let mut listeners = Vec::new();
    for &target in targets {
        let addr = match target {
            Target::Gateway => config.gateway_addr,
            Target::Service(service) => config.endpoint(service).listen,
            Target::Console => config.console_addr.ok_or(SuiteError::NoConsole)?,
        };
        let listener = TcpListener::bind(addr).await.map_err(|source| SuiteError::Bind {
            target,
            addr,
            env: target.to_string().to_uppercase(),
            source,
        })?;
        let actual = listener.local_addr().map_err(|source| SuiteError::Bind {
            target,
            addr,
            env: target.to_string().to_uppercase(),
            source,
        })?;
        match target {
            Target::Gateway => {
                if config.gateway_url == kefu_kit::config::reach_url(config.gateway_addr) {
                    config.gateway_url = kefu_kit::config::reach_url(actual);
                }
                config.gateway_addr = actual;
            }
            Target::Service(service) => {
                let endpoint = config.endpoint_mut(service);
                if endpoint.listen.port() == 0 || endpoint.url == format!("http://{}", endpoint.listen) {
                    endpoint.url = format!("http://{actual}");
                }
                endpoint.listen = actual;
            }
            Target::Console => config.console_addr = Some(actual),
        }
        listeners.push((target, listener));
    }
    Ok(Bound { config, listeners })
}

/// Every target of the whole suite: the five services, the gateway, and the console unless
/// `KEFU_CONSOLE_ADDR` is `off`.
pub fn all_targets(config: &Config) -> Vec<Target> {
    let mut targets: Vec<Target> = ServiceName::ALL.into_iter().map(Target::Service).collect();
    targets.push(Target::Gateway);
    if config.console_addr.is_some() {
        targets.push(Target::Console);
    }
    targets
}

/// Runs every bound target until `shutdown`; the first that fails stops the others.
pub async fn run(bound: Bound, clock: SharedClock, shutdown: Shutdown) -> Result<(), SuiteError> {
    let policy = RoutingPolicy::load(bound.config.routing_policy.as_deref())?;
    let config = bound.config;
    let (stop_all, stop) = Shutdown::new();
    let mut tasks = JoinSet::new();
    for (target, listener) in bound.listeners {
        let (config, clock, stop, policy) = (config.clone(), clock.clone(), stop.clone(), policy.clone());
        tasks.spawn(async move {
            let result = match target {
                Target::Gateway => kefu_gateway::run(&config, policy, listener, stop).await,
                Target::Service(ServiceName::Intake) => kefu_intake::run(&config, clock, listener, stop).await,
                Target::Service(ServiceName::Inspection) => kefu_inspection::run(&config, clock, listener, stop).await,
                Target::Service(ServiceName::Claims) => kefu_claims::run(&config, clock, listener, stop).await,
                Target::Service(ServiceName::Settlement) => kefu_settlement::run(&config, clock, listener, stop).await,
                Target::Service(ServiceName::Archives) => kefu_archives::run(&config, clock, listener, stop).await,
                Target::Console => crate::console::run(&config, clock, listener, stop).await,
            };
            (target, result)
        });
    }
    let mut first_error = None;
    // The targets drain and stop when the process does, or stop when one of them fails.
    let mut following = std::pin::pin!(stop_all.follow(shutdown));
    loop {
        tokio::select! {
            _ = &mut following, if !stop_all.is_triggered() => {}
            joined = tasks.join_next() => match joined {
                None => break,
                Some(Ok((target, Err(error)))) => {
                    tracing::error!(%target, %error, "stopped with an error; stopping the rest");
                    first_error.get_or_insert(error);
                    stop_all.trigger();
                }
                Some(Ok((target, Ok(())))) => {
                    tracing::info!(%target, "stopped");
                    stop_all.trigger();
                }
                Some(Err(panic)) => {
                    tracing::error!(%panic, "a task failed; stopping the rest");
                    stop_all.trigger();
                }
            },
        }
    }
    match first_error {
        Some(error) => Err(error.into()),
        None => Ok(()),
    }
}

/// Creates or updates every service's tables (`kefu migrate`).
pub async fn migrate(config: &Config, clock: SharedClock) -> Result<(), StartError> {
    for service in ServiceName::ALL {
        let migrations: &[&kefu_kit::migrate::Migration] = match service {
            ServiceName::Intake => kefu_intake::MIGRATIONS,
            ServiceName::Inspection => kefu_inspection::MIGRATIONS,
            ServiceName::Claims => kefu_claims::MIGRATIONS,
            ServiceName::Settlement => kefu_settlement::MIGRATIONS,
            ServiceName::Archives => kefu_archives::MIGRATIONS,
        };
        ServiceContext::open(service, config, clock.clone(), migrations).await?;
        tracing::info!(%service, "migrated");
    }
    kefu_gateway::tokens::open(config)
        .await
        .map_err(|error| StartError::Setup { part: "gateway", message: format!("database: {error}") })?;
    tracing::info!("gateway migrated");
    Ok(())
}
