//! Who is calling: the one place kefu establishes a caller's identity. Every call but health and
//! reflection carries `authorization: Bearer <secret>`, which is one of
//!
//! - a **kefu token** (`kefu_…`, see [`crate::tokens`]): branch-office systems, scripts, staff;
//! - an **OIDC JWT** from the company's single sign-on (three dot-separated parts, see
//!   [`crate::oidc`]): staff;
//! - the **bootstrap secret** (`KEFU_BOOTSTRAP_TOKEN`): subject `bootstrap`, the single role `admin`,
//!   to create the first tokens.
//!
//! A kefu service calling the gateway (settlement files late remittances as complaints) proves
//! itself with a signed internal assertion instead (`kefu_kit::trust`) and is the principal
//! `service:<name>`.
//!
//! Whatever `x-kefu-*` headers a caller sends are dropped at the front door ([`crate::forward`]);
//! only the identity established here travels on.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use chrono::{DateTime, Utc};
use http::HeaderMap;
use kefu_kit::{
    caller::Caller,
    clock::SharedClock,
    config::ServiceName,
    trust::{self, InternalKey, Verified},
};
use sha2::{Digest, Sha256};

use crate::{
    oidc::Oidc,
    tokens::{TokenCache, TokenRefusal},
};

/// The roles, fixed.
pub const ROLES: [&str; 8] = [
    "agent",
    "supervisor",
    "department_head",
    "business_manager",
    "general_manager",
    "archivist",
    BRANCH_SYSTEM,
    ADMIN,
];
pub const ADMIN: &str = "admin";
pub const BRANCH_SYSTEM: &str = "branch_system";
/// The departments, fixed.
pub const DEPARTMENTS: [&str; 6] = ["intake", "inspection", "claims", "settlement", "archives", "external"];
/// The department of outsiders who borrow files (003 第20条): never company staff.
pub const EXTERNAL: &str = kefu_kit::personal::OUTSIDERS;
/// The clearances, lowest first.
pub const CLEARANCES: [&str; 2] = ["confidential", "top_secret"];
/// The bootstrap administrator's subject.
pub const BOOTSTRAP: &str = "bootstrap";

/// Roles that may be held only alone, and what each needs: `admin` manages tokens and does no case
/// work; `branch_system` is a branch office's system, not staff, and needs its branch. The same
/// rule for kefu tokens and single sign-on identities. The error names the field (`roles`,
/// `branch`) and the rule.
pub fn roles_hold_together(roles: &[String], branch: &str) -> Result<(), (&'static str, &'static str)> {
    let holds = |role: &str| roles.iter().any(|held| held == role);
    if holds(ADMIN) && roles.len() > 1 {
        return Err(("roles", "admin is given alone: a token that manages tokens does no case work"));
    }
    if holds(BRANCH_SYSTEM) {
        if roles.len() > 1 {
            return Err(("roles", "branch_system is given alone: a branch's system is not staff"));
        }
        if branch.is_empty() {
            return Err(("branch", "required for the role branch_system: the branch it acts for"));
        }
    }
    Ok(())
}

/// How far up [`CLEARANCES`] a clearance reaches: 0 for none.
pub fn clearance_rank(clearance: &str) -> usize {
    CLEARANCES.iter().position(|known| *known == clearance).map_or(0, |index| index + 1)
}

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A kefu token, by name.
    Token(String),
    /// A JWT from the company's single sign-on.
    Staff,
    Bootstrap,
    /// A kefu service, by its signed assertion.
    Service(ServiceName),
}

/// Who is calling, as the gateway established it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub caller: Caller,
    pub kind: Kind,
    /// When the credential stops being valid, where it says (kefu tokens, JWTs).
    pub expires: Option<DateTime<Utc>>,
}

impl Principal {
    pub fn service(&self) -> Option<ServiceName> {
        match self.kind {
            Kind::Service(service) => Some(service),
            _ => None,
        }
    }

    /// The latest expiry this principal may give a token: its own kefu token's. A single sign-on
    /// session's end is not a limit on what an administrator hands out, and the bootstrap has none.
    pub fn delegation_limit(&self) -> Option<DateTime<Utc>> {
        match self.kind {
            Kind::Token(_) => self.expires,
            _ => None,
        }
    }

    /// The principal, as logs name it: its subject and roles (never a secret).
    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.caller.user,
            if self.caller.roles.is_empty() { "no role".into() } else { self.caller.roles.join(",") }
        )
    }
}

/// Why a call was not authenticated. The message tells the caller what to do and never repeats
/// what it sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    NotBearer,
    Token(TokenRefusal),
    Jwt(String),
    NoSingleSignOn,
    Internal(trust::Refusal),
}

impl AuthError {
    pub fn message(&self) -> String {
        match self {
            AuthError::Missing => "no credentials: send `authorization: Bearer <token>`; an administrator creates tokens with `kefu token create`".into(),
            AuthError::NotBearer => "the authorization header must be `Bearer <token>`".into(),
            AuthError::Token(TokenRefusal::Malformed) => "the bearer token is not a kefu token, a single sign-on token or the bootstrap secret".into(),
            AuthError::Token(TokenRefusal::Unknown) => "the kefu token is unknown or revoked: ask an administrator for a new one".into(),
            AuthError::Token(TokenRefusal::Expired) => "the kefu token has expired: ask an administrator for a new one".into(),
            AuthError::Jwt(why) => format!("the single sign-on token was refused ({why}): sign in again"),
            AuthError::NoSingleSignOn => "single sign-on tokens are not accepted here (no KEFU_OIDC_ISSUER): use a kefu token".into(),
            AuthError::Internal(refusal) => format!("the call carried {}", refusal.as_str()),
        }
    }

    /// A short stable reason for logs and counts.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::NotBearer => "not_bearer",
            AuthError::Token(TokenRefusal::Malformed) => "malformed",
            AuthError::Token(TokenRefusal::Unknown) => "unknown_or_revoked",
            AuthError::Token(TokenRefusal::Expired) => "expired",
            AuthError::Jwt(_) => "jwt_refused",
            AuthError::NoSingleSignOn => "no_single_sign_on",
            AuthError::Internal(_) => "bad_internal_assertion",
        }
    }
}

/// Calls the gateway refused as unauthenticated, and as not allowed by the access table, since start.
pub static UNAUTHENTICATED_CALLS: AtomicU64 = AtomicU64::new(0);
pub static DENIED_CALLS: AtomicU64 = AtomicU64::new(0);
/// Calls refused for going over a principal's rate, since start.
pub static LIMITED_CALLS: AtomicU64 = AtomicU64::new(0);
/// Calls refused because their peer address was over its refused calls, since start.
pub static SHED_CALLS: AtomicU64 = AtomicU64::new(0);
/// Log lines written about refused calls, since start (most refusals are summed into few lines).
pub static REFUSALS_LOGGED: AtomicU64 = AtomicU64::new(0);

/// Establishes who is calling.
pub struct Authenticator {
    tokens: Arc<TokenCache>,
    bootstrap: Option<[u8; 32]>,
    oidc: Option<Arc<Oidc>>,
    internal: InternalKey,
    clock: SharedClock,
}

impl Authenticator {
    pub fn new(
        tokens: Arc<TokenCache>,
        bootstrap: Option<&str>,
        oidc: Option<Arc<Oidc>>,
        internal: InternalKey,
        clock: SharedClock,
    ) -> Authenticator {
        let bootstrap = bootstrap.map(|secret| Sha256::digest(secret.as_bytes()).into());
        Authenticator { tokens, bootstrap, oidc, internal, clock }
    }

    /// The principal calling `path` with these headers; for a kefu service, also what is left to
    /// check of its assertion once the body is read ([`Authenticator::accept_service`]).
    pub fn authenticate(&self, path: &str, headers: &HeaderMap) -> Result<(Principal, Option<Verified>), AuthError> {
        if headers.contains_key(trust::ASSERTION) {
            return self.service(path, headers).map(|(principal, verified)| (principal, Some(verified)));
        }
        self.person(headers).map(|principal| (principal, None))
    }

    /// A kefu service's call, the second half: the body is the one its assertion was made for, and
    /// the assertion was not used before.
    pub fn accept_service(&self, verified: Verified, body: &[u8]) -> Result<(), AuthError> {
        self.internal.accept(verified, body, std::time::SystemTime::now()).map(drop).map_err(AuthError::Internal)
    }

    fn person(&self, headers: &HeaderMap) -> Result<Principal, AuthError> {
        let value = headers.get(http::header::AUTHORIZATION).ok_or(AuthError::Missing)?;
        let value = value.to_str().map_err(|_| AuthError::NotBearer)?.trim();
        let secret = match value.split_once(' ') {
            Some((scheme, secret)) if scheme.eq_ignore_ascii_case("bearer") => secret.trim(),
            _ => return Err(AuthError::NotBearer),
        };
        if secret.starts_with("kefu_") {
            let (caller, expires, name) = self.tokens.verify(secret, self.clock.now()).map_err(AuthError::Token)?;
            return Ok(Principal { caller, kind: Kind::Token(name), expires: Some(expires) });
        }
        if secret.split('.').count() == 3 {
            let oidc = self.oidc.as_ref().ok_or(AuthError::NoSingleSignOn)?;
            let (caller, expires) = oidc.verify(secret).map_err(AuthError::Jwt)?;
            return Ok(Principal { caller, kind: Kind::Staff, expires });
        }
        let presented: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        match &self.bootstrap {
            Some(bootstrap) if same_bytes(&presented, bootstrap) => {
                tracing::warn!(
                    "the bootstrap token was used: create named admin tokens and unset KEFU_BOOTSTRAP_TOKEN"
                );
                Ok(Principal {
                    caller: Caller {
                        user: BOOTSTRAP.into(),
                        department: String::new(),
                        branch: String::new(),
                        roles: vec![ADMIN.into()],
                        clearance: "top_secret".into(),
                    },
                    kind: Kind::Bootstrap,
                    expires: None,
                })
            }
            _ => Err(AuthError::Token(TokenRefusal::Malformed)),
        }
    }

    /// A kefu service calling the gateway with a signed assertion.
    fn service(&self, path: &str, headers: &HeaderMap) -> Result<(Principal, Verified), AuthError> {
        let verified =
            self.internal.verify(path, headers, std::time::SystemTime::now()).map_err(AuthError::Internal)?;
        let service: ServiceName =
            verified.issuer.parse().map_err(|_| AuthError::Internal(trust::Refusal::WrongIssuer))?;
        let principal = Principal {
            caller: Caller {
                user: service.as_str().into(),
                department: service.as_str().into(),
                branch: String::new(),
                roles: Vec::new(),
                clearance: String::new(),
            },
            kind: Kind::Service(service),
            expires: None,
        };
        Ok((principal, verified))
    }
}

/// Compares two byte strings in time that does not depend on where they differ.
pub fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

/// Counts a refused call, and logs it (subject, method, reason; never a secret) when `log` holds
/// how many of its peer's refusals went unlogged since its last line ([`crate::refusals`]).
pub fn record_unauthenticated(path: &str, error: &AuthError, log: Option<u64>) {
    let count = UNAUTHENTICATED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    kefu_kit::metrics::gateway_refused("unauthenticated");
    if let Some(not_logged) = log {
        REFUSALS_LOGGED.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(method = %path, reason = error.reason(), unauthenticated_calls = count, refusals_not_logged = not_logged, "call not authenticated");
    }
}

pub fn record_denied(path: &str, principal: &Principal, log: Option<u64>) {
    let count = DENIED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    kefu_kit::metrics::gateway_refused("denied");
    if let Some(not_logged) = log {
        REFUSALS_LOGGED.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(method = %path, subject = %principal.caller.user, roles = %principal.caller.roles.join(","), department = %principal.caller.department, denied_calls = count, refusals_not_logged = not_logged, "call denied by the access table");
    }
}

/// Counts a call refused because its peer address was over its refusals (never logged one by one).
pub fn record_shed() {
    SHED_CALLS.fetch_add(1, Ordering::Relaxed);
    kefu_kit::metrics::gateway_refused("over_peer_refusals");
}

pub fn record_limited(path: &str, principal: &Principal) {
    let count = LIMITED_CALLS.fetch_add(1, Ordering::Relaxed) + 1;
    kefu_kit::metrics::gateway_refused("rate_limited");
    if count.is_power_of_two() {
        tracing::warn!(method = %path, subject = %principal.caller.user, limited_calls = count, "calls over the principal's rate refused");
    }
}
