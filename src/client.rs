//! What every client command (`kefu token`, `kefu report`, `kefu bench`) shares: where the gateway
//! is and as whom to call it. `KEFU_GATEWAY_URL` and `KEFU_TOKEN`, or `--gateway` and `--token`.

use clap::Args;
use tonic::{
    Request, Status,
    metadata::{Ascii, MetadataValue},
    service::{Interceptor, interceptor::InterceptedService},
    transport::Channel,
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

impl Interceptor for Bearer {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request.metadata_mut().insert("authorization", self.0.clone());
        Ok(request)
    }
}

/// A channel to the gateway whose calls carry the token.
pub type Gateway = InterceptedService<Channel, Bearer>;

impl GatewayArgs {
    /// Connects to the gateway, or says what to do.
    pub async fn connect(&self) -> Result<Gateway, String> {
        let token = self.token.as_deref().map(str::trim).filter(|token| !token.is_empty()).ok_or(
            "no token: set KEFU_TOKEN (or --token) to your kefu token; an administrator creates one with `kefu token create`",
        )?;
        let bearer = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| "KEFU_TOKEN has characters a token cannot have; copy it again".to_owned())?;
        let channel = kefu_kit::server::endpoint(&self.gateway)
            .map_err(|error| format!("--gateway {}: {error}", self.gateway))?
            .connect()
            .await
            .map_err(|error| format!("cannot reach the gateway at {}: {error}. Is kefu up?", self.gateway))?;
        Ok(InterceptedService::new(channel, Bearer(bearer)))
    }
}

/// A failed call as one line a person can act on.
pub fn explain(what: &str, status: &Status) -> String {
    let hint = match status.code() {
        tonic::Code::Unauthenticated => " (check KEFU_TOKEN)",
        tonic::Code::PermissionDenied => " (your token's roles do not allow this; ask an administrator)",
        _ => "",
    };
    format!("{what}: {}{hint}", status.message())
}
