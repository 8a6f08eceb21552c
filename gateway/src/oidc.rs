//! Staff through the company's single sign-on: OIDC bearer JWTs, verified at the gateway against
//! the issuer's public keys (a JWKS file, `KEFU_OIDC_JWKS_FILE`, in Kubernetes a ConfigMap that
//! the identity team updates on key rotation; it is re-read within 5 seconds of a change).
//!
//! A JWT is accepted when its signature verifies with the key its header names (`kid`; asymmetric
//! algorithms only, so a public key can never serve as an HMAC secret), `iss` and `aud` are the
//! configured ones, `exp` is a number in the future and `nbf`, if present, a number in the past,
//! each with [`LEEWAY`] for clocks that differ. Which claims carry the subject, department, branch,
//! roles and clearance is configuration (`KEFU_OIDC_*_CLAIM`); roles kefu does not know are ignored.

use std::{
    path::PathBuf,
    sync::RwLock,
    time::{SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use kefu_kit::{caller::Caller, config::OidcConfig};
use serde_json::{Map, Value};

use crate::identity;

/// How often the key file is checked for a change.
const KEYS_CHECKED_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// Seconds two clocks may differ by.
pub const LEEWAY: u64 = 60;
/// The algorithms accepted: public-key signatures only.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

pub struct Oidc {
    config: OidcConfig,
    keys: RwLock<(JwkSet, Option<SystemTime>)>,
}

impl Oidc {
    /// Reads the keys; a missing or unreadable file stops start-up.
    pub fn load(config: OidcConfig) -> Result<Oidc, String> {
        let (keys, modified) = read_keys(&config.jwks_file)?;
        Ok(Oidc { config, keys: RwLock::new((keys, modified)) })
    }

    /// Re-reads the keys if the file changed; on a broken file the keys held keep serving.
    pub fn reload_if_changed(&self) {
        let modified = std::fs::metadata(&self.config.jwks_file).and_then(|meta| meta.modified()).ok();
        let held = self.keys.read().ok().and_then(|keys| keys.1);
        if modified.is_none() || modified == held {
            return;
        }
        match read_keys(&self.config.jwks_file) {
            Ok(fresh) => {
                if let Ok(mut keys) = self.keys.write() {
                    *keys = fresh;
                }
                tracing::info!(file = %self.config.jwks_file.display(), "single sign-on keys re-read");
            }
            Err(error) => tracing::error!(%error, "single sign-on keys not re-read; the earlier keys still serve"),
        }
    }

    /// Rereads the keys when their file changes (a ConfigMap updated on key rotation), until `shutdown`.
    pub async fn keep_fresh(self: std::sync::Arc<Self>, shutdown: kefu_kit::Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.clone().wait() => return,
                _ = tokio::time::sleep(KEYS_CHECKED_EVERY) => self.reload_if_changed(),
            }
        }
    }

    /// The caller a JWT stands for, and when it expires; or why it was refused.
    pub fn verify(&self, jwt: &str) -> Result<(Caller, Option<DateTime<Utc>>), String> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| "unreadable header".to_owned())?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(format!("algorithm {:?} is not accepted", header.alg));
        }
        let key = {
            let keys = self.keys.read().map_err(|_| "keys unavailable".to_owned())?;
            let jwk = match &header.kid {
                Some(kid) => keys.0.find(kid),
                None if keys.0.keys.len() == 1 => keys.0.keys.first(),
                None => None,
            }
            .ok_or_else(|| "signed with a key the issuer's key set does not hold".to_owned())?;
            DecodingKey::from_jwk(jwk).map_err(|_| "the issuer's key is unusable".to_owned())?
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.config.issuer]);
        validation.set_audience(&[&self.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        let claims = jsonwebtoken::decode::<Map<String, Value>>(jwt, &key, &validation)
            .map_err(|error| describe(error.kind()))?
            .claims;
        // Checked again here, as numbers: a claim of another type never counts as absent.
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs()) as i64;
        let number =
            |name: &str| claims.get(name).map(|value| value.as_i64().or_else(|| value.as_f64().map(|f| f as i64)));
        let expires = match number("exp") {
            Some(Some(exp)) if exp + LEEWAY as i64 > now => exp,
            Some(Some(_)) => return Err("expired".into()),
            _ => return Err("exp is not a number".into()),
        };
        match number("nbf") {
            None => {}
            Some(Some(nbf)) if nbf - (LEEWAY as i64) <= now => {}
            Some(Some(_)) => return Err("not valid yet".into()),
            Some(None) => return Err("nbf is not a number".into()),
        }
        let text = |name: &str| claims.get(name).and_then(Value::as_str).unwrap_or("").trim().to_owned();
        let subject = text(&self.config.subject_claim);
        // The subject travels as gRPC metadata and is recorded as the actor: printable ASCII, like a
        // staff id or an e-mail address.
        if subject.is_empty() || subject.len() > 128 || !subject.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(format!("no usable {} claim (an id of printable ASCII)", self.config.subject_claim));
        }
        let roles: Vec<String> = match claims.get(&self.config.roles_claim) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).map(str::to_owned).collect(),
            Some(Value::String(value)) => value.split([' ', ',']).map(str::to_owned).collect(),
            _ => Vec::new(),
        };
        let mut known: Vec<String> = Vec::new();
        for role in roles {
            let role = role.trim();
            if identity::ROLES.contains(&role) && !known.iter().any(|held| held == role) {
                known.push(role.to_owned());
            }
        }
        let department = text(&self.config.department_claim);
        let clearance = text(&self.config.clearance_claim);
        // The rules a kefu token is held to hold for a single sign-on identity too: roles that
        // are held alone, a branch system's branch, and no credential good for more than a year.
        let branch = Some(text(&self.config.branch_claim)).filter(|branch| kefu_kit::text::is_branch(branch));
        if let Err((field, rule)) = identity::roles_hold_together(&known, branch.as_deref().unwrap_or("")) {
            let claim = if field == "branch" { &self.config.branch_claim } else { &self.config.roles_claim };
            return Err(format!("the {claim} claim breaks kefu's rule: {rule}"));
        }
        if expires > now + MAX_LIFETIME_SECONDS {
            return Err("exp is more than a year away; kefu accepts no credential good for longer".into());
        }
        let caller = Caller {
            user: subject,
            department: if identity::DEPARTMENTS.contains(&department.as_str()) { department } else { String::new() },
            branch: branch.unwrap_or_default(),
            roles: known,
            clearance: if identity::CLEARANCES.contains(&clearance.as_str()) { clearance } else { String::new() },
        };
        Ok((caller, DateTime::from_timestamp(expires, 0)))
    }
}

/// The longest a credential may be good for, as for a kefu token: a year (366 days).
const MAX_LIFETIME_SECONDS: i64 = 366 * 24 * 3600;

fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> String {
    use jsonwebtoken::errors::ErrorKind::*;
    match kind {
        ExpiredSignature => "expired",
        ImmatureSignature => "not valid yet",
        InvalidIssuer => "issued by another issuer",
        InvalidAudience => "meant for another audience",
        InvalidSignature => "bad signature",
        MissingRequiredClaim(_) => "a required claim (exp, iss, aud) is missing",
        InvalidAlgorithm => "the key is not for this algorithm",
        _ => "malformed",
    }
    .to_owned()
}

fn read_keys(path: &PathBuf) -> Result<(JwkSet, Option<SystemTime>), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| format!("KEFU_OIDC_JWKS_FILE={}: cannot read it: {error}", path.display()))?;
    let keys: JwkSet = serde_json::from_str(&text)
        .map_err(|error| format!("KEFU_OIDC_JWKS_FILE={}: not a JWKS (JSON Web Key Set): {error}", path.display()))?;
    let modified = std::fs::metadata(path).and_then(|meta| meta.modified()).ok();
    Ok((keys, modified))
}
