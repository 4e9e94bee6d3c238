//! Delivering executions to webhooks: the request (rendered payload, access token, signatures),
//! one attempt through the guarded HTTP client, and what the attempt means for the execution
//! (finished, retry at a time, or failed — and whether the destination asked to be disabled).

mod caches;
pub mod http;
mod mask;
pub mod retry;
mod shown;
pub mod signing;
pub mod slack;
pub mod ssrf;
mod withdrawals;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use herald_domain::automation::{Action, Integration};
use herald_domain::ids::EntityId;
use herald_domain::template::Template;
use herald_store::{AttemptOutcome, ClaimedExecution, NewAttempt, Store};
use reqwest::header::{HeaderName, AUTHORIZATION, CONTENT_TYPE};
use serde_json::Value;

pub use self::caches::{
    IntegrationCache, OpenedSecret, Prepared, PreparedActions, ReadCache, SecretCache,
};
use self::http::{ErrorClass, Observed, Outgoing, Sender};
use self::mask::SecretValues;
use self::retry::RetryPolicy;
pub use self::shown::shown_request;
use self::ssrf::AllowList;
pub use self::withdrawals::{Withdrawals, Withdrawn};
use crate::secrets::MasterKey;

/// How deliveries behave.
#[derive(Debug, Clone)]
pub struct DeliveryConfig {
    /// Deadline for one attempt, connection to last byte read.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Deliveries in flight across all destinations.
    pub max_in_flight: usize,
    /// Deliveries in flight to any one integration, so a slow destination cannot take all.
    pub per_destination: usize,
    /// How long a claimed execution stays leased before another worker may take it over.
    pub lease: Duration,
    pub allow: AllowList,
    /// A forward proxy for every delivery, from `delivery.proxy`; never the environment's.
    pub proxy: Option<reqwest::Url>,
    /// How long finished executions are kept in history.
    pub retention: Duration,
    pub slack: slack::SlackSettings,
    /// Worker threads of a tokio runtime of the deliveries' own; 0 runs them on the runtime
    /// that runs the engine (see [`crate::runtime`]).
    pub threads: usize,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            retry: RetryPolicy::default(),
            max_in_flight: 64,
            per_destination: 8,
            lease: Duration::from_secs(30),
            allow: AllowList::default(),
            proxy: None,
            retention: Duration::from_secs(30 * 24 * 3600),
            slack: slack::SlackSettings::default(),
            threads: 0,
        }
    }
}

/// The secrets an integration's deliveries use, opened.
#[derive(Default)]
pub struct OpenSecrets {
    pub access_token: Option<String>,
    pub signing: Option<String>,
    /// The signing secret's previous values still in their grace period, newest first:
    /// deliveries carry a `webhook-signature` under each as well.
    pub signing_previous: Vec<String>,
    /// Name → value, for `${SECRET_NAME}`.
    pub by_name: Vec<(String, String)>,
}

/// Opens the integration's secrets; a missing or unreadable one is an error naming it.
pub async fn open_secrets(
    d: &Deliverer<'_>,
    integration: &Integration,
) -> Result<OpenSecrets, String> {
    let mut out = OpenSecrets::default();
    if let Some(name) = &integration.access_token_secret {
        let opened = open_secret_values(d, integration.entity_id, name.as_str()).await?;
        out.access_token = Some(opened.value.clone());
        out.by_name
            .push((name.as_str().to_string(), opened.value.clone()));
    }
    if let Some(name) = &integration.signing_secret {
        let opened = open_secret_values(d, integration.entity_id, name.as_str()).await?;
        let now = Utc::now();
        out.signing = Some(opened.value.clone());
        out.signing_previous = opened
            .previous
            .iter()
            .filter(|(_, until)| *until > now)
            .map(|(v, _)| v.clone())
            .collect();
        out.by_name
            .push((name.as_str().to_string(), opened.value.clone()));
    }
    Ok(out)
}

/// `entity`'s secret `name`, decrypted (through the cache); a missing or unreadable one is an
/// error naming it.
pub async fn open_secret(
    d: &Deliverer<'_>,
    entity: EntityId,
    name: &str,
) -> Result<String, String> {
    Ok(open_secret_values(d, entity, name).await?.value.clone())
}

/// `entity`'s secret `name` and its previous values, decrypted (through the cache).
async fn open_secret_values(
    d: &Deliverer<'_>,
    entity: EntityId,
    name: &str,
) -> Result<Arc<OpenedSecret>, String> {
    let read = async {
        let sealed = d
            .store
            .sealed_secret(entity, name)
            .await
            .map_err(|e| format!("reading secret {name:?}: {e}"))?;
        let open = |sealed: &str| {
            d.key.open(entity, name, sealed).ok_or_else(|| {
                format!("secret {name:?} cannot be decrypted with this server's master key")
            })
        };
        sealed
            .map(|s| {
                Ok::<_, String>(Arc::new(OpenedSecret {
                    value: open(&s.sealed)?,
                    // A previous value only adds a signature: one this server cannot open
                    // (sealed under an earlier master key) is left out, not an error.
                    previous: s
                        .previous
                        .iter()
                        .filter_map(|(p, until)| Some((open(p).ok()?, *until)))
                        .collect(),
                }))
            })
            .transpose()
    };
    d.secrets
        .get((entity, name.to_string()), || read)
        .await?
        .ok_or_else(|| format!("secret {name:?} no longer exists"))
}

/// W&B's signature header and the Standard Webhooks headers, as written on the wire (HTTP/1
/// header names are case-insensitive; these are sent in lower case, as every name is).
const WANDB_SIGNATURE: &str = "x-wandb-signature";
const WEBHOOK_ID: &str = "webhook-id";
const WEBHOOK_TIMESTAMP: &str = "webhook-timestamp";
const WEBHOOK_SIGNATURE: &str = "webhook-signature";

/// The request for one attempt: body rendered with variables and secrets, signed when the
/// integration has a signing secret. `webhook_id` is stable across retries and redeliveries.
pub fn build_request(
    integration: &Integration,
    template: &Template,
    variables: &Value,
    secrets: &OpenSecrets,
    webhook_id: &str,
) -> Outgoing {
    let lookup = |name: &str| -> Option<String> {
        if name == "ACCESS_TOKEN" {
            return secrets.access_token.clone();
        }
        if let Some((_, v)) = secrets.by_name.iter().find(|(n, _)| n == name) {
            return Some(v.clone());
        }
        variables
            .get(name)
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let body = serde_json::to_vec(&template.render(&lookup)).unwrap_or_default();
    let mut headers = vec![(CONTENT_TYPE, "application/json".to_string())];
    if let Some(token) = &secrets.access_token {
        headers.push((AUTHORIZATION, format!("Bearer {token}")));
    }
    if let Some(secret) = &secrets.signing {
        let ts = Utc::now().timestamp();
        headers.push((
            HeaderName::from_static(WANDB_SIGNATURE),
            signing::wandb_signature(secret, &body),
        ));
        headers.push((HeaderName::from_static(WEBHOOK_ID), webhook_id.to_string()));
        headers.push((HeaderName::from_static(WEBHOOK_TIMESTAMP), ts.to_string()));
        // One signature per valid key, the current one first, as Standard Webhooks lists
        // them: a receiver still holding the previous value verifies during the grace period.
        let mut signatures = signing::standard_signature(secret, webhook_id, ts, &body);
        for previous in &secrets.signing_previous {
            signatures.push(' ');
            signatures.push_str(&signing::standard_signature(
                previous, webhook_id, ts, &body,
            ));
        }
        headers.push((HeaderName::from_static(WEBHOOK_SIGNATURE), signatures));
    } else {
        headers.push((HeaderName::from_static(WEBHOOK_ID), webhook_id.to_string()));
    }
    Outgoing {
        url: webhook_url(integration),
        headers,
        body,
    }
}

/// The webhook id of an execution: stable across its retries and redeliveries.
pub fn webhook_id(execution: herald_domain::ids::ExecutionId) -> String {
    format!("exec_{}", execution.0)
}

/// What an attempt means for its execution.
pub struct Verdict {
    pub attempt: NewAttempt,
    pub outcome: AttemptOutcome,
    /// Set when the destination said it is gone for good (410): disable the integration.
    pub disable: Option<String>,
}

impl Verdict {
    /// An attempt that failed before anything was sent (no integration, no secret, …): the
    /// execution fails, since retrying would meet the same problem.
    fn failed_before_sending(class: &str, why: String) -> Self {
        Verdict {
            attempt: NewAttempt {
                number: 0,
                started_at: Utc::now(),
                duration: Duration::ZERO,
                status_code: None,
                error_class: Some(class.to_string()),
                error: Some(why.clone()),
                response: None,
            },
            outcome: AttemptOutcome::Failed(why),
            disable: None,
        }
    }

    /// An execution withdrawn before it started: nothing is sent, nothing is retried.
    fn cancelled(why: String) -> Self {
        let mut v = Self::nothing_to_send();
        v.outcome = AttemptOutcome::Cancelled(why);
        v
    }

    /// An action with nothing to send finishes at once.
    fn nothing_to_send() -> Self {
        Verdict {
            attempt: NewAttempt {
                number: 0,
                started_at: Utc::now(),
                duration: Duration::ZERO,
                status_code: None,
                error_class: None,
                error: None,
                response: None,
            },
            outcome: AttemptOutcome::Finished,
            disable: None,
        }
    }
}

/// Judges an observed attempt: 2xx finishes; 410 fails and disables; blocked or invalid
/// destinations fail; anything else retries by the policy (honouring `Retry-After` on 429/503).
pub fn judge(observed: Observed, round_attempts_before: i64, policy: &RetryPolicy) -> Verdict {
    let failed_in_round = (round_attempts_before + 1) as usize;
    let attempt = NewAttempt {
        number: 0,
        started_at: observed.started_at,
        duration: observed.duration,
        status_code: observed.status,
        error_class: observed.error_class.map(|c| c.as_str().to_string()),
        error: observed.error.clone(),
        response: observed.response.clone(),
    };
    let Some(class) = observed.error_class else {
        return Verdict {
            attempt,
            outcome: AttemptOutcome::Finished,
            disable: None,
        };
    };
    if observed.status == Some(410) {
        let why = "the destination answered 410 Gone".to_string();
        return Verdict {
            attempt,
            outcome: AttemptOutcome::Failed(why.clone()),
            disable: Some(why),
        };
    }
    if class.is_permanent() {
        let why = observed.error.unwrap_or_else(|| class.as_str().to_string());
        return Verdict {
            attempt,
            outcome: AttemptOutcome::Failed(why),
            disable: None,
        };
    }
    let honour = matches!(observed.status, Some(429) | Some(503));
    let retry_after = if honour { observed.retry_after } else { None };
    let outcome = match policy.next_delay(failed_in_round, retry_after) {
        Some(d) => {
            AttemptOutcome::RetryAt(Utc::now() + chrono::Duration::from_std(d).unwrap_or_default())
        }
        None => AttemptOutcome::Failed(format!(
            "gave up after {failed_in_round} attempts; last: {}",
            observed.error.unwrap_or_else(|| class.as_str().to_string())
        )),
    };
    Verdict {
        attempt,
        outcome,
        disable: None,
    }
}

/// Runs one attempt of a claimed execution, disables its integration if the destination said
/// it is gone, and returns what to record (the caller batches the recording).
pub async fn deliver(
    d: &Deliverer<'_>,
    x: &ClaimedExecution,
) -> (herald_domain::ids::ExecutionId, NewAttempt, AttemptOutcome) {
    let store = d.store;
    let mut verdict = attempt(d, x).await;
    verdict.attempt.number = x.attempt_count + 1;
    log_failure(x, &verdict);
    if let (Some(reason), Some(id)) = (&verdict.disable, x.integration_id) {
        let disabled = store
            .disable_integration(x.entity_id, id, reason, x.id)
            .await;
        d.integrations.clear();
        if let Err(e) = disabled {
            tracing::error!(execution = x.id.0, error = %e, "could not disable the integration");
        } else {
            tracing::warn!(integration = id.0, reason, "integration disabled");
        }
    }
    (x.id, verdict.attempt, verdict.outcome)
}

/// [`deliver`], with a panic inside it (a bug in herald, not the destination's doing) caught
/// and recorded as a failed attempt that is retried on the schedule, as if the destination had
/// not answered: the execution neither stays RUNNING nor holds its slot and lease for ever.
pub async fn deliver_caught(
    d: &Deliverer<'_>,
    x: &ClaimedExecution,
) -> (herald_domain::ids::ExecutionId, NewAttempt, AttemptOutcome) {
    use futures_util::FutureExt as _;
    match std::panic::AssertUnwindSafe(deliver(d, x))
        .catch_unwind()
        .await
    {
        Ok(done) => done,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".to_string());
            let why = format!("herald failed while delivering (an internal error: {what})");
            tracing::error!(execution = x.id.0, "{why}");
            let observed = Observed {
                started_at: Utc::now(),
                duration: Duration::ZERO,
                status: None,
                error_class: Some(ErrorClass::Internal),
                error: Some(why),
                response: None,
                retry_after: None,
            };
            let mut verdict = judge(observed, x.round_attempts, d.policy);
            verdict.attempt.number = x.attempt_count + 1;
            log_failure(x, &verdict);
            (x.id, verdict.attempt, verdict.outcome)
        }
    }
}

/// A failed attempt is the operator's business: one WARN line with the execution and why.
/// The reason never holds a secret (answers and errors are masked) nor a URL (errors are made
/// without one; a redirect's target keeps only its scheme, host and path).
fn log_failure(x: &ClaimedExecution, verdict: &Verdict) {
    let next = match &verdict.outcome {
        AttemptOutcome::Finished | AttemptOutcome::Cancelled(_) => return,
        AttemptOutcome::RetryAt(at) => format!("retrying at {}", at.to_rfc3339()),
        AttemptOutcome::Failed(_) => "giving up".to_string(),
    };
    let a = &verdict.attempt;
    tracing::warn!(
        execution = x.id.0,
        automation = x.automation_id.0,
        attempt = x.attempt_count + 1,
        status = a.status_code,
        error_class = a.error_class.as_deref().unwrap_or("-"),
        reason = a.error.as_deref().unwrap_or("-"),
        "delivery failed; {next}"
    );
}

async fn attempt(d: &Deliverer<'_>, x: &ClaimedExecution) -> Verdict {
    let store = d.store;
    let fail = Verdict::failed_before_sending;
    // Claimed before its automation, integration or itself was withdrawn in this process.
    if let Some(why) = d.withdrawals.covering(x) {
        return Verdict::cancelled(why);
    }
    let prepared = match d.prepared.get(x.automation_id, &x.action) {
        Ok(p) => p,
        Err(e) => {
            return fail(
                "invalid_action",
                format!("stored action is unreadable: {e}"),
            )
        }
    };
    let action = &prepared.action;
    let Some(integration_id) = action.integration_id() else {
        // NO_OP: nothing to deliver.
        return Verdict::nothing_to_send();
    };
    let read = || async move {
        let found = store.integration_for_delivery(x.entity_id, integration_id);
        Ok::<_, herald_store::StoreError>(found.await?.map(Arc::new))
    };
    let integration = match d
        .integrations
        .get((x.entity_id, integration_id), read)
        .await
    {
        Ok(Some(i)) => i,
        Ok(None) => {
            return Verdict::cancelled(format!(
                "cancelled: integration {integration_id} was deleted"
            ))
        }
        Err(e) => {
            return fail(
                "store",
                format!("reading integration {integration_id}: {e}"),
            )
        }
    };
    // Tests inject a panic into a delivery through an integration's name.
    #[cfg(feature = "faults")]
    if integration.name.as_str().starts_with("fault panic") && x.attempt_count == 0 {
        panic!("injected fault: a delivery panicked");
    }
    if !integration.enabled {
        let why = integration
            .disabled_reason
            .clone()
            .unwrap_or_else(|| "disabled by a user".into());
        return Verdict::cancelled(format!(
            "cancelled: integration {:?} is disabled: {why}",
            integration.name
        ));
    }
    let template = match (action, &prepared.template) {
        (Action::Notification { .. }, _) => return deliver_slack(d, x, action, &integration).await,
        (_, Some(Ok(t))) => t,
        (_, Some(Err(e))) => {
            return fail(
                "invalid_payload",
                format!("stored payload is not a valid template: {e}"),
            )
        }
        // Only a webhook's action reaches here, and it always has a template (or its error).
        (_, None) => {
            return fail(
                "invalid_action",
                "the action has a destination but nothing to send it".to_string(),
            )
        }
    };
    let secrets = match open_secrets(d, &integration).await {
        Ok(s) => s,
        Err(why) => return fail("secret", why),
    };
    let out = build_request(
        &integration,
        template,
        &x.variables,
        &secrets,
        &webhook_id(x.id),
    );
    let observed = d.sender.send(out).await;
    let observed = SecretValues::of_webhook(&secrets).mask_observed(observed);
    if observed.error_class == Some(ErrorClass::Blocked) {
        let host = integration
            .url
            .as_ref()
            .and_then(|u| u.url())
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        tracing::warn!(
            execution = x.id.0,
            host,
            "destination refused by the SSRF guard"
        );
    }
    judge(observed, x.round_attempts, d.policy)
}

/// Posts a NOTIFICATION's message to its Slack channel, paced per channel, and judges Slack's answer.
async fn deliver_slack(
    d: &Deliverer<'_>,
    x: &ClaimedExecution,
    action: &Action,
    integration: &Integration,
) -> Verdict {
    let failed = Verdict::failed_before_sending;
    let credential = match slack::open_credential(d, integration).await {
        Ok(c) => c,
        Err(why) => return failed("secret", why),
    };
    let message = slack::message(action, &x.variables, d.slack);
    let out = slack::request(d.slack, integration, &credential, &message);
    let channel = format!("{}", integration.id.0);
    let observed = d
        .pacer
        .paced(&channel, d.slack.min_interval, d.sender.send(out))
        .await;
    let code = slack::slack_error(&observed);
    let permanent = slack::is_permanent(code.as_deref(), observed.status);
    let observed = match &code {
        Some(c) => slack::as_failure(observed, c),
        None => observed,
    };
    let observed = SecretValues::of_slack(&credential).mask_observed(observed);
    if permanent {
        let why = observed
            .error
            .clone()
            .unwrap_or_else(|| "Slack refused the message".into());
        let mut v = judge(observed, x.round_attempts, d.policy);
        v.outcome = AttemptOutcome::Failed(why.clone());
        v.disable = Some(why);
        return v;
    }
    judge(observed, x.round_attempts, d.policy)
}

/// What delivering needs: the store, the master key, the HTTP client and retry policy, and
/// Slack's settings and pacing.
pub struct Deliverer<'a> {
    pub store: &'a dyn Store,
    pub withdrawals: &'a Withdrawals,
    pub prepared: &'a PreparedActions,
    pub integrations: &'a IntegrationCache,
    pub secrets: &'a SecretCache,
    pub key: &'a MasterKey,
    pub sender: &'a Sender,
    pub policy: &'a RetryPolicy,
    pub slack: &'a slack::SlackSettings,
    pub pacer: &'a slack::Pacer,
}

/// What an integration test sent and what came back.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestOutcome {
    /// Whether the destination answered 2xx.
    pub ok: bool,
    pub status_code: Option<u16>,
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the answer.
    pub response: Option<String>,
    pub duration_ms: f64,
    /// The body sent, secrets masked.
    pub request_body: Value,
}

/// Sends `payload` (or a small default) through `integration` once, with its token and
/// signatures, and reports the destination's answer. Placeholders may name the integration's
/// secrets and `ACCESS_TOKEN`; event variables render empty.
pub async fn test_send(
    d: &Deliverer<'_>,
    integration: &Integration,
    payload: Option<Value>,
) -> Result<TestOutcome, crate::Error> {
    let sender = d.sender;
    if integration.kind == herald_domain::automation::IntegrationKind::Slack {
        let credential = slack::open_credential(d, integration)
            .await
            .map_err(crate::Error::Conflict)?;
        let message = payload.unwrap_or_else(|| slack::test_message(integration));
        let out = slack::request(d.slack, integration, &credential, &message);
        let channel = format!("{}", integration.id.0);
        let o = d
            .pacer
            .paced(&channel, d.slack.min_interval, sender.send(out))
            .await;
        let code = slack::slack_error(&o);
        let o = match &code {
            Some(c) => slack::as_failure(o, c),
            None => o,
        };
        let o = SecretValues::of_slack(&credential).mask_observed(o);
        return Ok(TestOutcome {
            ok: o.error_class.is_none(),
            status_code: o.status,
            error_class: o.error_class.map(|c| c.as_str().to_string()),
            error: o.error,
            response: o.response,
            duration_ms: o.duration.as_secs_f64() * 1000.0,
            request_body: message,
        });
    }
    let payload = payload.unwrap_or_else(|| {
        serde_json::json!({
            "event_type": "TEST",
            "message": "This is a test delivery from herald.",
            "integration": integration.name,
        })
    });
    let template = match &payload {
        Value::String(s) => Template::parse_str(s),
        other => Template::parse(other),
    }
    .map_err(|e| e.at("payload"))?;
    template
        .check(&integration.secret_names())
        .map_err(|e| e.at("payload"))?;
    let secrets = open_secrets(d, integration)
        .await
        .map_err(crate::Error::Conflict)?;
    let id = format!("test_{}", crate::auth::generate_key());
    let out = build_request(
        integration,
        &template,
        &Value::Object(Default::default()),
        &secrets,
        &id,
    );
    let masked = template.render_masked(&|_| None, &integration.secret_names());
    let o = sender.send(out).await;
    let o = SecretValues::of_webhook(&secrets).mask_observed(o);
    Ok(TestOutcome {
        ok: o.error_class.is_none(),
        status_code: o.status,
        error_class: o.error_class.map(|c| c.as_str().to_string()),
        error: o.error,
        response: o.response,
        duration_ms: o.duration.as_secs_f64() * 1000.0,
        request_body: masked,
    })
}

/// A webhook integration's URL as text (a Slack integration has none).
pub(crate) fn webhook_url(integration: &Integration) -> String {
    integration
        .url
        .as_ref()
        .map_or_else(String::new, |u| u.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn observed(
        status: Option<u16>,
        class: Option<ErrorClass>,
        retry_after: Option<Duration>,
    ) -> Observed {
        Observed {
            started_at: Utc::now(),
            duration: Duration::from_millis(3),
            status,
            error_class: class,
            error: class.map(|c| c.as_str().to_string()),
            response: Some("body".into()),
            retry_after,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            schedule: vec![Duration::from_secs(10), Duration::from_secs(20)],
            jitter: 0.0,
        }
    }

    #[test]
    fn success_finishes() {
        let v = judge(observed(Some(204), None, None), 0, &policy());
        assert_eq!(v.outcome, AttemptOutcome::Finished);
        assert_eq!(v.attempt.status_code, Some(204));
    }

    #[test]
    fn gone_fails_and_disables() {
        let v = judge(
            observed(Some(410), Some(ErrorClass::HttpStatus), None),
            0,
            &policy(),
        );
        assert!(matches!(v.outcome, AttemptOutcome::Failed(_)));
        assert!(v.disable.is_some());
    }

    #[test]
    fn server_errors_retry_until_the_schedule_ends() {
        let before = Utc::now();
        let v = judge(
            observed(Some(500), Some(ErrorClass::HttpStatus), None),
            0,
            &policy(),
        );
        let AttemptOutcome::RetryAt(t) = v.outcome else {
            panic!("expected a retry")
        };
        assert!(
            t >= before + chrono::Duration::seconds(10)
                && t <= Utc::now() + chrono::Duration::seconds(10)
        );
        assert!(matches!(
            judge(
                observed(Some(500), Some(ErrorClass::HttpStatus), None),
                1,
                &policy()
            )
            .outcome,
            AttemptOutcome::RetryAt(_)
        ));
        let last = judge(
            observed(Some(500), Some(ErrorClass::HttpStatus), None),
            2,
            &policy(),
        );
        assert!(
            matches!(last.outcome, AttemptOutcome::Failed(ref why) if why.contains("gave up after 3 attempts"))
        );
    }

    #[test]
    fn retry_after_is_honoured_on_429_and_503_only() {
        let ra = Some(Duration::from_secs(2));
        for code in [429, 503] {
            let AttemptOutcome::RetryAt(t) = judge(
                observed(Some(code), Some(ErrorClass::HttpStatus), ra),
                0,
                &policy(),
            )
            .outcome
            else {
                panic!()
            };
            assert!(
                t <= Utc::now() + chrono::Duration::seconds(3),
                "{code} honours Retry-After"
            );
        }
        let AttemptOutcome::RetryAt(t) = judge(
            observed(Some(500), Some(ErrorClass::HttpStatus), ra),
            0,
            &policy(),
        )
        .outcome
        else {
            panic!()
        };
        assert!(
            t >= Utc::now() + chrono::Duration::seconds(9),
            "500 keeps the schedule"
        );
    }

    #[test]
    fn blocked_destinations_fail_without_retrying() {
        let v = judge(
            observed(None, Some(ErrorClass::Blocked), None),
            0,
            &policy(),
        );
        assert!(matches!(v.outcome, AttemptOutcome::Failed(_)));
        assert!(v.disable.is_none());
    }
}
