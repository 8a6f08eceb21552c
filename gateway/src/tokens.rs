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
        /// Scoped to the creator (see `scoped_request_id`): another admin's id is a fresh one.
        #[sea_orm(unique)]
        pub request_id: Option<String>,
        /// The kefu token its creator made it with (`tokens/{id}`); none for the bootstrap secret
        /// and single sign-on. While that token is revoked, so is this one (suspended).
        pub creator_token: Option<String>,
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

/// Who made each token: a token made with a kefu token stands only while that token stands.
pub static MIGRATION_CREATOR_TOKEN: Migration = Migration {
    name: "gateway_0002_tokens_creator_token",
    statements: || {
        use token_row::{Column as C, Entity};
        vec![SchemaStatement::Alter(
            Table::alter().table(Entity).add_column(ColumnDef::new(C::CreatorToken).string_len(48).null()).to_owned(),
        )]
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

    /// Reads every token that stands: not revoked, and made by no revoked token ([`standing`]).
    pub async fn refresh(&self) -> Result<(), sea_orm::DbErr> {
        let rows = token_row::Entity::find().all(&self.db).await?;
        let tokens: HashMap<String, Arc<Cached>> =
            standing(&rows).into_iter().filter_map(|row| Some((row.id.clone(), Arc::new(cached(row)?)))).collect();
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

/// The tokens that stand: not revoked, and — where a kefu token made them — made by a token that
/// stands. Revoking an admin's token suspends every token it made, and theirs in turn; revoked by
/// hand, they stay revoked. (An admin's token that merely expired suspends nothing: no token it
/// gave outlives it.)
fn standing(rows: &[token_row::Model]) -> Vec<&token_row::Model> {
    let by_id: HashMap<&str, &token_row::Model> = rows.iter().map(|row| (row.id.as_str(), row)).collect();
    let mut known: HashMap<&str, bool> = HashMap::new();
    fn stands<'a>(
        row: &'a token_row::Model,
        by_id: &HashMap<&str, &'a token_row::Model>,
        known: &mut HashMap<&'a str, bool>,
        depth: usize,
    ) -> bool {
        if let Some(known) = known.get(row.id.as_str()) {
            return *known;
        }
        let maker = row.creator_token.as_deref().and_then(|name| name.strip_prefix("tokens/"));
        let result = row.revoke_time.is_none()
            && match maker {
                None => true,
                // A maker that cannot be found, or a chain longer than any real one, does not stand.
                Some(id) => depth < 64 && by_id.get(id).is_some_and(|maker| stands(maker, by_id, known, depth + 1)),
            };
        known.insert(row.id.as_str(), result);
        result
    }
    rows.iter().filter(|row| stands(row, &by_id, &mut known, 0)).collect()
}

/// The stored idempotency key of a token's creation: the creator's subject and its request id,
/// hashed, so one admin's request id says nothing about another's tokens.
fn scoped_request_id(creator: &str, request_id: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(creator.as_bytes());
    hasher.update([0]);
    hasher.update(request_id.as_bytes());
    hex(&hasher.finalize())
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
    if let Err((field, rule)) = identity::roles_hold_together(&roles, branch) {
        violations.add(format!("token.{field}"), rule);
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

/// What a token is or would be, as the rule of delegation looks at it.
pub struct Grant<'a> {
    pub department: &'a str,
    pub branch: &'a str,
    pub roles: &'a [String],
    pub clearance: &'a str,
    pub expire_time: Option<DateTime<Utc>>,
}

/// The roles an admin bound to a department gives, in that department: its own staff. Never a
/// company-wide role (`general_manager`, `business_manager`), never `admin`, never a branch's system.
fn department_roles(department: &str) -> &'static [&'static str] {
    if department == "archives" {
        &["agent", "supervisor", "department_head", "archivist"]
    } else {
        &["agent", "supervisor", "department_head"]
    }
}

/// The rule of delegation: an admin gives no token more than it holds, and only roles within its
/// own scope (docs/identity.md, "What an admin may give", has it as a table). Returns the rule
/// broken.
///
/// | the admin | gives |
/// |---|---|
/// | company-wide (no department, no branch; the bootstrap) | any token, other admins included |
/// | bound to a department | that department's own roles ([`department_roles`]), in that department |
/// | bound to a branch | that branch's `branch_system` only |
///
/// And for every admin: no clearance above its own; with a kefu token, no expiry after its own (a
/// single sign-on session's end is no limit, its roles are: `oidc` refuses a JWT whose roles break
/// [`identity::roles_hold_together`]).
pub fn check_delegation(admin: &Principal, grant: &Grant<'_>) -> Result<(), String> {
    let caller = &admin.caller;
    if !caller.department.is_empty() && caller.department != grant.department {
        return Err(format!(
            "you administer the tokens of department {} only, and this one is for {}",
            caller.department,
            if grant.department.is_empty() { "no department" } else { grant.department }
        ));
    }
    if !caller.branch.is_empty() && caller.branch != grant.branch {
        return Err(format!("you administer the tokens of branch {} only", caller.branch));
    }
    let company_wide = caller.department.is_empty() && caller.branch.is_empty();
    if !company_wide {
        let allowed: &[&str] =
            if caller.branch.is_empty() { department_roles(&caller.department) } else { &[identity::BRANCH_SYSTEM] };
        if let Some(role) = grant.roles.iter().find(|role| !allowed.contains(&role.as_str())) {
            let scope = if caller.branch.is_empty() {
                format!("department {}", caller.department)
            } else {
                format!("branch {}", caller.branch)
            };
            return Err(format!(
                "an admin of {scope} gives only the roles {} — not {role}: a company-wide role, another admin or another scope's role is given by a company-wide admin",
                allowed.join(", ")
            ));
        }
    }
    if identity::clearance_rank(grant.clearance) > identity::clearance_rank(&caller.clearance) {
        return Err(format!(
            "you may give no clearance above your own ({})",
            if caller.clearance.is_empty() { "none" } else { &caller.clearance }
        ));
    }
    if let (Some(limit), Some(expire_time)) = (admin.delegation_limit(), grant.expire_time)
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
        let request_id = idempotency_key(&request.request_id).map(|id| scoped_request_id(&admin.caller.user, id));
        if let Some(request_id) = &request_id
            && let Some(earlier) = token_row::Entity::find()
                .filter(token_row::Column::RequestId.eq(request_id.as_str()))
                .one(&self.db)
                .await
                .map_err(|e| from_db("reading tokens", e))?
        {
            return Err(already_created(&earlier));
        }
        let grant = Grant {
            department: &wanted.department,
            branch: &wanted.branch,
            roles: &wanted.roles,
            clearance: &wanted.clearance,
            expire_time: Some(wanted.expire_time),
        };
        check_delegation(&admin, &grant)
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
            creator_token: match &admin.kind {
                identity::Kind::Token(name) => Some(name.clone()),
                _ => None,
            },
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
        let roles = split_roles(&row.roles);
        let grant =
            Grant { department: &row.department, branch: &row.branch, roles: &roles, clearance: "", expire_time: None };
        if check_delegation(&admin, &grant).is_err() {
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
        // Read again at once: the tokens this one made are suspended with it on this replica now,
        // on the others at their next reload.
        if let Err(error) = self.cache.refresh().await {
            kefu_kit::error::log_db("cannot reload the tokens after a revocation", &error);
        }
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
    kefu_kit::migrate::run(&db, "gateway", &[&MIGRATION, &MIGRATION_CREATOR_TOKEN]).await?;
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

    fn grant<'a>(department: &'a str, branch: &'a str, roles: &'a [String], clearance: &'a str) -> Grant<'a> {
        Grant { department, branch, roles, clearance, expire_time: None }
    }

    fn roles(roles: &[&str]) -> Vec<String> {
        roles.iter().map(|role| role.to_string()).collect()
    }

    #[test]
    fn an_admin_gives_no_more_than_it_holds() {
        let agent = roles(&["agent"]);
        let company = admin("", "", "top_secret", None);
        assert_eq!(check_delegation(&company, &grant("archives", "", &agent, "top_secret")), Ok(()));
        let claims = admin("claims", "", "confidential", None);
        assert_eq!(check_delegation(&claims, &grant("claims", "", &agent, "confidential")), Ok(()));
        let refused = check_delegation(&claims, &grant("intake", "", &agent, "")).expect_err("another department");
        assert!(refused.contains("department claims only"), "{refused}");
        assert!(
            check_delegation(&claims, &grant("", "", &agent, "")).is_err(),
            "a company-wide token is more than claims"
        );
        let refused =
            check_delegation(&claims, &grant("claims", "", &agent, "top_secret")).expect_err("more clearance");
        assert!(refused.contains("above your own"), "{refused}");
        let branch_system = roles(&["branch_system"]);
        let branch = admin("", "SH01", "", None);
        assert!(check_delegation(&branch, &grant("", "BJ02", &branch_system, "")).is_err());
        assert_eq!(check_delegation(&branch, &grant("", "SH01", &branch_system, "")), Ok(()));
        let now = Utc::now();
        let expiring = admin("", "", "", Some(now + chrono::Duration::days(10)));
        let later = |days| Grant { expire_time: Some(now + chrono::Duration::days(days)), ..grant("", "", &agent, "") };
        assert!(check_delegation(&expiring, &later(11)).is_err());
        assert_eq!(check_delegation(&expiring, &later(9)), Ok(()));
        let signed_in = Principal { kind: Kind::Staff, ..admin("", "", "", Some(now + chrono::Duration::hours(1))) };
        assert_eq!(check_delegation(&signed_in, &later(90)), Ok(()), "a single sign-on session's end is no limit");
    }

    /// An admin grants only roles within its own scope (issue 41: an admin of claims made
    /// general managers, other admins and branch systems; one of SH01 made claims supervisors).
    #[test]
    fn an_admin_gives_only_the_roles_of_its_scope() {
        let claims = admin("claims", "", "top_secret", None);
        for given in ["agent", "supervisor", "department_head"] {
            assert_eq!(check_delegation(&claims, &grant("claims", "", &roles(&[given]), "")), Ok(()), "{given}");
        }
        for refused in ["general_manager", "business_manager", "admin", "archivist"] {
            let rule = check_delegation(&claims, &grant("claims", "", &roles(&[refused]), ""))
                .expect_err("outside the department's roles");
            assert!(rule.contains(&format!("not {refused}")), "{rule}");
        }
        assert!(check_delegation(&claims, &grant("claims", "BJ02", &roles(&["branch_system"]), "")).is_err());
        let archives = admin("archives", "", "", None);
        assert_eq!(check_delegation(&archives, &grant("archives", "", &roles(&["archivist"]), "")), Ok(()));
        let branch = admin("", "SH01", "", None);
        for refused in ["supervisor", "agent", "admin", "general_manager"] {
            assert!(check_delegation(&branch, &grant("", "SH01", &roles(&[refused]), "")).is_err(), "{refused}");
        }
        let company = admin("", "", "", None);
        for given in ["general_manager", "business_manager", "admin"] {
            assert_eq!(check_delegation(&company, &grant("", "", &roles(&[given]), "")), Ok(()), "{given}");
        }
    }

    fn row(id: &str, creator_token: Option<&str>, revoked: bool) -> token_row::Model {
        token_row::Model {
            seq: 0,
            id: id.into(),
            subject: id.into(),
            display_name: String::new(),
            department: String::new(),
            branch: String::new(),
            roles: "agent".into(),
            clearance: String::new(),
            secret_hash: String::new(),
            expire_time: Utc::now(),
            create_time: Utc::now(),
            creator: String::new(),
            revoke_time: revoked.then(Utc::now),
            request_id: None,
            creator_token: creator_token.map(str::to_owned),
        }
    }

    /// Revoking an admin's token suspends what it made, down the chain; the rest stand.
    #[test]
    fn a_token_stands_only_while_its_maker_stands() {
        let rows = [
            row("a1", None, true),
            row("a2", Some("tokens/a1"), false),
            row("t3", Some("tokens/a2"), false),
            row("b1", None, false),
            row("t4", Some("tokens/b1"), false),
            row("t5", Some("tokens/gone"), false),
        ];
        let standing: Vec<&str> = standing(&rows).into_iter().map(|row| row.id.as_str()).collect();
        assert_eq!(standing, ["b1", "t4"]);
    }

    #[test]
    fn one_admins_request_id_is_not_anothers() {
        assert_ne!(scoped_request_id("admin-a", "r1"), scoped_request_id("admin-b", "r1"));
        assert_eq!(scoped_request_id("admin-a", "r1"), scoped_request_id("admin-a", "r1"));
        assert_ne!(scoped_request_id("a", "br1"), scoped_request_id("ab", "r1"), "no shifting between the parts");
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
