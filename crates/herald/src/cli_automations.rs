//! CLI commands for secrets, integrations, automations and executions.

use std::io::Read as _;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use crate::cli::{
    cell, client, json_arg, rows, show, table, AutomationArgs, AutomationCmd, ClientOpts,
    ExecutionCmd, IntegrationCmd, RunConditionArgs, SecretCmd,
};
use crate::client::seg;

pub async fn secret(cmd: SecretCmd, opts: &ClientOpts) -> anyhow::Result<()> {
    match cmd {
        SecretCmd::Set {
            entity,
            name,
            value,
            grace_period,
        } => {
            let value = match value {
                Some(v) => v,
                None => {
                    let mut v = String::new();
                    std::io::stdin()
                        .read_to_string(&mut v)
                        .context("reading the secret from standard input")?;
                    v.trim_end_matches(['\n', '\r']).to_string()
                }
            };
            let url = format!("/api/v1/entities/{}/secrets/{}", seg(&entity), seg(&name));
            let mut body = json!({ "value": value });
            if let Some(g) = grace_period {
                body["grace_period_seconds"] = json!(g);
            }
            let out = client(opts).put(&url, &body).await?;
            show(opts, &out, || outln!("secret {name} saved in {entity}"))
        }
        SecretCmd::List { entity } => {
            let out = client(opts)
                .get(&format!("/api/v1/entities/{}/secrets", seg(&entity)))
                .await?;
            show(opts, &out, || {
                let mut listed = rows(&out, &[&["name"], &["updated_at"]]);
                // How many rotated-out values still sign deliveries.
                for (row, s) in listed.iter_mut().zip(out.as_array().into_iter().flatten()) {
                    let previous = s["previous_values"].as_array().map_or(0, Vec::len);
                    row.push(previous.to_string());
                }
                table(&["SECRET", "UPDATED", "PREVIOUS VALUES"], listed)
            })
        }
        SecretCmd::Delete { entity, name } => {
            client(opts)
                .delete(&format!(
                    "/api/v1/entities/{}/secrets/{}",
                    seg(&entity),
                    seg(&name)
                ))
                .await?;
            show(opts, &Value::Null, || {
                outln!("deleted secret {name} from {entity}")
            })
        }
    }
}

const INTEGRATION_COLUMNS: &[&[&str]] = &[
    &["id"],
    &["kind"],
    &["name"],
    &["url"],
    &["slack", "channel_name"],
    &["access_token_secret"],
    &["signing_secret"],
    &["enabled"],
    &["disabled_reason"],
];
const INTEGRATION_HEADERS: &[&str] = &[
    "ID",
    "KIND",
    "NAME",
    "URL",
    "CHANNEL",
    "TOKEN SECRET",
    "SIGNING SECRET",
    "ENABLED",
    "DISABLED BECAUSE",
];

pub async fn integration(cmd: IntegrationCmd, opts: &ClientOpts) -> anyhow::Result<()> {
    match cmd {
        IntegrationCmd::Create {
            entity,
            kind,
            name,
            url,
            access_token_secret,
            signing_secret,
            channel_name,
            workspace,
            webhook_url_secret,
            bot_token_secret,
            channel_id,
        } => {
            let mut body = json!({"kind": kind, "name": name});
            let fields = [
                ("url", url),
                ("access_token_secret", access_token_secret),
                ("signing_secret", signing_secret),
                ("channel_name", channel_name),
                ("workspace_name", workspace),
                ("webhook_url_secret", webhook_url_secret),
                ("bot_token_secret", bot_token_secret),
                ("channel_id", channel_id),
            ];
            for (k, v) in fields {
                if let Some(v) = v {
                    body[k] = json!(v);
                }
            }
            let out = client(opts)
                .post(
                    &format!("/api/v1/entities/{}/integrations", seg(&entity)),
                    &body,
                )
                .await?;
            show(opts, &out, || {
                table(
                    INTEGRATION_HEADERS,
                    rows(&Value::Array(vec![out.clone()]), INTEGRATION_COLUMNS),
                )
            })
        }
        IntegrationCmd::List { entity } => {
            let out = client(opts)
                .get(&format!("/api/v1/entities/{}/integrations", seg(&entity)))
                .await?;
            show(opts, &out, || {
                table(INTEGRATION_HEADERS, rows(&out, INTEGRATION_COLUMNS))
            })
        }
        IntegrationCmd::Test { id, payload } => {
            let body = json!({ "payload": json_arg("payload", &payload)? });
            let out = client(opts)
                .post(&format!("/api/v1/integrations/{id}/test"), &body)
                .await?;
            show(opts, &out, || {
                match out["status_code"].as_u64() {
                    Some(code) => outln!(
                        "HTTP {code} in {:.1} ms",
                        out["duration_ms"].as_f64().unwrap_or(0.0)
                    ),
                    None => outln!(
                        "no answer: {} ({})",
                        cell(&out["error"]),
                        cell(&out["error_class"])
                    ),
                }
                if let Some(r) = out["response"].as_str().filter(|r| !r.is_empty()) {
                    outln!("{r}");
                }
            })?;
            // Scripts (and people) learn from the exit code whether the destination took it.
            if out["ok"] != Value::Bool(true) {
                let why = match out["status_code"].as_u64() {
                    Some(code) => format!("the destination answered HTTP {code}"),
                    None => format!("no answer: {}", cell(&out["error"])),
                };
                anyhow::bail!("the test delivery failed: {why}");
            }
            Ok(())
        }
        IntegrationCmd::Enable { id } => set_integration_enabled(id, true, opts).await,
        IntegrationCmd::Disable { id } => set_integration_enabled(id, false, opts).await,
        IntegrationCmd::Delete { id } => {
            client(opts)
                .delete(&format!("/api/v1/integrations/{id}"))
                .await?;
            show(opts, &Value::Null, || outln!("deleted integration {id}"))
        }
    }
}

/// The event type and W&B filter of a run condition given by flags, if one was given.
fn run_condition(r: &RunConditionArgs) -> anyhow::Result<Option<(&'static str, Value)>> {
    let mut conds = Vec::new();
    if let Some(re) = &r.run_name_regex {
        conds.push(json!({"display_name": {"$regex": re}}));
    }
    if let Some(u) = &r.run_user {
        conds.push(json!({"username": {"$eq": u}}));
    }
    let run_filter = json!({"$and": conds}).to_string();
    if let Some(states) = &r.run_state {
        let states: Vec<String> = states
            .split(',')
            .map(|s| s.trim().to_ascii_uppercase())
            .filter(|s| !s.is_empty())
            .collect();
        let filter = json!({"run_filter": run_filter, "run_state_filter": {"states": states}});
        return Ok(Some(("RUN_STATE", filter)));
    }
    let Some(metric) = &r.metric else {
        if r.run_name_regex.is_some() || r.run_user.is_some() {
            bail!(
                "--run-name-regex and --run-user need a run condition: --metric … or --run-state …"
            );
        }
        return Ok(None);
    };
    let agg = r.agg.as_deref().map(|a| match a {
        "avg" | "average" => "AVERAGE",
        "min" => "MIN",
        _ => "MAX",
    });
    let window = r.window.unwrap_or(if agg.is_some() { 5 } else { 1 });
    let comparisons = [
        ("$gt", r.gt),
        ("$gte", r.gte),
        ("$lt", r.lt),
        ("$lte", r.lte),
    ];
    let given: Vec<(&str, f64)> = comparisons
        .iter()
        .filter_map(|(op, v)| v.map(|v| (*op, v)))
        .collect();
    let changes = [
        ("INCREASE", &r.increases_by),
        ("DECREASE", &r.decreases_by),
        ("ANY", &r.changes_by),
    ];
    let change: Vec<(&str, &String)> = changes
        .iter()
        .filter_map(|(d, v)| v.as_ref().map(|v| (*d, v)))
        .collect();
    let kinds = usize::from(!given.is_empty())
        + usize::from(!change.is_empty())
        + usize::from(r.zscore.is_some());
    if kinds != 1 || given.len() > 1 || change.len() > 1 {
        bail!("with --metric give exactly one condition: --gt/--gte/--lt/--lte N, --increases-by/--decreases-by/--changes-by N[%], or --zscore N");
    }
    let run_metric_filter = if let Some(&(op, threshold)) = given.first() {
        (
            "RUN_METRIC",
            json!({"threshold_filter": {"name": metric, "agg_op": agg, "window_size": window, "cmp_op": op, "threshold": threshold}}),
        )
    } else if let Some(&(dir, amount)) = change.first() {
        let (change_type, amount) = match amount.strip_suffix('%') {
            Some(pct) => ("RELATIVE", pct.trim().parse::<f64>().map(|p| p / 100.0)),
            None => ("ABSOLUTE", amount.trim().parse::<f64>()),
        };
        let amount = amount.map_err(|_| {
            anyhow::anyhow!("the change amount must be a number, or a percentage like 10%")
        })?;
        (
            "RUN_METRIC_CHANGE",
            json!({"change_filter": {
            "name": metric, "agg_op": agg, "current_window_size": window,
            "prior_window_size": r.prior_window.unwrap_or(window),
            "change_type": change_type, "change_dir": dir, "change_amount": amount}}),
        )
    } else {
        let dir = r.direction.as_deref().unwrap_or("any").to_ascii_uppercase();
        (
            "RUN_METRIC_ZSCORE",
            json!({"zscore_filter": {
            "name": metric, "window_size": r.window.unwrap_or(30), "threshold": r.zscore, "change_dir": dir}}),
        )
    };
    let (event, metric_filter) = run_metric_filter;
    Ok(Some((
        event,
        json!({"run_filter": run_filter, "run_metric_filter": metric_filter, "metric_filter": null}),
    )))
}

/// The REST body for `automation create` given by flags.
fn automation_body(a: &AutomationArgs) -> anyhow::Result<Value> {
    let scope = a.scope.as_deref().context("--scope is required")?;
    let scope_type = match scope.split('/').count() {
        1 => "ENTITY",
        2 => "PROJECT",
        3 => "ARTIFACT_COLLECTION",
        _ => bail!("--scope {scope:?} is not ENTITY, ENTITY/PROJECT or ENTITY/PROJECT/COLLECTION"),
    };
    let run = run_condition(&a.run)?;
    let event = match (&a.event, &run) {
        (Some(e), None) => e.clone(),
        (None, Some((e, _))) => e.to_string(),
        (Some(e), Some((implied, _))) if e.eq_ignore_ascii_case(implied) => implied.to_string(),
        (Some(e), Some((implied, _))) => {
            bail!("--event {e} does not match the run condition given, which is {implied}")
        }
        (None, None) => bail!("say what to watch: --event TYPE, --metric … or --run-state …"),
    };
    let filter = if let Some((_, f)) = run {
        f
    } else if let Some(f) = &a.filter {
        serde_json::from_str(f).context("--filter is not valid JSON")?
    } else {
        let mut conds = Vec::new();
        if let Some(r) = &a.alias_regex {
            conds.push(json!({ "alias": { "$regex": r } }));
        }
        if let Some(r) = &a.tag_regex {
            conds.push(json!({ "tag": { "$regex": r } }));
        }
        json!({ "$or": [{ "$and": conds }] })
    };
    let action = match (a.webhook, a.no_op) {
        (None, false) if a.slack.is_some() => json!({
            "type": "NOTIFICATION",
            "integration_id": a.slack,
            "title": a.title,
            "message": a.message,
            "severity": a.severity.as_deref().map(str::to_ascii_uppercase),
        }),
        (Some(id), _) => json!({
            "type": "GENERIC_WEBHOOK",
            "integration_id": id,
            // Without one, the server sends its default payload for the event's family.
            "payload": json_arg("payload", &a.payload)?,
        }),
        (None, true) => json!({ "type": "NO_OP" }),
        (None, false) => bail!("say what the automation does: --webhook ID, --slack ID or --no-op"),
    };
    Ok(json!({
        "name": a.name, "description": a.description, "enabled": !a.disabled,
        "scope": { "type": scope_type, "path": scope },
        "event": { "type": event, "filter": filter },
        "action": action,
        "cooldown_seconds": a.run.cooldown,
    }))
}

const AUTOMATION_HEADERS: &[&str] = &["ID", "NAME", "ENABLED", "SCOPE", "EVENT", "ACTION"];
const AUTOMATION_COLUMNS: &[&[&str]] = &[
    &["id"],
    &["name"],
    &["enabled"],
    &["scope", "path"],
    &["event", "type"],
    &["action", "type"],
];

fn read_json_file(path: &std::path::Path) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not valid JSON", path.display()))
}

pub async fn automation(cmd: AutomationCmd, opts: &ClientOpts) -> anyhow::Result<()> {
    match cmd {
        AutomationCmd::Create(args) => {
            let body = match &args.file {
                Some(f) => read_json_file(f)?,
                None => automation_body(&args)?,
            };
            let path = body["scope"]["path"]
                .as_str()
                .context("the automation has no scope.path")?;
            let entity = path.split('/').next().unwrap_or_default().to_string();
            let out = client(opts)
                .post(
                    &format!("/api/v1/entities/{}/automations", seg(&entity)),
                    &body,
                )
                .await?;
            show(opts, &out, || {
                table(
                    AUTOMATION_HEADERS,
                    rows(&Value::Array(vec![out.clone()]), AUTOMATION_COLUMNS),
                )
            })
        }
        AutomationCmd::List { entity, name } => {
            let mut url = format!("/api/v1/entities/{}/automations", seg(&entity));
            if let Some(n) = &name {
                url.push_str(&format!("?name={}", seg(n)));
            }
            let out = client(opts).get(&url).await?;
            show(opts, &out, || {
                table(AUTOMATION_HEADERS, rows(&out, AUTOMATION_COLUMNS))
            })
        }
        AutomationCmd::Get { id } => {
            let out = client(opts)
                .get(&format!("/api/v1/automations/{id}"))
                .await?;
            show(opts, &out, || {
                outln!("{}", serde_json::to_string_pretty(&out).unwrap_or_default())
            })
        }
        AutomationCmd::Update { id, file } => {
            let out = client(opts)
                .patch(
                    &format!("/api/v1/automations/{id}"),
                    &read_json_file(&file)?,
                )
                .await?;
            show(opts, &out, || {
                table(
                    AUTOMATION_HEADERS,
                    rows(&Value::Array(vec![out.clone()]), AUTOMATION_COLUMNS),
                )
            })
        }
        AutomationCmd::Enable { id } => set_enabled(id, true, opts).await,
        AutomationCmd::Disable { id } => set_enabled(id, false, opts).await,
        AutomationCmd::Delete { id } => {
            client(opts)
                .delete(&format!("/api/v1/automations/{id}"))
                .await?;
            show(opts, &Value::Null, || outln!("deleted automation {id}"))
        }
    }
}

async fn set_integration_enabled(id: i64, enabled: bool, opts: &ClientOpts) -> anyhow::Result<()> {
    let out = client(opts)
        .patch(
            &format!("/api/v1/integrations/{id}"),
            &json!({ "enabled": enabled }),
        )
        .await?;
    show(opts, &out, || {
        let state = if enabled { "enabled" } else { "disabled" };
        outln!("integration {id} is {state}")
    })
}

async fn set_enabled(id: i64, enabled: bool, opts: &ClientOpts) -> anyhow::Result<()> {
    let out = client(opts)
        .patch(
            &format!("/api/v1/automations/{id}"),
            &json!({ "enabled": enabled }),
        )
        .await?;
    show(opts, &out, || {
        outln!(
            "automation {id} is {}",
            if enabled { "enabled" } else { "disabled" }
        )
    })
}

const EXECUTION_HEADERS: &[&str] = &[
    "ID",
    "AUTOMATION",
    "EVENT",
    "STATUS",
    "ATTEMPTS",
    "NEXT ATTEMPT",
    "REASON",
    "CREATED",
];
const EXECUTION_COLUMNS: &[&[&str]] = &[
    &["id"],
    &["automation_name"],
    &["event_type"],
    &["status"],
    &["attempt_count"],
    &["next_attempt_at"],
    &["reason"],
    &["created_at"],
];

pub async fn execution(cmd: ExecutionCmd, opts: &ClientOpts) -> anyhow::Result<()> {
    match cmd {
        ExecutionCmd::List {
            automation,
            entity,
            status,
            limit,
        } => {
            let mut url = match (automation, &entity) {
                (Some(a), None) => format!("/api/v1/automations/{a}/executions?limit={limit}"),
                (a, Some(e)) => {
                    let mut u = format!("/api/v1/entities/{}/executions?limit={limit}", seg(e));
                    if let Some(a) = a {
                        u.push_str(&format!("&automation={a}"));
                    }
                    u
                }
                (None, None) => bail!("give --automation ID or --entity ENTITY"),
            };
            if let Some(s) = &status {
                url.push_str(&format!("&status={}", seg(s)));
            }
            let out = client(opts).get(&url).await?;
            show(opts, &out, || {
                table(
                    EXECUTION_HEADERS,
                    rows(&out["executions"], EXECUTION_COLUMNS),
                )
            })
        }
        ExecutionCmd::Show { id } => {
            let out = client(opts)
                .get(&format!("/api/v1/executions/{id}"))
                .await?;
            show(opts, &out, || {
                table(
                    EXECUTION_HEADERS,
                    rows(&Value::Array(vec![out.clone()]), EXECUTION_COLUMNS),
                );
                print_request(&out["request"]);
                table(
                    &[
                        "#",
                        "STARTED",
                        "MS",
                        "STATUS",
                        "ERROR CLASS",
                        "ERROR",
                        "RESPONSE",
                    ],
                    rows(
                        &out["attempts"],
                        &[
                            &["number"],
                            &["started_at"],
                            &["duration_ms"],
                            &["status_code"],
                            &["error_class"],
                            &["error"],
                            &["response"],
                        ],
                    ),
                );
            })
        }
        ExecutionCmd::Redeliver { id } => {
            let out = client(opts)
                .post(&format!("/api/v1/executions/{id}/redeliver"), &json!({}))
                .await?;
            show(opts, &out, || {
                outln!("execution {id} will be delivered again")
            })
        }
        ExecutionCmd::Cancel { id } => {
            let out = client(opts)
                .post(&format!("/api/v1/executions/{id}/cancel"), &json!({}))
                .await?;
            show(opts, &out, || {
                outln!(
                    "execution {id} is {}",
                    out["status"].as_str().unwrap_or("?")
                )
            })
        }
    }
}

/// An execution's request as a person reads it: the line, the headers, the body.
fn print_request(request: &Value) {
    outln!();
    match request["url"].as_str() {
        Some(url) => outln!("{} {url}", request["method"].as_str().unwrap_or("POST")),
        None => outln!("request (nothing is sent):"),
    }
    if let Some(headers) = request["headers"].as_object() {
        for (k, v) in headers {
            outln!("{k}: {}", v.as_str().unwrap_or_default());
        }
    }
    let body = match request.get("body").or_else(|| request.get("slack")) {
        Some(b) => b.clone(),
        None => request.clone(),
    };
    outln!();
    outln!(
        "{}",
        serde_json::to_string_pretty(&body).unwrap_or_default()
    );
    outln!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_domain::event::EventType;
    use herald_domain::run_filter::RunEventFilter;

    fn parsed(r: &RunConditionArgs) -> (String, String) {
        let (event, filter) = run_condition(r).unwrap().unwrap();
        let parsed = RunEventFilter::parse(EventType::parse(event).unwrap(), &filter).unwrap();
        (event.to_string(), parsed.describe())
    }

    #[test]
    fn readable_run_conditions_become_wandb_filters() {
        let r = RunConditionArgs {
            metric: Some("loss".into()),
            agg: Some("avg".into()),
            window: Some(5),
            gt: Some(0.5),
            ..Default::default()
        };
        assert_eq!(
            parsed(&r),
            ("RUN_METRIC".into(), "AVERAGE(loss) > 0.5 (last 5)".into())
        );
        let r = RunConditionArgs {
            metric: Some("acc".into()),
            decreases_by: Some("10%".into()),
            ..Default::default()
        };
        let (event, text) = parsed(&r);
        assert_eq!(event, "RUN_METRIC_CHANGE");
        assert!(text.contains("decreases by 10%"), "{text}");
        let r = RunConditionArgs {
            metric: Some("acc".into()),
            zscore: Some(2.0),
            ..Default::default()
        };
        assert_eq!(parsed(&r).0, "RUN_METRIC_ZSCORE");
        let r = RunConditionArgs {
            run_state: Some("failed,finished".into()),
            run_name_regex: Some("^prod".into()),
            ..Default::default()
        };
        let (event, filter) = run_condition(&r).unwrap().unwrap();
        assert_eq!(event, "RUN_STATE");
        assert_eq!(
            filter["run_filter"],
            r#"{"$and":[{"display_name":{"$regex":"^prod"}}]}"#
        );
        assert_eq!(
            filter["run_state_filter"]["states"],
            json!(["FAILED", "FINISHED"])
        );
    }

    fn create_args(args: &[&str]) -> AutomationArgs {
        use clap::Parser as _;
        let argv = ["herald", "automation", "create"]
            .iter()
            .chain(args)
            .copied();
        let cli = crate::cli::Cli::try_parse_from(argv).unwrap();
        let crate::cli::Command::Automation(cmd) = cli.command else {
            panic!("not an automation command")
        };
        let AutomationCmd::Create(a) = *cmd else {
            panic!("not create")
        };
        *a
    }

    #[test]
    fn actions_from_flags() {
        let slack = create_args(&[
            "--name",
            "n",
            "--scope",
            "t/p",
            "--event",
            "ADD_ARTIFACT_ALIAS",
            "--slack",
            "3",
            "--title",
            "Hi ${alias}",
            "--severity",
            "warn",
        ]);
        let body = automation_body(&slack).unwrap();
        assert_eq!(
            body["action"],
            json!({"type": "NOTIFICATION", "integration_id": 3, "title": "Hi ${alias}", "message": null, "severity": "WARN"})
        );
        assert_eq!(body["scope"], json!({"type": "PROJECT", "path": "t/p"}));
        let run = create_args(&[
            "--name",
            "n",
            "--scope",
            "t",
            "--metric",
            "loss",
            "--lt",
            "-1",
            "--no-op",
            "--cooldown",
            "60",
        ]);
        let body = automation_body(&run).unwrap();
        assert_eq!(body["event"]["type"], "RUN_METRIC");
        assert_eq!(body["scope"]["type"], "ENTITY");
        assert_eq!(body["cooldown_seconds"], 60);
        assert_eq!(
            body["event"]["filter"]["run_metric_filter"]["threshold_filter"]["threshold"],
            -1.0
        );
        let none = create_args(&[
            "--name",
            "n",
            "--scope",
            "t/p",
            "--event",
            "CREATE_ARTIFACT",
        ]);
        assert!(automation_body(&none)
            .unwrap_err()
            .to_string()
            .contains("--slack"));
    }

    #[test]
    fn ambiguous_conditions_are_refused() {
        let both = RunConditionArgs {
            metric: Some("x".into()),
            gt: Some(1.0),
            zscore: Some(2.0),
            ..Default::default()
        };
        assert!(run_condition(&both).is_err());
        let none = RunConditionArgs {
            metric: Some("x".into()),
            ..Default::default()
        };
        assert!(run_condition(&none).is_err());
        let pct = RunConditionArgs {
            metric: Some("x".into()),
            changes_by: Some("ten%".into()),
            ..Default::default()
        };
        assert!(run_condition(&pct).is_err());
        assert!(run_condition(&RunConditionArgs::default())
            .unwrap()
            .is_none());
    }
}
