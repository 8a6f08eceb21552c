//! The service center's console: a web page that kefu serves itself (`KEFU_CONSOLE_ADDR`, default
//! `127.0.0.1:8080`; `kefu up` serves it, `kefu serve console` serves it alone).
//!
//! The page (`assets/`: one HTML file, one script, one style sheet, no build step) talks only to
//! this server, and this server talks only to the gateway's public gRPC API, as the person signed
//! in: it forwards their `Authorization: Bearer` header and holds no credential of its own, so the
//! gateway's access table and every service's rules apply to the console as to any caller. It never
//! reads a database.
//!
//! Its HTTP API, all `POST` with JSON bodies, answers JSON:
//!
//! - `/api/call/<package.Service>/<Method>`: any public method, transcoded to and from protobuf
//!   with the descriptors compiled into the binary (as `kefu call` does);
//! - `/api/inbox`: complaints by view (open, overdue, due today, …) with each view's count and
//!   each row's SLA badge, computed here by the server's clock ([`inbox`]);
//! - `/api/case`: one case with its badge, deadline explanation, timeline, replies and the
//!   customer's other cases;
//! - `/api/settings`: the company's time zone, the routing policy's categories (for the
//!   call-taking form) and, where configured, the identity provider to sign in with (no token
//!   needed);
//! - `/api/describe`: a method's request fields, for the forms of the departments' actions.
//!
//! Every one of them but `settings` and `describe` (which say only what the binary and its
//! configuration hold) calls the gateway with the caller's token.
//!
//! Single sign-on (`KEFU_CONSOLE_OIDC_*`): the page runs the authorization code flow with PKCE
//! against the company's identity provider and uses the token it gets like a kefu token; the
//! gateway verifies it (`KEFU_OIDC_*`). The server never sees the code or the verifier.
//!
//! Why JSON over HTTP rather than gRPC-Web from the browser: the page then needs no generated
//! protobuf client and no front-end build, and the one transcoder is the one `kefu call` already
//! proves, from the same compiled-in descriptors; the gateway still sees only gRPC, with the
//! caller's own token, through the same front door.
//!
//! A failure is `{"code": "INVALID_ARGUMENT", "message": …, "violations": [{"field", "description"}]}`
//! with the HTTP status its gRPC code means. The API takes no cookies, so another site's page
//! cannot make a signed-in browser call it; a request from another origin is refused as well.

mod inbox;

use std::{convert::Infallible, sync::Arc};

use futures_util::StreamExt as _;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use kefu_kit::{Config, Shutdown, clock::SharedClock, server::StartError};
use serde_json::{Value, json};
use tonic::{Code, Status, service::interceptor::InterceptedService};

use crate::{
    call::Api,
    client::{Bearer, Gateway},
};

/// The largest request body the console's API reads.
const MAX_BODY_BYTES: usize = 256 * 1024;

/// The page, embedded in the binary.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", "text/html; charset=utf-8", include_str!("assets/index.html")),
    ("/index.html", "text/html; charset=utf-8", include_str!("assets/index.html")),
    ("/console.js", "text/javascript; charset=utf-8", include_str!("assets/console.js")),
    ("/console.css", "text/css; charset=utf-8", include_str!("assets/console.css")),
];

/// The page may load only itself: no inline script, no other origin, not framed. It may connect
/// to itself, and to the identity provider's token endpoint where single sign-on is configured.
fn content_security_policy(sign_on: Option<&kefu_kit::config::ConsoleSignOn>) -> String {
    let token_origin = sign_on
        .and_then(|sign_on| {
            let (scheme, rest) = sign_on.token_url.split_once("://")?;
            Some(format!(" {scheme}://{}", rest.split('/').next()?))
        })
        .unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'{token_origin}; \
         frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
}

/// What every request of the console shares.
pub struct Console {
    api: Api,
    /// The company's time zone and the routing policy's categories, for the page.
    settings: Value,
    gateway: kefu_kit::resend::Resending,
    clock: SharedClock,
    zone: chrono_tz::Tz,
    content_security_policy: HeaderValue,
    /// `KEFU_CONSOLE_ASSETS`: a directory to serve the page's files from instead of the embedded
    /// ones, for working on the page without rebuilding kefu.
    assets: Option<std::path::PathBuf>,
}

/// Serves the console on `listener` until `shutdown`.
pub async fn run(
    config: &Config,
    clock: SharedClock,
    listener: tokio::net::TcpListener,
    shutdown: Shutdown,
) -> Result<(), StartError> {
    let setup = |message: String| StartError::Setup { part: "console", message };
    let api = Api::load().map_err(|failure| setup(failure.message))?;
    let gateway = kefu_kit::resend::Resending::new(
        kefu_kit::server::endpoint(&config.gateway_url)
            .map_err(|error| setup(format!("KEFU_GATEWAY_URL {}: {error}", config.gateway_url)))?
            .connect_lazy(),
    );
    let policy = kefu_gateway::RoutingPolicy::load(config.routing_policy.as_deref())
        .map_err(|error| setup(error.to_string()))?;
    let categories = policy
        .categories()
        .filter_map(|category| {
            let route = policy.route(category)?;
            Some(json!({
                "category": category,
                "owner": route.owner.as_str(),
                "label": route.label,
                "handling_hours": route.handling_time.as_seconds_f64() / 3600.0,
            }))
        })
        .collect::<Vec<_>>();
    let sign_on = config.console_sign_on.as_ref().map(|sign_on| {
        json!({
            "authorize_url": sign_on.authorize_url,
            "token_url": sign_on.token_url,
            "client_id": sign_on.client_id,
            "scope": sign_on.scope,
        })
    });
    let settings = json!({"zone": config.time_zone.name(), "categories": categories, "sign_on": sign_on});
    let content_security_policy = HeaderValue::from_str(&content_security_policy(config.console_sign_on.as_ref()))
        .map_err(|error| setup(format!("KEFU_CONSOLE_OIDC_TOKEN_URL: {error}")))?;
    let assets = std::env::var_os("KEFU_CONSOLE_ASSETS").map(std::path::PathBuf::from);
    let console =
        Arc::new(Console { api, settings, gateway, clock, zone: config.time_zone, content_security_policy, assets });
    // As every kefu server (`kefu_kit::limits::incoming`): at most KEFU_MAX_CONNECTIONS at once and
    // KEFU_MAX_CONNECTIONS_PER_PEER from one address, a whole first request within the handshake
    // time, and a connection's calls bounded by the gateway's call timeout.
    let handshake = config.limits.handshake_timeout;
    let lifetime = config.limits.call_timeout * 4;
    let accepted = kefu_kit::limits::incoming(listener, &config.limits);
    let mut accepted = std::pin::pin!(accepted);
    loop {
        let connection = tokio::select! {
            () = shutdown.clone().wait() => return Ok(()),
            accepted = accepted.next() => match accepted {
                Some(Ok(connection)) => connection,
                Some(Err(_)) => continue,
                None => return Ok(()),
            },
        };
        let console = console.clone();
        let peer = connection.peer().clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                peer.mark_served();
                let console = console.clone();
                async move {
                    let answer = console.answer(request).await;
                    Ok::<_, Infallible>(with_headers(answer, &console.content_security_policy))
                }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(handshake)
                .serve_connection(hyper_util::rt::TokioIo::new(connection), service);
            let _ = tokio::time::timeout(lifetime, connection).await;
        });
    }
}

type Answer = Response<Full<Bytes>>;

/// A failure of the console's API, as the page shows it.
struct Refusal {
    status: Status,
}

impl From<Status> for Refusal {
    fn from(status: Status) -> Refusal {
        Refusal { status }
    }
}

impl Refusal {
    fn new(code: Code, message: impl Into<String>) -> Refusal {
        Refusal { status: Status::new(code, message) }
    }

    fn into_answer(self) -> Answer {
        use tonic_types::StatusExt;
        let status = self.status;
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::FailedPrecondition | Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable | Code::DeadlineExceeded => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let violations: Vec<Value> = status
            .get_details_bad_request()
            .map(|bad_request| {
                bad_request
                    .field_violations
                    .iter()
                    .map(|violation| json!({"field": violation.field, "description": violation.description}))
                    .collect()
            })
            .unwrap_or_default();
        let body = json!({
            "code": code_name(status.code()),
            "message": status.message(),
            "violations": violations,
        });
        json_answer(http, &body)
    }
}

/// A gRPC code as its name in the protos (`INVALID_ARGUMENT`).
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn json_answer(status: StatusCode, body: &Value) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from(body.to_string())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    answer
}

fn text_answer(status: StatusCode, text: &'static str) -> Answer {
    let mut answer = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *answer.status_mut() = status;
    answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    answer
}

/// The headers every answer carries: the content security policy and its companions.
fn with_headers(mut answer: Answer, content_security_policy: &HeaderValue) -> Answer {
    let headers = answer.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, content_security_policy.clone());
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    answer
}

impl Console {
    async fn answer(&self, request: http::Request<Incoming>) -> Answer {
        let path = request.uri().path().to_owned();
        if let Some(api_path) = path.strip_prefix("/api/") {
            if request.method() != Method::POST {
                return text_answer(StatusCode::METHOD_NOT_ALLOWED, "the console's API takes POST with a JSON body\n");
            }
            return match self.api_call(api_path, request).await {
                Ok(value) => json_answer(StatusCode::OK, &value),
                Err(refusal) => refusal.into_answer(),
            };
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return text_answer(StatusCode::METHOD_NOT_ALLOWED, "not here\n");
        }
        if path == "/live" {
            return text_answer(StatusCode::OK, "alive\n");
        }
        match ASSETS.iter().find(|(asset, _, _)| *asset == path) {
            Some((asset, content_type, body)) => {
                let body = match &self.assets {
                    None => Bytes::from_static(body.as_bytes()),
                    Some(dir) => {
                        let file = if *asset == "/" { "index.html" } else { asset.trim_start_matches('/') };
                        match tokio::fs::read(dir.join(file)).await {
                            Ok(bytes) => Bytes::from(bytes),
                            Err(_) => return text_answer(StatusCode::NOT_FOUND, "not in KEFU_CONSOLE_ASSETS\n"),
                        }
                    }
                };
                let mut answer = Response::new(Full::new(body));
                answer.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
                answer.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                answer
            }
            None => text_answer(StatusCode::NOT_FOUND, "no such page: the console is at /\n"),
        }
    }

    async fn api_call(&self, api_path: &str, request: http::Request<Incoming>) -> Result<Value, Refusal> {
        let (parts, body) = request.into_parts();
        refuse_other_origins(&parts.headers)?;
        // The settings are what the sign-in page needs: asked before anyone has signed in.
        if api_path == "settings" {
            return Ok(self.settings.clone());
        }
        let gateway = self.gateway_for(&parts.headers)?;
        let bytes = Limited::new(body, MAX_BODY_BYTES)
            .collect()
            .await
            .map_err(|_| {
                Refusal::new(
                    Code::ResourceExhausted,
                    format!("a request to the console may be at most {MAX_BODY_BYTES} bytes"),
                )
            })?
            .to_bytes();
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| Refusal::new(Code::InvalidArgument, "the request body is not UTF-8 JSON"))?;
        let text = if text.trim().is_empty() { "{}" } else { text };
        match api_path {
            "describe" => {
                #[derive(serde::Deserialize)]
                struct Describe {
                    method: String,
                }
                let query: Describe = serde_json::from_str(text)
                    .map_err(|error| Refusal::new(Code::InvalidArgument, format!("describe: {error}")))?;
                let method =
                    self.api.method(&query.method).map_err(|failure| Refusal::new(Code::NotFound, failure.message))?;
                Ok(crate::call::describe_value(&method))
            }
            "inbox" => {
                let query = serde_json::from_str(text)
                    .map_err(|error| Refusal::new(Code::InvalidArgument, format!("the inbox query: {error}")))?;
                inbox::inbox(self, &gateway, query).await
            }
            "case" => {
                let query = serde_json::from_str(text)
                    .map_err(|error| Refusal::new(Code::InvalidArgument, format!("the case query: {error}")))?;
                inbox::case(self, &gateway, query).await
            }
            other => {
                let Some(method) = other.strip_prefix("call/") else {
                    return Err(Refusal::new(Code::NotFound, format!("the console's API has no {other:?}")));
                };
                let method =
                    self.api.method(method).map_err(|failure| Refusal::new(Code::NotFound, failure.message))?;
                let request = self
                    .api
                    .request(&method, text)
                    .map_err(|failure| Refusal::new(Code::InvalidArgument, failure.message))?;
                let response = self.api.call_status(&gateway, &method, request).await?;
                crate::call::to_value(&response)
                    .map_err(|error| Refusal::new(Code::Internal, format!("the response as JSON: {error}")))
            }
        }
    }

    /// The gateway, called as the person whose token the request carries.
    fn gateway_for(&self, headers: &HeaderMap) -> Result<Gateway, Refusal> {
        let token = headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|token| !token.is_empty())
            .ok_or_else(|| Refusal::new(Code::Unauthenticated, "sign in with your kefu token"))?;
        let bearer = Bearer::new(token)
            .ok_or_else(|| Refusal::new(Code::Unauthenticated, "that is not a token: copy it again"))?;
        Ok(InterceptedService::new(self.gateway.clone(), bearer))
    }
}

/// A browser names the page that sent a request in `Origin`; the console's API answers only its
/// own page (a request without `Origin` comes from a script or tool, which holds its own token).
fn refuse_other_origins(headers: &HeaderMap) -> Result<(), Refusal> {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok()) else { return Ok(()) };
    let host = headers.get(header::HOST).and_then(|value| value.to_str().ok()).unwrap_or_default();
    let origin_host = origin.split_once("://").map(|(_, rest)| rest).unwrap_or(origin);
    if !host.is_empty() && origin_host == host {
        return Ok(());
    }
    Err(Refusal::new(Code::PermissionDenied, "the console's API answers only the console's own page"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, HeaderValue::from_static(value));
        }
        headers
    }

    #[test]
    fn only_the_console_s_own_page_may_call_its_api() {
        assert!(refuse_other_origins(&headers(&[("host", "127.0.0.1:8080")])).is_ok());
        assert!(
            refuse_other_origins(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8080")])).is_ok()
        );
        let refused =
            refuse_other_origins(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://evil.example")])).err();
        assert_eq!(refused.map(|refusal| refusal.status.code()), Some(Code::PermissionDenied));
        let refused =
            refuse_other_origins(&headers(&[("host", "127.0.0.1:8080"), ("origin", "http://127.0.0.1:8081")])).err();
        assert!(refused.is_some());
    }

    #[test]
    fn the_page_may_connect_to_itself_and_to_the_identity_provider_s_token_endpoint_only() {
        assert!(content_security_policy(None).contains("connect-src 'self';"));
        let sign_on = kefu_kit::config::ConsoleSignOn {
            authorize_url: "https://sso.example.com/oauth/authorize".into(),
            token_url: "https://sso.example.com:8443/oauth/token".into(),
            client_id: "kefu-console".into(),
            scope: "openid".into(),
        };
        let policy = content_security_policy(Some(&sign_on));
        assert!(policy.contains("connect-src 'self' https://sso.example.com:8443;"), "{policy}");
        assert!(policy.contains("script-src 'self';"), "{policy}");
    }

    #[test]
    fn every_asset_is_embedded_and_the_page_loads_only_them() {
        let page = ASSETS[0].2;
        for asset in ["/console.js", "/console.css"] {
            assert!(page.contains(&format!("\"{asset}\"")), "the page loads {asset}");
            assert!(ASSETS.iter().any(|(path, _, body)| *path == asset && !body.is_empty()));
        }
        assert!(!page.contains("<script>"), "no inline script: the content security policy forbids it");
        assert!(!page.contains("http://") && !page.contains("https://"), "nothing from another origin");
    }
}
