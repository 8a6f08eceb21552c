//! The webhook RPCs of `kefu.intake.v1.Intake`. A caller speaking for a branch (a token with a
//! `branch`, as every `branch_system` has) manages and reads its own branch's endpoints only; the
//! service center's staff, any branch's.

use kefu_kit::{
    caller::Caller,
    error::{self, Failure, FieldViolations},
    paging,
    server::ServiceContext,
    text,
    time::{to_duration, to_micros, to_timestamp},
};
use kefu_proto::intake::v1 as pb;

use super::{CaseEvent, RETRY_FOR, store};
use crate::error::{Error, db};

/// The shortest and longest shared secret accepted.
const SECRET_CHARS: std::ops::RangeInclusive<usize> = 16..=256;
const MAX_URL: usize = 2048;

pub async fn register(
    context: &ServiceContext,
    rules: &super::Rules,
    caller: &Caller,
    request: pb::RegisterWebhookRequest,
) -> Result<pb::Webhook, Error> {
    let webhook = request.webhook.unwrap_or_default();
    let mut violations = FieldViolations::new();
    error::check_request_id(&mut violations, "request_id", &request.request_id);
    let branch = webhook.branch.trim();
    if !text::is_branch(branch) {
        violations.add("webhook.branch", format!("required, the branch whose cases are sent: {}", text::BRANCH_RULE));
    }
    let url = webhook.url.trim();
    if let Err(problem) = check_url(url, &rules.allowed) {
        violations.add("webhook.url", problem);
    }
    let secret_chars = request.secret.chars().count();
    if !SECRET_CHARS.contains(&secret_chars) || request.secret.chars().any(|c| c.is_control()) {
        violations
            .add("secret", "16 to 256 printable characters, shared with the branch's system to check the signature");
    }
    let mut events = Vec::new();
    for (index, name) in webhook.events.iter().enumerate() {
        match CaseEvent::parse(name.trim()) {
            Some(event) if !events.contains(&event) => events.push(event),
            Some(_) => {}
            None => violations
                .add(format!("webhook.events[{index}]"), "one of registered, accepted, resolved, reopened, overdue"),
        }
    }
    violations.into_result()?;
    may_manage(caller, branch)?;
    let request_id = error::idempotency_key(request.request_id.trim());
    let id = uuid::Uuid::now_v7().to_string();
    let sealed = rules.secrets.seal(&id, &request.secret).map_err(Error::Internal)?;
    let endpoint = store::endpoint::Model {
        id,
        request_id: request_id.map(str::to_owned),
        branch: branch.into(),
        url: url.into(),
        secret: sealed,
        events: events.iter().map(|event| event.as_str()).collect::<Vec<_>>().join(","),
        active: true,
        create_time: to_micros(context.clock.now()),
        created_by: caller.user.clone(),
        disable_reason: String::new(),
    };
    // The count and the insert in one transaction, one branch's registrations one after another:
    // concurrent registrations never leave more than the cap active.
    let registering = db("registering a webhook");
    let transaction = sea_orm::TransactionTrait::begin(&context.db).await.map_err(db("registering a webhook"))?;
    kefu_kit::db::serialize(&transaction, &format!("intake/webhooks/{branch}"))
        .await
        .map_err(db("registering a webhook"))?;
    if let Some(request_id) = request_id
        && let Some(earlier) =
            store::endpoint_by_request_id(&transaction, request_id).await.map_err(db("reading webhooks"))?
    {
        return Ok(to_proto(earlier));
    }
    // One branch's endpoints are bounded, so they cannot slow the writing of every complaint.
    let active = store::endpoints(&transaction, Some(branch))
        .await
        .map_err(db("reading webhooks"))?
        .into_iter()
        .filter(|endpoint| endpoint.active)
        .count();
    if active >= rules.max_per_branch {
        return Err(Error::Precondition(format!(
            "branch {branch} has {active} active endpoints, the most a branch may have (KEFU_WEBHOOK_MAX_PER_BRANCH): disable one first"
        )));
    }
    let inserted = match store::insert_endpoint(&transaction, endpoint.clone()).await {
        Ok(()) => transaction.commit().await,
        Err(error) => Err(error),
    };
    match inserted {
        Ok(()) => {
            tracing::info!(webhook = %endpoint.id, branch = %endpoint.branch, "webhook registered");
            Ok(to_proto(endpoint))
        }
        // The same request id at the same moment, for another branch: its endpoint is the answer.
        Err(conflict) if error::is_unique_violation(&conflict) => {
            let request_id = request_id.unwrap_or_default();
            store::endpoint_by_request_id(&context.db, request_id)
                .await
                .map_err(db("reading webhooks"))?
                .map(to_proto)
                .ok_or_else(|| Failure::Conflict { what: "a webhook registered at the same moment".into() }.into())
        }
        Err(failure) => Err(registering(failure)),
    }
}

pub async fn list(
    context: &ServiceContext,
    caller: &Caller,
    request: pb::ListWebhooksRequest,
) -> Result<pb::ListWebhooksResponse, Error> {
    let branch = request.branch.trim();
    if !branch.is_empty() && !text::is_branch(branch) {
        let mut violations = FieldViolations::new();
        violations.add("branch", format!("{}, or empty for every branch", text::BRANCH_RULE));
        return Err(violations.into());
    }
    let branch = match (branch, caller.branch.as_str()) {
        ("", "") => None,
        ("", own) => Some(own),
        (branch, _) => {
            may_manage(caller, branch)?;
            Some(branch)
        }
    };
    let endpoints = store::endpoints(&context.db, branch).await.map_err(db("listing webhooks"))?;
    Ok(pb::ListWebhooksResponse { webhooks: endpoints.into_iter().map(to_proto).collect() })
}

pub async fn disable(
    context: &ServiceContext,
    caller: &Caller,
    request: pb::DisableWebhookRequest,
) -> Result<pb::Webhook, Error> {
    let mut violations = FieldViolations::new();
    let id = parse_name(&request.name).map_err(|problem| violations.add("name", problem)).ok();
    let reason = request.reason.trim();
    if reason.is_empty() || reason.chars().count() > crate::domain::MAX_TEXT {
        violations.add("reason", format!("required, at most {} characters", crate::domain::MAX_TEXT));
    }
    violations.into_result()?;
    let id = id.unwrap_or_default();
    let endpoint = endpoint(context, caller, id).await?;
    if !endpoint.active {
        return Ok(to_proto(endpoint));
    }
    let tx = sea_orm::TransactionTrait::begin(&context.db).await.map_err(db("disabling a webhook"))?;
    store::disable_endpoint(&tx, id, reason).await.map_err(db("disabling a webhook"))?;
    tx.commit().await.map_err(db("disabling a webhook"))?;
    tracing::info!(webhook = %id, by = %caller.user, "webhook disabled");
    Ok(to_proto(store::endpoint::Model { active: false, disable_reason: reason.into(), ..endpoint }))
}

pub async fn list_deliveries(
    context: &ServiceContext,
    caller: &Caller,
    request: pb::ListWebhookDeliveriesRequest,
) -> Result<pb::ListWebhookDeliveriesResponse, Error> {
    let page_size = paging::page_size(request.page_size)?;
    let mut violations = FieldViolations::new();
    let webhook_id = match request.webhook.trim() {
        "" => None,
        name => parse_name(name).map_err(|problem| violations.add("webhook", problem)).ok(),
    };
    let case_number = match request.complaint.trim() {
        "" => None,
        name => kefu_kit::names::case_number_in(name, "complaints")
            .ok_or_else(|| violations.add("complaint", "expected complaints/{case_number}"))
            .ok(),
    };
    violations.into_result()?;
    match webhook_id {
        Some(id) => drop(endpoint(context, caller, id).await?),
        None if !caller.branch.is_empty() => {
            return Err(Error::Invalid(FieldViolations::of(
                "webhook",
                "required for a branch: one of its own webhooks/{id}",
            )));
        }
        None => {}
    }
    let filter = format!("{}|{}", request.webhook.trim(), request.complaint.trim());
    let before = paging::decode_token(&request.page_token, &filter)?;
    let (deliveries, next) = store::deliveries(&context.db, webhook_id, case_number, page_size, before)
        .await
        .map_err(db("listing webhook deliveries"))?;
    let seqs: Vec<i64> = deliveries.iter().map(|delivery| delivery.seq).collect();
    let mut attempts: std::collections::HashMap<i64, Vec<store::attempt::Model>> = std::collections::HashMap::new();
    for attempt in store::attempts_of(&context.db, &seqs).await.map_err(db("listing webhook attempts"))? {
        attempts.entry(attempt.delivery_seq).or_default().push(attempt);
    }
    Ok(pb::ListWebhookDeliveriesResponse {
        deliveries: deliveries
            .into_iter()
            .map(|delivery| {
                let own = attempts.remove(&delivery.seq).unwrap_or_default();
                delivery_to_proto(delivery, own)
            })
            .collect(),
        next_page_token: next.map(|seq| paging::encode_token(seq, &filter)).unwrap_or_default(),
    })
}

pub async fn redeliver(
    context: &ServiceContext,
    wake: &super::Wake,
    caller: &Caller,
    request: pb::RedeliverWebhookDeliveryRequest,
) -> Result<pb::WebhookDelivery, Error> {
    let problem = "expected webhooks/{id}/deliveries/{delivery_id}";
    let (webhook, delivery_id) = request
        .name
        .trim()
        .split_once("/deliveries/")
        .filter(|(_, delivery_id)| !delivery_id.is_empty())
        .ok_or_else(|| FieldViolations::of("name", problem))?;
    let id = parse_name(webhook).map_err(|_| FieldViolations::of("name", problem))?;
    let endpoint = endpoint(context, caller, id).await?;
    let not_found = || Error::NotFound(format!("no delivery named {}", request.name.trim()));
    let delivery = store::delivery_by_id(&context.db, delivery_id)
        .await
        .map_err(db("reading a webhook delivery"))?
        .filter(|delivery| delivery.webhook_id == endpoint.id)
        .ok_or_else(not_found)?;
    if !endpoint.active {
        return Err(Error::Precondition(format!(
            "webhooks/{} is disabled ({}): register the endpoint again to receive deliveries",
            endpoint.id, endpoint.disable_reason
        )));
    }
    let now = to_micros(context.clock.now());
    store::redeliver(&context.db, delivery.seq, now, now + RETRY_FOR)
        .await
        .map_err(db("redelivering a webhook delivery"))?;
    wake.wake();
    tracing::info!(webhook = %endpoint.id, delivery = %delivery.delivery_id, by = %caller.user, "webhook delivery sent again");
    let delivery = store::delivery::Model {
        state: store::PENDING.into(),
        next_attempt_time: now,
        retry_until: now + RETRY_FOR,
        ..delivery
    };
    let attempts = store::attempts_of(&context.db, &[delivery.seq]).await.map_err(db("listing webhook attempts"))?;
    Ok(delivery_to_proto(delivery, attempts))
}

/// The id of `webhooks/{id}`.
fn parse_name(name: &str) -> Result<&str, &'static str> {
    name.trim()
        .strip_prefix("webhooks/")
        .filter(|id| uuid::Uuid::parse_str(id).is_ok())
        .ok_or("expected webhooks/{id}, as RegisterWebhook returned it")
}

/// An absolute http:// or https:// URL with a host, no credentials in it.
fn check_url(url: &str, allowed: &super::address::Allowed) -> Result<(), &'static str> {
    let expected = "an absolute URL like https://branch.example.com/kefu/events (https:// or http://)";
    if url.is_empty() || url.len() > MAX_URL {
        return Err(expected);
    }
    let uri: http::Uri = url.parse().map_err(|_| expected)?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return Err(expected);
    }
    let authority = uri.authority().ok_or(expected)?;
    if authority.host().is_empty() {
        return Err(expected);
    }
    if authority.as_str().contains('@') {
        return Err("no user or password in the URL: the signature authenticates kefu to the branch");
    }
    allowed.check_host(authority.host())
}

/// A branch manages its own endpoints; the service center's staff any branch's.
fn may_manage(caller: &Caller, branch: &str) -> Result<(), Error> {
    if caller.branch.is_empty() || caller.branch == branch {
        Ok(())
    } else {
        Err(Error::NotAllowed(format!("branch {} manages its own webhooks only, not branch {branch}'s", caller.branch)))
    }
}

async fn endpoint(context: &ServiceContext, caller: &Caller, id: &str) -> Result<store::endpoint::Model, Error> {
    let endpoint = store::endpoint_by_id(&context.db, id)
        .await
        .map_err(db("reading a webhook"))?
        .ok_or_else(|| Error::NotFound(format!("no webhook named webhooks/{id}")))?;
    may_manage(caller, &endpoint.branch)?;
    Ok(endpoint)
}

fn to_proto(endpoint: store::endpoint::Model) -> pb::Webhook {
    pb::Webhook {
        name: format!("webhooks/{}", endpoint.id),
        branch: endpoint.branch,
        url: endpoint.url,
        events: endpoint.events.split(',').filter(|name| !name.is_empty()).map(str::to_owned).collect(),
        active: endpoint.active,
        create_time: Some(to_timestamp(endpoint.create_time)),
        created_by: endpoint.created_by,
        disable_reason: endpoint.disable_reason,
    }
}

fn delivery_to_proto(delivery: store::delivery::Model, attempts: Vec<store::attempt::Model>) -> pb::WebhookDelivery {
    let state = match delivery.state.as_str() {
        store::PENDING => pb::WebhookDeliveryState::DeliveryPending,
        store::SUCCEEDED => pb::WebhookDeliveryState::DeliverySucceeded,
        store::FAILED => pb::WebhookDeliveryState::DeliveryFailed,
        _ => pb::WebhookDeliveryState::Unspecified,
    };
    let pending = state == pb::WebhookDeliveryState::DeliveryPending;
    pb::WebhookDelivery {
        name: format!("webhooks/{}/deliveries/{}", delivery.webhook_id, delivery.delivery_id),
        delivery_id: delivery.delivery_id,
        event: delivery.event,
        complaint: format!("complaints/{}", delivery.case_number),
        state: state as i32,
        body: delivery.body,
        create_time: Some(to_timestamp(delivery.create_time)),
        next_attempt_time: pending.then(|| to_timestamp(delivery.next_attempt_time)),
        deliver_time: delivery.deliver_time.map(to_timestamp),
        attempts: attempts
            .into_iter()
            .map(|attempt| pb::WebhookAttempt {
                number: attempt.number,
                attempt_time: Some(to_timestamp(attempt.attempt_time)),
                status_code: attempt.status_code,
                error: attempt.error,
                duration: Some(to_duration(chrono::Duration::milliseconds(attempt.duration_ms))),
            })
            .collect(),
    }
}

#[cfg(test)]
mod fuzz {
    use proptest::prelude::*;

    use super::{super::address::Allowed, check_url};

    proptest! {
        /// Whatever URL is given, it is refused, or it is http(s) to a host that is not internal.
        #[test]
        fn a_url_passes_only_to_a_public_host(url in "(https?://)?\\PC{0,60}") {
            if check_url(&url, &Allowed::default()).is_ok() {
                let uri: http::Uri = url.parse().map_err(|_| TestCaseError::fail("passed, but no URI"))?;
                prop_assert!(matches!(uri.scheme_str(), Some("http" | "https")));
                let host = uri.host().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
                if let Ok(ip) = host.parse::<std::net::IpAddr>() {
                    prop_assert!(super::super::address::is_public(ip), "{}", ip);
                }
            }
        }
    }
}
