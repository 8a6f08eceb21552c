//! `kefu token`: administrators create, list and revoke kefu tokens at a running gateway
//! (`kefu.gateway.v1.Tokens`). The caller's own token (`KEFU_TOKEN`) must hold the role `admin`;
//! the first one is the bootstrap secret (`KEFU_BOOTSTRAP_TOKEN` of the gateway).

use clap::{Args, Subcommand};
use kefu_proto::gateway::v1::{
    CreateTokenRequest, ListTokensRequest, RevokeTokenRequest, Token, tokens_client::TokensClient,
};

use crate::client::{Failure, GatewayArgs, explain};

#[derive(Debug, Args)]
pub struct TokenArgs {
    #[command(subcommand)]
    command: TokenCommand,
    #[command(flatten)]
    gateway: GatewayArgs,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token and print its secret, once: hand it to its holder, who sets KEFU_TOKEN or
    /// sends `authorization: Bearer <secret>`.
    ///
    /// Examples:
    ///   kefu token create --subject A1024 --display-name "Wang Fang" --department intake --role agent
    ///   kefu token create --subject branch-SH01-tms --branch SH01 --role branch_system --days 365
    ///   kefu token create --subject B7 --department archives --role archivist --clearance top_secret
    Create {
        /// Who the token is: a staff id, or a system's name. Recorded as the actor of what it does.
        #[arg(long)]
        subject: String,
        /// For people reading `kefu token list`.
        #[arg(long, default_value = "")]
        display_name: String,
        /// intake, inspection, claims, settlement, archives or external.
        #[arg(long, default_value = "")]
        department: String,
        /// The branch office code; required with --role branch_system.
        #[arg(long, default_value = "")]
        branch: String,
        /// A role, repeatable: agent, supervisor, department_head, business_manager,
        /// general_manager, archivist, branch_system, or admin (alone).
        #[arg(long = "role", required = true)]
        roles: Vec<String>,
        /// confidential or top_secret (archives' classified files).
        #[arg(long, default_value = "")]
        clearance: String,
        /// Days until it expires (at most a year).
        #[arg(long, default_value_t = 90)]
        days: i64,
        /// An idempotency key: run the same command again with it and nothing new is created.
        #[arg(long)]
        request_id: Option<String>,
    },
    /// List the tokens you administer, newest first, revoked ones marked.
    List,
    /// Revoke a token: every gateway refuses it within 10 seconds.
    ///
    /// Example:  kefu token revoke tokens/3f9a0c1d2b7e4a55
    Revoke {
        /// The token's name, as `kefu token list` shows it.
        name: String,
    },
}

pub async fn run(args: TokenArgs) -> Result<(), Failure> {
    let mut tokens = TokensClient::new(args.gateway.connect().await?);
    match args.command {
        TokenCommand::Create { subject, display_name, department, branch, roles, clearance, days, request_id } => {
            let expire_time = chrono::Utc::now() + chrono::Duration::days(days);
            let request = CreateTokenRequest {
                request_id: request_id.unwrap_or_else(|| uuid::Uuid::now_v7().to_string()),
                token: Some(Token {
                    subject,
                    display_name,
                    department,
                    branch,
                    roles,
                    clearance,
                    expire_time: Some(kefu_kit::time::to_timestamp(expire_time)),
                    ..Default::default()
                }),
            };
            let created = tokens.create_token(request).await.map_err(|status| explain("token not created", &status))?;
            let created = created.into_inner();
            let token = created.token.unwrap_or_default();
            eprintln!("created {}: {}", token.name, describe(&token));
            eprintln!("The secret follows, shown this once; kefu keeps only its hash:");
            println!("{}", created.secret);
        }
        TokenCommand::List => {
            let mut page_token = String::new();
            let mut count = 0;
            loop {
                let page = tokens
                    .list_tokens(ListTokensRequest { page_size: 200, page_token })
                    .await
                    .map_err(|status| explain("cannot list tokens", &status))?
                    .into_inner();
                for token in &page.tokens {
                    println!("{:<24} {}", token.name, describe(token));
                    count += 1;
                }
                if page.next_page_token.is_empty() {
                    break;
                }
                page_token = page.next_page_token;
            }
            eprintln!("{count} token(s)");
        }
        TokenCommand::Revoke { name } => {
            let token = tokens
                .revoke_token(RevokeTokenRequest { name })
                .await
                .map_err(|status| explain("token not revoked", &status))?
                .into_inner();
            println!("revoked {}: {}", token.name, describe(&token));
        }
    }
    Ok(())
}

fn describe(token: &Token) -> String {
    let time = |timestamp: &Option<prost_types::Timestamp>| {
        timestamp
            .as_ref()
            .and_then(kefu_kit::time::from_timestamp)
            .map(|time| time.format("%Y-%m-%d").to_string())
            .unwrap_or_else(|| "-".into())
    };
    let mut text = format!("{} [{}]", token.subject, token.roles.join(","));
    for (label, value) in
        [("department", &token.department), ("branch", &token.branch), ("clearance", &token.clearance)]
    {
        if !value.is_empty() {
            text.push_str(&format!(" {label}={value}"));
        }
    }
    text.push_str(&format!(" expires {}", time(&token.expire_time)));
    if token.revoke_time.is_some() {
        text.push_str(&format!(" REVOKED {}", time(&token.revoke_time)));
    }
    text
}
