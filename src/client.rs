//! What every client command (`kefu call`, `kefu complaint`, `kefu token`, `kefu report`,
//! `kefu bench`) shares: where the gateway is and as whom to call it (`KEFU_GATEWAY_URL` and
//! `KEFU_TOKEN`, or `--gateway` and `--token`), and how a failure is told to a person and to a
//! script: a message that says what to do next, and an exit code ([`Failure`]).

use clap::Args;
use kefu_kit::resend::Resending;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
};

#[derive(Debug, Clone, Args)]
pub struct GatewayArgs {
    /// The gateway to call.
    #[arg(long, global = true, default_value = "http://127.0.0.1:50051", env = "KEFU_GATEWAY_URL")]
    pub gateway: String,
    /// Your kefu token (`kefu_…`), a single sign-on JWT, or for `kefu token` the bootstrap secret.
    /// Prefer KEFU_TOKEN in the environment: a command line is visible to other users.
    #[arg(long, global = true, env = "KEFU_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

/// Sets `authorization: Bearer <token>` on every call.
#[derive(Clone)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    /// The header for `token`, or `None` if it has characters a token cannot have.
    pub fn new(token: &str) -> Option<Bearer> {
        MetadataValue::try_from(format!("Bearer {token}")).ok().map(Bearer)
    }
}

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to the gateway whose calls carry the token; a call the connection refused unsent
/// (the gateway retiring it) is sent again.
pub type Gateway = InterceptedService<Resending, Bearer>;

impl GatewayArgs {
    /// Connects to the gateway, or says what to do.
    pub async fn connect(&self) -> Result<Gateway, Failure> {
        let token = self.token.as_deref().map(str::trim).filter(|token| !token.is_empty()).ok_or_else(|| {
            Failure::new(
                Exit::Denied,
                "no token: set KEFU_TOKEN (or --token) to your kefu token; an administrator creates one with `kefu token create`",
            )
        })?;
        let bearer = Bearer::new(token).ok_or_else(|| {
            Failure::new(Exit::Denied, "KEFU_TOKEN has characters a token cannot have; copy it again")
        })?;
        let channel = kefu_kit::server::endpoint(&self.gateway)
            .map_err(|error| Failure::new(Exit::Usage, format!("--gateway {}: {error}", self.gateway)))?
            .connect()
            .await
            .map_err(|error| {
                Failure::new(
                    Exit::Unavailable,
                    format!(
                        "cannot reach the gateway at {}: {error}. Is kefu up? (KEFU_GATEWAY_URL or --gateway says where)",
                        self.gateway
                    ),
                )
            })?;
        Ok(InterceptedService::new(Resending::new(channel), bearer))
    }
}

/// Writes a line of a client command's output; when its reader has gone (`kefu call --list | head`)
/// the command ends there, quietly, as a Unix command does. `say!` calls it like `println!`.
pub fn write_line(line: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if let Err(error) = writeln!(std::io::stdout().lock(), "{line}") {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("kefu: writing the output: {error}");
        std::process::exit(Exit::Other as i32);
    }
}

/// `println!` for client commands (see [`write_line`]).
#[macro_export]
macro_rules! say {
    ($($argument:tt)*) => { $crate::client::write_line(format_args!($($argument)*)) };
}

/// The exit codes of client commands, for scripts (README, "Exit codes"). A server command
/// (`up`, `serve`, `migrate`, `backup`) exits 1 on any failure, 2 on bad configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 1: anything else, a failure of kefu itself among them: the message says what.
    Other = 1,
    /// 2: the command line or the request's JSON is wrong; nothing was sent.
    Usage = 2,
    /// 3: the request was refused as invalid (`INVALID_ARGUMENT`, `OUT_OF_RANGE`); each field
    /// violation is printed.
    Invalid = 3,
    /// 4: what was named does not exist, or is not yours to see (`NOT_FOUND`).
    NotFound = 4,
    /// 5: not now: the case's state does not allow it, or it conflicts with what exists
    /// (`FAILED_PRECONDITION`, `ALREADY_EXISTS`, `ABORTED`).
    NotNow = 5,
    /// 6: who you are is unknown, or your roles do not allow it (`UNAUTHENTICATED`,
    /// `PERMISSION_DENIED`, no token).
    Denied = 6,
    /// 7: try again later, with the same request id (`UNAVAILABLE`, `DEADLINE_EXCEEDED`,
    /// `RESOURCE_EXHAUSTED`, the gateway not reachable).
    Unavailable = 7,
}

/// Why a client command failed: what to tell the person, and the exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    pub fn new(exit: Exit, message: impl Into<String>) -> Failure {
        Failure { exit, message: message.into() }
    }

    pub fn usage(message: impl Into<String>) -> Failure {
        Failure::new(Exit::Usage, message)
    }
}

impl From<String> for Failure {
    fn from(message: String) -> Failure {
        Failure::new(Exit::Other, message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Failure {
        Failure::new(Exit::Other, message)
    }
}

/// A failed call as a person can act on it: what failed, the server's message, each field
/// violation on a line of its own, and what to do next; with the exit code its status means.
pub fn explain(what: &str, status: &Status) -> Failure {
    use tonic::Code;
    use tonic_types::StatusExt;
    let (exit, hint) = match status.code() {
        Code::InvalidArgument | Code::OutOfRange => (Exit::Invalid, "correct the fields named and send it again"),
        Code::NotFound => (Exit::NotFound, "check the name, and that your token may see it"),
        Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => {
            (Exit::NotNow, "look at the case (`kefu complaint get`, `kefu complaint timeline`) for where it stands")
        }
        Code::Unauthenticated => (Exit::Denied, "check KEFU_TOKEN: it may be mistyped, expired or revoked"),
        Code::PermissionDenied => (Exit::Denied, "your token's roles do not allow this; ask an administrator"),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted => {
            (Exit::Unavailable, "try again in a moment, with the same request id: nothing is done twice")
        }
        _ => (Exit::Other, ""),
    };
    let mut message = format!("{what}: {} ({:?})", status.message(), status.code());
    if let Some(bad_request) = status.get_details_bad_request() {
        for violation in &bad_request.field_violations {
            message.push_str(&format!("\n  {}: {}", violation.field, violation.description));
        }
    }
    if !hint.is_empty() {
        message.push_str(&format!("\n{hint}"));
    }
    Failure::new(exit, message)
}
