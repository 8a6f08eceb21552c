//! kefu tokens: the credentials of branch-office systems, scripts and staff without single sign-on.
//!
//! A token's secret is `kefu_{id}_{64 hex digits}`; the gateway keeps only the SHA-256 of the
//! random part, in its own table (`gateway.tokens` on PostgreSQL, `gateway.db` on SQLite), so every
//! replica on one database agrees. Verifying a token must cost nothing on the hot path, so each
//! replica holds every token in memory ([`TokenCache`]) and reloads the table every
//! [`REFRESH_INTERVAL`]: a token revoked on one replica is refused by all within 10 seconds (at
//! once on the replica that revoked it).
//!
//! The rule of delegation (`Tokens` is for the role `admin` alone, by the access table): an admin
//! gives no token more than it holds itself — see [`check_delegation`].

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use chrono::{DateTime, Utc};
use kefu_kit::{
    Shutdown,
    caller::Caller,
    clock::SharedClock,
    error::{FieldViolations, check_request_id, from_db, idempotency_key, is_unique_violation},
    migrate::{Migration, SchemaStatement},
    paging,
    text::hex,
    time::{from_timestamp, to_timestamp},
};
use kefu_proto::gateway::v1::{self as pb, tokens_server};
use sea_orm::{
    ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{ColumnDef, Index, Table},
};
use sha2::{Digest, Sha256};
use tonic::{Request, Response, Status};

use crate::{
    access::AccessTable,
    identity::{self, Principal},
};

pub const SERVICE_NAME: &str = "kefu.gateway.v1.Tokens";
/// How often every replica reloads the tokens table.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);
/// A token's lifetime when none is asked for.
const DEFAULT_LIFETIME: chrono::Duration = chrono::Duration::days(90);
/// The latest a token created at `now` may expire: one calendar year later.
fn latest_expiry(now: DateTime<Utc>) -> DateTime<Utc> {
    now.checked_add_months(chrono::Months::new(12)).unwrap_or(now + chrono::Duration::days(365))
}
const PREFIX: &str = "kefu_";
const MAX_TEXT: usize = 128;

pub mod token_row {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "tokens")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub seq: i64,
        #[sea_orm(unique)]
        pub id: String,
        pub subject: String,
        pub display_name: String,
        pub department: String,
        pub branch: String,
        /// Comma-separated.
        pub roles: String,
        pub clearance: String,
        /// SHA-256 of the secret's random part, hex.
        pub secret_hash: String,
        pub expire_time: DateTimeUtc,
        pub create_time: DateTimeUtc,
        pub creator: String,
        pub revoke_time: Option<DateTimeUtc>,
        #[sea_orm(unique)]
        pub request_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub static MIGRATION: Migration = Migration {
    name: "gateway_0001_tokens",
    statements: || {
        use token_row::{Column as C, Entity};
        vec![
            SchemaStatement::Table(
                Table::create()
                    .table(Entity)
                    .if_not_exists()
                    .col(ColumnDef::new(C::Seq).big_integer().not_null().auto_increment().primary_key())
                    .col(ColumnDef::new(C::Id).string_len(32).not_null().unique_key())
                    .col(ColumnDef::new(C::Subject).string_len(128).not_null())
                    .col(ColumnDef::new(C::DisplayName).string_len(128).not_null())
                    .col(ColumnDef::new(C::Department).string_len(32).not_null())
                    .col(ColumnDef::new(C::Branch).string_len(32).not_null())
                    .col(ColumnDef::new(C::Roles).string_len(256).not_null())
                    .col(ColumnDef::new(C::Clearance).string_len(32).not_null())
                    .col(ColumnDef::new(C::SecretHash).string_len(64).not_null())
                    .col(ColumnDef::new(C::ExpireTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(C::CreateTime).timestamp_with_time_zone().not_null())
                    .col(ColumnDef::new(C::Creator).string_len(128).not_null())
                    .col(ColumnDef::new(C::RevokeTime).timestamp_with_time_zone().null())
                    .col(ColumnDef::new(C::RequestId).string_len(128).null().unique_key())
                    .to_owned(),
            ),
            SchemaStatement::Index(
                Index::create().if_not_exists().name("tokens_creator").table(Entity).col(C::Creator).to_owned(),
            ),
        ]
    },
};

/// What a replica keeps of one valid token.
#[derive(Debug, Clone)]
struct Cached {
    secret_hash: [u8; 32],
    caller: Caller,
    expire_time: DateTime<Utc>,
}

/// Every token not revoked, by id, as this replica last read them.
pub struct TokenCache {
    db: DatabaseConnection,
    tokens: RwLock<HashMap<String, Arc<Cached>>>,
}

/// Why a presented kefu token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRefusal {
    /// Not of the form `kefu_{id}_{secret}`.
    Malformed,
    /// No such token, a wrong secret, or a revoked token (told apart to no one).
    Unknown,
    Expired,
}

impl TokenCache {
    pub async fn load(db: DatabaseConnection) -> Result<Arc<TokenCache>, sea_orm::DbErr> {
        let cache = Arc::new(TokenCache { db, tokens: RwLock::new(HashMap::new()) });
        cache.refresh().await?;
        Ok(cache)
    }

    /// Reads every token not revoked.
    pub async fn refresh(&self) -> Result<(), sea_orm::DbErr> {
        let rows = token_row::Entity::find().filter(token_row::Column::RevokeTime.is_null()).all(&self.db).await?;
        let tokens: HashMap<String, Arc<Cached>> =
            rows.into_iter().filter_map(|row| Some((row.id.clone(), Arc::new(cached(&row)?)))).collect();
        if let Ok(mut held) = self.tokens.write() {
            *held = tokens;
        }
        Ok(())
    }

    /// Reloads every [`REFRESH_INTERVAL`] until `shutdown`.
    pub async fn keep_fresh(self: Arc<Self>, shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = shutdown.clone().wait() => return,
                _ = tokio::time::sleep(REFRESH_INTERVAL) => {}
            }
            if let Err(error) = self.refresh().await {
                kefu_kit::error::log_db("cannot reload the tokens; the ones known still serve", &error);
            }
        }
    }

    fn insert(&self, row: &token_row::Model) {
        if let (Some(cached), Ok(mut held)) = (cached(row), self.tokens.write()) {
            held.insert(row.id.clone(), Arc::new(cached));
        }
    }

    fn remove(&self, id: &str) {
        if let Ok(mut held) = self.tokens.write() {
            held.remove(id);
        }
    }

    /// The caller a presented secret stands for, and when its token expires.
    pub fn verify(&self, secret: &str, now: DateTime<Utc>) -> Result<(Caller, DateTime<Utc>, String), TokenRefusal> {
        let (id, random) =
            secret.strip_prefix(PREFIX).and_then(|rest| rest.split_once('_')).ok_or(TokenRefusal::Malformed)?;
        let cached = self.tokens.read().ok().and_then(|held| held.get(id).cloned()).ok_or(TokenRefusal::Unknown)?;
        let presented: [u8; 32] = Sha256::digest(random.as_bytes()).into();
        if !identity::same_bytes(&presented, &cached.secret_hash) {
            return Err(TokenRefusal::Unknown);
        }
        if cached.expire_time <= now {
            return Err(TokenRefusal::Expired);
        }
        Ok((cached.caller.clone(), cached.expire_time, name_of(id)))
    }
}

fn cached(row: &token_row::Model) -> Option<Cached> {
    let hash = unhex32(&row.secret_hash)?;
    Some(Cached { secret_hash: hash, caller: caller_of(row), expire_time: row.expire_time })
}

fn caller_of(row: &token_row::Model) -> Caller {
    Caller {
        user: row.subject.clone(),
        department: row.department.clone(),
        branch: row.branch.clone(),
        roles: split_roles(&row.roles),
        clearance: row.clearance.clone(),
    }
}

fn split_roles(roles: &str) -> Vec<String> {
    roles.split(',').filter(|role| !role.is_empty()).map(str::to_owned).collect()
}

fn unhex32(text: &str) -> Option<[u8; 32]> {
    kefu_kit::text::unhex(text)?.try_into().ok()
}

fn name_of(id: &str) -> String {
    format!("tokens/{id}")
}

/// What a token asks to be, checked.
struct Wanted {
    subject: String,
    display_name: String,
    department: String,
    branch: String,
    roles: Vec<String>,
    clearance: String,
    expire_time: DateTime<Utc>,
}

/// Checks the fields of a token to create; every offending field is named at once.
fn validate(token: &pb::Token, now: DateTime<Utc>) -> Result<Wanted, FieldViolations> {
    let mut violations = FieldViolations::new();
    let subject = token.subject.trim();
    if subject.is_empty()
        || subject.len() > MAX_TEXT
        || !subject.bytes().all(|b| b.is_ascii_alphanumeric() || b"._@-:".contains(&b))
    {
        violations.add(
            "token.subject",
            "required: who the token is, in letters, digits and . _ @ - : (at most 128), e.g. A1024 or branch-SH01-tms",
        );
    }
    let display_name = token.display_name.trim();
    if display_name.chars().count() > MAX_TEXT || display_name.chars().any(char::is_control) {
        violations.add("token.display_name", "at most 128 characters, on one line");
    }
    let department = token.department.trim();
    if !department.is_empty() && !identity::DEPARTMENTS.contains(&department) {
        violations.add("token.department", format!("one of {}, or empty", identity::DEPARTMENTS.join(", ")));
    }
    let branch = token.branch.trim();
    if !branch.is_empty() && !kefu_kit::text::is_branch(branch) {
        violations.add("token.branch", kefu_kit::text::BRANCH_RULE);
    }
    let mut roles: Vec<String> = Vec::new();
    for (index, role) in token.roles.iter().enumerate() {
        let role = role.trim();
        if !identity::ROLES.contains(&role) {
            violations.add(format!("token.roles[{index}]"), format!("one of {}", identity::ROLES.join(", ")));
        } else if roles.iter().any(|held| held == role) {
            violations.add(format!("token.roles[{index}]"), "given twice");
        } else {
            roles.push(role.to_owned());
        }
    }
    if token.roles.is_empty() {
        violations.add("token.roles", "required: at least one role");
    }
    if roles.iter().any(|role| role == identity::ADMIN) && token.roles.len() > 1 {
        violations.add("token.roles", "admin is given alone: a token that manages tokens does no case work");
    }
    if roles.iter().any(|role| role == identity::BRANCH_SYSTEM) {
        if branch.is_empty() {
            violations.add("token.branch", "required for the role branch_system: the branch it acts for");
        }
        if token.roles.len() > 1 {
            violations.add("token.roles", "branch_system is given alone: a branch's system is not staff");
        }
    }
    let clearance = token.clearance.trim();
    if !clearance.is_empty() && !identity::CLEARANCES.contains(&clearance) {
        violations.add("token.clearance", "confidential, top_secret, or empty for ordinary files only");
    }
    let expire_time = match &token.expire_time {
        None => now + DEFAULT_LIFETIME,
        Some(timestamp) => match from_timestamp(timestamp) {
            Some(time) if time > now && time <= latest_expiry(now) => time,
            Some(time) if time <= now => {
                violations.add("token.expire_time", "must be in the future");
                now
            }
            _ => {
                violations.add("token.expire_time", "at most one year from now (leave it unset for 90 days)");
                now
            }
        },
    };
    if !violations.is_empty() {
        return Err(violations);
    }
    Ok(Wanted {
        subject: subject.to_owned(),
        display_name: display_name.to_owned(),
        department: department.to_owned(),
        branch: branch.to_owned(),
        roles,
        clearance: clearance.to_owned(),
        expire_time,
    })
}

/// The rule of delegation: an admin gives no token more than it holds. Returns the rule broken.
///
/// - an admin bound to a department (its own token names one) gives tokens of that department only;
/// - an admin bound to a branch gives tokens of that branch only;
/// - no clearance above the admin's own;
/// - with a kefu token, no expiry after the admin's own (a single sign-on session's end is no limit).
///
/// The bootstrap administrator is bound to nothing and holds `top_secret`: it can set up any token.
fn check_delegation(
    admin: &Principal,
    department: &str,
    branch: &str,
    clearance: &str,
    expire_time: Option<DateTime<Utc>>,
) -> Result<(), String> {
    let caller = &admin.caller;
    if !caller.department.is_empty() && caller.department != department {
        return Err(format!(
            "you administer the tokens of department {} only, and this one is for {}",
            caller.department,
            if department.is_empty() { "no department" } else { department }
        ));
    }
    if !caller.branch.is_empty() && caller.branch != branch {
        return Err(format!("you administer the tokens of branch {} only", caller.branch));
    }
    if identity::clearance_rank(clearance) > identity::clearance_rank(&caller.clearance) {
        return Err(format!(
            "you may give no clearance above your own ({})",
            if caller.clearance.is_empty() { "none" } else { &caller.clearance }
        ));
    }
    if let (Some(limit), Some(expire_time)) = (admin.delegation_limit(), expire_time)
        && expire_time > limit
    {
        return Err(format!(
            "a token you give may not outlive your own, which expires at {}",
            limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ));
    }
    Ok(())
}

fn to_proto(row: &token_row::Model) -> pb::Token {
    pb::Token {
        name: name_of(&row.id),
        subject: row.subject.clone(),
        display_name: row.display_name.clone(),
        department: row.department.clone(),
        branch: row.branch.clone(),
        roles: split_roles(&row.roles),
        clearance: row.clearance.clone(),
        expire_time: Some(to_timestamp(row.expire_time)),
        create_time: Some(to_timestamp(row.create_time)),
        creator: row.creator.clone(),
        revoke_time: row.revoke_time.map(to_timestamp),
    }
}

/// `kefu.gateway.v1.Tokens`.
pub struct TokensApi {
    db: DatabaseConnection,
    cache: Arc<TokenCache>,
    clock: SharedClock,
    /// What `GetCaller` says a caller may call.
    access: Arc<AccessTable>,
}

impl TokensApi {
    pub fn new(
        db: DatabaseConnection,
        cache: Arc<TokenCache>,
        clock: SharedClock,
        access: Arc<AccessTable>,
    ) -> TokensApi {
        TokensApi { db, cache, clock, access }
    }

    pub fn into_server(self) -> tokens_server::TokensServer<Self> {
        tokens_server::TokensServer::new(self)
    }
}

/// The caller (for all but `GetCaller`, an admin), as the gateway's front door established it.
fn admin_of<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| Status::unauthenticated("no identity was established for this call"))
}

#[tonic::async_trait]
impl tokens_server::Tokens for TokensApi {
    async fn create_token(
        &self,
        request: Request<pb::CreateTokenRequest>,
    ) -> Result<Response<pb::CreateTokenResponse>, Status> {
        let admin = admin_of(&request)?;
        let request = request.into_inner();
        let now = self.clock.now();
        let mut violations = FieldViolations::new();
        check_request_id(&mut violations, "request_id", &request.request_id);
        let token = request.token.unwrap_or_default();
        let expiry_asked = token.expire_time.is_some();
        let wanted = match validate(&token, now) {
            Ok(wanted) => Some(wanted),
            Err(more) => {
                violations.extend(more);
                None
            }
        };
        violations.into_result()?;
        let Some(mut wanted) = wanted else { return Err(Status::internal("validation")) };
        // Unasked, a token lives 90 days, or as long as the admin's own if that ends sooner.
        if !expiry_asked && let Some(limit) = admin.delegation_limit() {
            wanted.expire_time = wanted.expire_time.min(limit);
        }
        let request_id = idempotency_key(&request.request_id).map(str::to_owned);
        if let Some(request_id) = &request_id
            && let Some(earlier) = token_row::Entity::find()
                .filter(token_row::Column::RequestId.eq(request_id.as_str()))
                .one(&self.db)
                .await
                .map_err(|e| from_db("reading tokens", e))?
        {
            return Err(already_created(&earlier));
        }
        check_delegation(&admin, &wanted.department, &wanted.branch, &wanted.clearance, Some(wanted.expire_time))
            .map_err(|rule| Status::permission_denied(format!("token not created: {rule}")))?;
        let id = kefu_kit::trust::random_hex(8).map_err(Status::internal)?;
        let random = kefu_kit::trust::random_hex(32).map_err(Status::internal)?;
        let row = token_row::Model {
            seq: 0,
            id: id.clone(),
            subject: wanted.subject,
            display_name: wanted.display_name,
            department: wanted.department,
            branch: wanted.branch,
            roles: wanted.roles.join(","),
            clearance: wanted.clearance,
            secret_hash: hex(&Sha256::digest(random.as_bytes())),
            expire_time: wanted.expire_time,
            create_time: now,
            creator: admin.caller.user.clone(),
            revoke_time: None,
            request_id: request_id.clone(),
        };
        let mut active: token_row::ActiveModel = row.clone().into();
        active.seq = sea_orm::ActiveValue::NotSet;
        match token_row::Entity::insert(active).exec_without_returning(&self.db).await {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error) => {
                // The same request_id, created by a concurrent retry.
                let earlier = token_row::Entity::find()
                    .filter(token_row::Column::RequestId.eq(request_id.unwrap_or_default()))
                    .one(&self.db)
                    .await
                    .map_err(|e| from_db("reading tokens", e))?;
                return Err(earlier.as_ref().map_or_else(|| from_db("creating a token", error), already_created));
            }
            Err(error) => return Err(from_db("creating a token", error)),
        }
        self.cache.insert(&row);
        tracing::info!(token = %name_of(&id), subject = %row.subject, roles = %row.roles, creator = %row.creator, "token created");
        Ok(Response::new(pb::CreateTokenResponse {
            token: Some(to_proto(&row)),
            secret: format!("{PREFIX}{id}_{random}"),
        }))
    }

    async fn list_tokens(
        &self,
        request: Request<pb::ListTokensRequest>,
    ) -> Result<Response<pb::ListTokensResponse>, Status> {
        let admin = admin_of(&request)?;
        let request = request.into_inner();
        let page_size = paging::page_size(request.page_size)?;
        let scope = format!("{}/{}", admin.caller.department, admin.caller.branch);
        let after = paging::decode_token(&request.page_token, &scope)?;
        let mut query = token_row::Entity::find();
        if !admin.caller.department.is_empty() {
            query = query.filter(token_row::Column::Department.eq(admin.caller.department.as_str()));
        }
        if !admin.caller.branch.is_empty() {
            query = query.filter(token_row::Column::Branch.eq(admin.caller.branch.as_str()));
        }
        if let Some(after) = after {
            query = query.filter(token_row::Column::Seq.lt(after));
        }
        let rows = query
            .order_by_desc(token_row::Column::Seq)
            .limit(page_size + 1)
            .all(&self.db)
            .await
            .map_err(|e| from_db("listing tokens", e))?;
        let (rows, next) = paging::take_page(rows, page_size, |row| row.seq);
        Ok(Response::new(pb::ListTokensResponse {
            tokens: rows.iter().map(to_proto).collect(),
            next_page_token: next.map(|position| paging::encode_token(position, &scope)).unwrap_or_default(),
        }))
    }

    async fn get_caller(&self, request: Request<pb::GetCallerRequest>) -> Result<Response<pb::Caller>, Status> {
        // The front door established who this is (the access table lets every authenticated
        // person or system ask); this only says it back.
        let principal = admin_of(&request)?;
        let mut methods: Vec<String> =
            self.access.methods().filter(|method| self.access.allows(method, &principal)).map(str::to_owned).collect();
        methods.sort();
        let caller = principal.caller;
        Ok(Response::new(pb::Caller {
            subject: caller.user,
            department: caller.department,
            branch: caller.branch,
            roles: caller.roles,
            clearance: caller.clearance,
            expire_time: principal.expires.map(to_timestamp),
            methods,
        }))
    }

    async fn revoke_token(&self, request: Request<pb::RevokeTokenRequest>) -> Result<Response<pb::Token>, Status> {
        let admin = admin_of(&request)?;
        let name = request.into_inner().name;
        let id = name
            .strip_prefix("tokens/")
            .filter(|id| !id.is_empty() && id.len() <= 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| kefu_kit::error::invalid_field("name", "a token's name, tokens/{id}"))?;
        let not_found = || Status::not_found(format!("no token {name}"));
        let row = token_row::Entity::find()
            .filter(token_row::Column::Id.eq(id))
            .one(&self.db)
            .await
            .map_err(|e| from_db("reading tokens", e))?
            .ok_or_else(not_found)?;
        // A token outside the admin's scope is answered exactly like a missing one.
        if check_delegation(&admin, &row.department, &row.branch, "", None).is_err() {
            return Err(not_found());
        }
        if row.revoke_time.is_some() {
            return Ok(Response::new(to_proto(&row)));
        }
        let now = self.clock.now();
        token_row::Entity::update_many()
            .col_expr(token_row::Column::RevokeTime, sea_orm::sea_query::Expr::value(now))
            .filter(token_row::Column::Id.eq(id))
            .filter(token_row::Column::RevokeTime.is_null())
            .exec(&self.db)
            .await
            .map_err(|e| from_db("revoking a token", e))?;
        self.cache.remove(id);
        tracing::info!(token = %name, subject = %row.subject, by = %admin.caller.user, "token revoked");
        Ok(Response::new(to_proto(&token_row::Model { revoke_time: Some(now), ..row })))
    }
}

fn already_created(earlier: &token_row::Model) -> Status {
    Status::already_exists(format!(
        "this request_id already created {}; its secret was shown once, so if the first answer was lost, revoke it (RevokeToken) and create a new one",
        name_of(&earlier.id)
    ))
}

/// Opens the gateway's database (its own schema or file, like a service's) and its tables.
pub async fn open(config: &kefu_kit::Config) -> Result<DatabaseConnection, sea_orm::DbErr> {
    let db = kefu_kit::db::connect(config, "gateway").await?;
    kefu_kit::migrate::run(&db, "gateway", &[&MIGRATION]).await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Kind;

    fn admin(department: &str, branch: &str, clearance: &str, expires: Option<DateTime<Utc>>) -> Principal {
        Principal {
            caller: Caller {
                user: "root".into(),
                department: department.into(),
                branch: branch.into(),
                roles: vec![identity::ADMIN.into()],
                clearance: clearance.into(),
            },
            kind: Kind::Token("tokens/00".into()),
            expires,
        }
    }

    #[test]
    fn an_admin_gives_no_more_than_it_holds() {
        let company = admin("", "", "top_secret", None);
        assert_eq!(check_delegation(&company, "archives", "", "top_secret", None), Ok(()));
        let claims = admin("claims", "", "confidential", None);
        assert_eq!(check_delegation(&claims, "claims", "", "confidential", None), Ok(()));
        let refused = check_delegation(&claims, "intake", "", "", None).expect_err("another department");
        assert!(refused.contains("department claims only"), "{refused}");
        assert!(check_delegation(&claims, "", "", "", None).is_err(), "a company-wide token is more than claims");
        let refused = check_delegation(&claims, "claims", "", "top_secret", None).expect_err("more clearance");
        assert!(refused.contains("above your own"), "{refused}");
        let branch = admin("", "SH01", "", None);
        assert!(check_delegation(&branch, "", "BJ02", "", None).is_err());
        assert_eq!(check_delegation(&branch, "", "SH01", "", None), Ok(()));
        let now = Utc::now();
        let expiring = admin("", "", "", Some(now + chrono::Duration::days(10)));
        assert!(check_delegation(&expiring, "", "", "", Some(now + chrono::Duration::days(11))).is_err());
        assert_eq!(check_delegation(&expiring, "", "", "", Some(now + chrono::Duration::days(9))), Ok(()));
        let signed_in = Principal { kind: Kind::Staff, ..admin("", "", "", Some(now + chrono::Duration::hours(1))) };
        assert_eq!(
            check_delegation(&signed_in, "", "", "", Some(now + chrono::Duration::days(90))),
            Ok(()),
            "a single sign-on session's end is no limit"
        );
    }

    #[test]
    fn a_token_names_every_bad_field() {
        let now = Utc::now();
        let token = pb::Token {
            subject: "A 1024".into(),
            department: "sales".into(),
            roles: vec!["agent".into(), "wizard".into(), "agent".into()],
            clearance: "cosmic".into(),
            expire_time: Some(to_timestamp(now + chrono::Duration::days(400))),
            ..Default::default()
        };
        let Err(violations) = validate(&token, now) else { panic!("invalid") };
        let fields: Vec<&str> = violations.fields().collect();
        for field in [
            "token.subject",
            "token.department",
            "token.roles[1]",
            "token.roles[2]",
            "token.clearance",
            "token.expire_time",
        ] {
            assert!(fields.contains(&field), "{field} in {fields:?}");
        }
        let lone = |roles: &[&str], branch: &str| pb::Token {
            subject: "x".into(),
            branch: branch.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            ..Default::default()
        };
        assert!(validate(&lone(&["admin", "agent"], ""), now).is_err(), "admin alone");
        assert!(validate(&lone(&["branch_system"], ""), now).is_err(), "a branch system needs its branch");
        let Ok(ok) = validate(&lone(&["branch_system"], "SH01"), now) else { panic!("valid") };
        assert_eq!(ok.expire_time, now + DEFAULT_LIFETIME);
    }
}
