//! `herald automation create` from flags: the flags, and the REST body they make, with run
//! conditions written readably (`--metric loss --agg avg --gt 0.5`) turned into W&B's filters.

use anyhow::{bail, Context as _};
use clap::Args;
use serde_json::{json, Value};

use super::remote::json_arg;

#[derive(Args, Debug)]
pub struct AutomationArgs {
    /// A JSON file with the whole automation (as POST /api/v1/entities/{e}/automations takes);
    /// its entity is the first part of scope.path.
    #[arg(long, conflicts_with_all = ["name", "scope", "event"])]
    pub file: Option<std::path::PathBuf>,
    /// The automation's name, unique in its entity.
    #[arg(long, required_unless_present = "file")]
    pub name: Option<String>,
    /// What the automation is for.
    #[arg(long)]
    pub description: Option<String>,
    /// ENTITY, ENTITY/PROJECT (or registry) or ENTITY/PROJECT/COLLECTION.
    #[arg(long, required_unless_present = "file")]
    pub scope: Option<String>,
    /// CREATE_ARTIFACT, LINK_ARTIFACT, UNLINK_ARTIFACT, ADD_ARTIFACT_ALIAS, ADD_ARTIFACT_TAG, …
    /// (run events are implied by --metric … and --run-state).
    #[arg(long)]
    pub event: Option<String>,
    #[command(flatten)]
    pub run: RunConditionArgs,
    /// Only when the alias matches this regex.
    #[arg(long)]
    pub alias_regex: Option<String>,
    /// Only when the tag matches this regex.
    #[arg(long)]
    pub tag_regex: Option<String>,
    /// A filter in W&B's JSON format (instead of --alias-regex/--tag-regex).
    #[arg(long, conflicts_with_all = ["alias_regex", "tag_regex"])]
    pub filter: Option<String>,
    /// Call this webhook integration (its id).
    #[arg(long)]
    pub webhook: Option<i64>,
    /// The webhook payload (JSON with ${variables}).
    #[arg(long, requires = "webhook")]
    pub payload: Option<String>,
    /// Record executions and do nothing (for trying an automation out).
    #[arg(long, conflicts_with_all = ["webhook", "slack"])]
    pub no_op: bool,
    /// Post to this Slack integration (its id).
    #[arg(long, conflicts_with = "webhook")]
    pub slack: Option<i64>,
    /// The Slack message's title (may use ${variables}).
    #[arg(long, requires = "slack")]
    pub title: Option<String>,
    /// The Slack message's text (may use ${variables}).
    #[arg(long, requires = "slack")]
    pub message: Option<String>,
    /// INFO, WARN or ERROR.
    #[arg(long, requires = "slack")]
    pub severity: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

/// Run-event conditions in a readable form, e.g. `--metric loss --agg avg --window 5 --gt 0.5`,
/// `--metric acc --decreases-by 10%`, `--metric acc --zscore 2`, `--run-state FAILED`.
#[derive(Args, Debug, Default)]
pub struct RunConditionArgs {
    /// The metric to watch (RUN_METRIC, RUN_METRIC_CHANGE or RUN_METRIC_ZSCORE).
    #[arg(long)]
    pub metric: Option<String>,
    /// Aggregate over the window: avg, min or max (default: the newest value).
    #[arg(long, value_parser = ["avg", "average", "min", "max"])]
    pub agg: Option<String>,
    /// Values in the window (the current window for changes; the z-score window).
    #[arg(long)]
    pub window: Option<u64>,
    /// The prior window for changes (default: --window).
    #[arg(long)]
    pub prior_window: Option<u64>,
    /// Fire when the value is above this.
    #[arg(long, allow_hyphen_values = true)]
    pub gt: Option<f64>,
    /// Fire when the value is at least this.
    #[arg(long, allow_hyphen_values = true)]
    pub gte: Option<f64>,
    /// Fire when the value is below this.
    #[arg(long, allow_hyphen_values = true)]
    pub lt: Option<f64>,
    /// Fire when the value is at most this.
    #[arg(long, allow_hyphen_values = true)]
    pub lte: Option<f64>,
    /// Fire when it increases by this much between windows (`0.5`, or `10%` for relative).
    #[arg(long)]
    pub increases_by: Option<String>,
    /// Fire when it decreases by this much between windows.
    #[arg(long)]
    pub decreases_by: Option<String>,
    /// Fire when it changes either way by this much between windows.
    #[arg(long)]
    pub changes_by: Option<String>,
    /// Fire when the newest value is this many standard deviations from the window's mean.
    #[arg(long)]
    pub zscore: Option<f64>,
    /// For --zscore: any, increase or decrease (default any).
    #[arg(long, value_parser = ["any", "increase", "decrease"])]
    pub direction: Option<String>,
    /// Fire when a run enters one of these states (comma-separated: RUNNING, FINISHED, FAILED).
    #[arg(long)]
    pub run_state: Option<String>,
    /// Only runs whose display name matches this regex.
    #[arg(long)]
    pub run_name_regex: Option<String>,
    /// Only runs of this user.
    #[arg(long)]
    pub run_user: Option<String>,
    /// Run-metric automations fire at most once per run per this many seconds (default a day).
    #[arg(long)]
    pub cooldown: Option<u32>,
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
pub(super) fn automation_body(a: &AutomationArgs) -> anyhow::Result<Value> {
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
        let crate::cli::AutomationCmd::Create(a) = *cmd else {
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
