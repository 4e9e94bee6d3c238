//! Console lines as the `wandb` SDK streams them (`output.log` over file_stream): kept by line
//! number or dropped by configuration, a rewritten line replacing the one before, a resent post
//! adding nothing, and read back at `.../runs/{run}/console`. The SDK itself prints into them in
//! `sdk-tests/test_training.py`.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn stream(run: &str) -> String {
    format!("/files/acme/vision/{run}/file_stream")
}

fn console_path(run: &str) -> String {
    format!("/api/v1/entities/acme/projects/vision/runs/{run}/console")
}

/// A post of console lines from `offset`.
fn log(offset: i64, lines: &[&str]) -> Value {
    json!({"files": {"output.log": {"offset": offset, "content": lines}}})
}

/// A server with `[runs]` set to `runs`, its team `acme` and a run `r1` in `acme/vision`, made
/// by alice.
async fn app_with(runs: Option<&str>, env: &[(&str, &str)]) -> (TestApp, Api) {
    let mut vars = vec![(
        "HERALD_BOOTSTRAP_API_KEY".to_string(),
        ADMIN_KEY.to_string(),
    )];
    vars.extend(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let app = start_app(runs.map(|r| format!("[runs]\n{r}\n")), vars).await;
    let alice = alice_with_run(&app).await;
    (app, alice)
}

/// Posts `body` to r1's file_stream, which must take it.
async fn stream_ok(api: &Api, body: Value) {
    expect(api.post(&stream("r1"), body).await, StatusCode::OK);
}

async fn console(api: &Api, run: &str) -> Value {
    expect(
        api.get(&format!("{}?limit=1000", console_path(run))).await,
        StatusCode::OK,
    )
}

/// `(line, stream, text)` of each line of a console page.
fn texts(page: &Value) -> Vec<(i64, String, String)> {
    page["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["line"].as_i64().unwrap(),
                l["stream"].as_str().unwrap().to_string(),
                l["text"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn line(n: i64, stream: &str, text: &str) -> (i64, String, String) {
    (n, stream.to_string(), text.to_string())
}

#[tokio::test]
async fn console_lines_are_kept_by_number_and_read_back() {
    let (app, alice) = app_with(None, &[]).await;
    let first = log(
        0,
        &[
            "2026-12-06T17:10:08.123456 epoch 0",
            "ERROR 2026-12-06T17:10:08.200000 warning: lr is high",
            "2026-12-06T17:10:09.000000 progress 10%",
        ],
    );
    stream_ok(&alice, first.clone()).await;
    let page = console(&alice, "r1").await;
    assert_eq!(
        texts(&page),
        [
            line(0, "stdout", "epoch 0"),
            line(1, "stderr", "warning: lr is high"),
            line(2, "stdout", "progress 10%")
        ]
    );
    assert_eq!(page["lines"][0]["time"], "2026-12-06T17:10:08.123456Z");
    assert_eq!(page["line_count"], 3);
    assert_eq!(page["next_cursor"], Value::Null);

    // The SDK resends a post it got no answer to: nothing changes.
    stream_ok(&alice, first).await;
    assert_eq!(console(&alice, "r1").await, page);

    // A progress bar redraws its line: the post starts at that line, and the last text wins.
    let redraw = log(
        2,
        &[
            "2026-12-06T17:10:10.000000 progress 100%",
            "2026-12-06T17:10:10.500000 epoch 1",
        ],
    );
    stream_ok(&alice, redraw).await;
    let page = console(&alice, "r1").await;
    assert_eq!(
        texts(&page)[2..],
        [
            line(2, "stdout", "progress 100%"),
            line(3, "stdout", "epoch 1")
        ]
    );
    assert_eq!(page["line_count"], 4);

    // Pages by line number.
    let first_page = expect(
        alice.get(&format!("{}?limit=3", console_path("r1"))).await,
        StatusCode::OK,
    );
    assert_eq!(first_page["next_cursor"], "2");
    let rest = expect(
        alice
            .get(&format!("{}?limit=3&after=2", console_path("r1")))
            .await,
        StatusCode::OK,
    );
    assert_eq!(texts(&rest), [line(3, "stdout", "epoch 1")]);
    assert_eq!(rest["next_cursor"], Value::Null);

    // A line not in wandb-core's form is all text; a very long one is kept cut.
    let long = format!("2026-12-06T17:10:11.000000 {}", "x".repeat(40_000));
    stream_ok(&alice, log(4, &["plain, no stamp", &long])).await;
    let page = console(&alice, "r1").await;
    assert_eq!(page["lines"][4]["text"], "plain, no stamp");
    assert_eq!(page["lines"][4]["time"], Value::Null);
    let cut = page["lines"][5]["text"].as_str().unwrap();
    assert!(
        cut.len() <= 16 * 1024 && cut.ends_with('…'),
        "{}",
        cut.len()
    );

    // Many lines in one post are all kept.
    let many: Vec<String> = (0..1000).map(|i| format!("row {i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    stream_ok(&alice, log(6, &many)).await;
    let page = console(&alice, "r1").await;
    assert_eq!(page["line_count"], 1006);
    assert_eq!(
        page["lines"].as_array().unwrap().len(),
        1000,
        "a page holds 1000"
    );
    assert_eq!(page["next_cursor"], "999");
    let last = expect(
        alice
            .get(&format!("{}?after=999", console_path("r1")))
            .await,
        StatusCode::OK,
    );
    let want: Vec<_> = (994..1000)
        .map(|i| line(i + 6, "stdout", &format!("row {i}")))
        .collect();
    assert_eq!(texts(&last), want);

    // A viewer reads the console; a non-member does not find the run.
    let carol = app.create_user("carol").await;
    let (status, _) = carol.get(&console_path("r1")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    alice.set_member("acme", "carol", "VIEWER").await;
    expect(carol.get(&console_path("r1")).await, StatusCode::OK);
    let (status, _) = alice.get(&console_path("nope")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_refused_post_keeps_none_of_its_lines() {
    let (_app, alice) = app_with(None, &[]).await;
    stream_ok(&alice, log(0, &["a", "b"])).await;
    // A gap is refused, naming the file and where the next line starts.
    let (status, body) = alice.post(&stream("r1"), log(3, &["d"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["path"], "files.output.log.offset");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("2"),
        "{body}"
    );
    // Lines of a post refused for another of its files are not kept either: the post is one
    // transaction.
    let mixed = json!({"files": {
        "output.log": {"offset": 2, "content": ["c"]},
        "wandb-events.jsonl": {"offset": 4, "content": ["{}"]},
    }});
    let (status, body) = alice.post(&stream("r1"), mixed).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["path"], "files.wandb-events.jsonl.offset");
    let page = console(&alice, "r1").await;
    assert_eq!(
        texts(&page),
        [line(0, "stdout", "a"), line(1, "stdout", "b")]
    );
    assert_eq!(page["line_count"], 2);
    // A negative offset, and lines that are not strings, are bad input.
    for bad in [
        log(-1, &["x"]),
        json!({"files": {"output.log": {"offset": 2, "content": [1, 2]}}}),
    ] {
        let (status, body) = alice.post(&stream("r1"), bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    let (status, _) = alice.get(&format!("{}?after=x", console_path("r1"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn lines_past_the_cap_are_counted_not_kept() {
    let (_app, alice) = app_with(Some("console_max_lines = 3"), &[]).await;
    stream_ok(&alice, log(0, &["a", "b", "c", "d", "e"])).await;
    stream_ok(&alice, log(5, &["f"])).await;
    // A line under the cap may still be rewritten.
    stream_ok(&alice, log(2, &["C", "D"])).await;
    let page = console(&alice, "r1").await;
    assert_eq!(
        texts(&page),
        [
            line(0, "stdout", "a"),
            line(1, "stdout", "b"),
            line(2, "stdout", "C")
        ]
    );
    assert_eq!(page["line_count"], 6, "every line is counted");
    // The count is where a resumed run continues: past it is still a gap.
    let (status, _) = alice.post(&stream("r1"), log(7, &["h"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn dropped_console_lines_are_only_counted() {
    let (_app, alice) = app_with(None, &[("HERALD_RUNS_CONSOLE", "drop")]).await;
    stream_ok(&alice, log(0, &["a", "b"])).await;
    stream_ok(&alice, log(2, &["c"])).await;
    let page = console(&alice, "r1").await;
    assert_eq!(page["lines"], json!([]));
    assert_eq!(page["line_count"], 3);
    let (status, _) = alice.post(&stream("r1"), log(4, &["e"])).await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "gaps are refused either way"
    );
}

/// wandb-core 0.31's documents for `Api().run(…).console_logs()`, from the start and the tail.
const LOG_PAGE: &str = "query RunConsoleLogPage ($entity: String!, $project: String!, $runName: String!, $first: Int, $after: String) {\n\tproject(name: $project, entityName: $entity) {\n\t\trun(name: $runName) {\n\t\t\tlogLineCount\n\t\t\tlogLines(first: $first, after: $after, useImprovedPagination: true) {\n\t\t\t\tedges {\n\t\t\t\t\tnode {\n\t\t\t\t\t\tnumber\n\t\t\t\t\t\ttimestamp\n\t\t\t\t\t\tlevel\n\t\t\t\t\t\tlabel\n\t\t\t\t\t\tline\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t\tpageInfo {\n\t\t\t\t\tendCursor\n\t\t\t\t\thasNextPage\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}";
const LOG_TAIL: &str = "query RunConsoleLogTail ($entity: String!, $project: String!, $runName: String!, $last: Int!) {\n\tproject(name: $project, entityName: $entity) {\n\t\trun(name: $runName) {\n\t\t\tlogLineCount\n\t\t\tlogLines(last: $last) {\n\t\t\t\tedges {\n\t\t\t\t\tnode {\n\t\t\t\t\t\tnumber\n\t\t\t\t\t\ttimestamp\n\t\t\t\t\t\tlevel\n\t\t\t\t\t\tlabel\n\t\t\t\t\t\tline\n\t\t\t\t\t}\n\t\t\t\t}\n\t\t\t}\n\t\t}\n\t}\n}";

async fn log_query(api: &Api, name: &str, query: &str, vars: Value) -> Value {
    let mut variables = json!({"entity": "acme", "project": "vision", "runName": "r1"});
    variables
        .as_object_mut()
        .unwrap()
        .extend(vars.as_object().unwrap().clone());
    graphql_op(api, name, query, variables).await
}

/// `(number, level, line)` of each node of a logLines answer.
fn nodes(body: &Value) -> Vec<(i64, String, String)> {
    body["data"]["project"]["run"]["logLines"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|e| {
            let n = &e["node"];
            (
                n["number"].as_i64().unwrap(),
                n["level"].as_str().unwrap().to_string(),
                n["line"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn console_lines_answer_wandb_cores_log_queries() {
    let (_app, alice) = app_with(None, &[]).await;
    stream_ok(
        &alice,
        log(
            0,
            &[
                "2026-12-06T17:10:08.123456 epoch 0",
                "ERROR 2026-12-06T17:10:08.200000 warning",
                "epoch 1",
            ],
        ),
    )
    .await;

    // From the start, a page at a time: the cursor is the last line's number.
    let body = log_query(&alice, "RunConsoleLogPage", LOG_PAGE, json!({"first": 2})).await;
    assert_eq!(
        nodes(&body),
        [
            (0, String::new(), "epoch 0".to_string()),
            (1, "error".to_string(), "warning".to_string())
        ]
    );
    let run = &body["data"]["project"]["run"];
    assert_eq!(run["logLineCount"], 3);
    let first = &run["logLines"]["edges"][0]["node"];
    assert_eq!(
        (&first["timestamp"], &first["label"]),
        (&json!("2026-12-06T17:10:08.123456Z"), &json!(""))
    );
    let info = &run["logLines"]["pageInfo"];
    assert_eq!(
        (&info["endCursor"], &info["hasNextPage"]),
        (&json!("1"), &json!(true))
    );
    let body = log_query(
        &alice,
        "RunConsoleLogPage",
        LOG_PAGE,
        json!({"first": 2, "after": "1"}),
    )
    .await;
    assert_eq!(nodes(&body), [(2, String::new(), "epoch 1".to_string())]);
    assert_eq!(
        body["data"]["project"]["run"]["logLines"]["pageInfo"]["hasNextPage"],
        false
    );
    assert_eq!(
        body["data"]["project"]["run"]["logLines"]["edges"][0]["node"]["timestamp"],
        Value::Null
    );

    // The tail: the last lines, in order.
    let body = log_query(&alice, "RunConsoleLogTail", LOG_TAIL, json!({"last": 2})).await;
    assert_eq!(nodes(&body).iter().map(|n| n.0).collect::<Vec<_>>(), [1, 2]);

    // A cursor this server did not give, and a negative count, are named.
    for (vars, field) in [
        (json!({"after": "x"}), "after"),
        (json!({"first": -1}), "first"),
    ] {
        let body = log_query(&alice, "RunConsoleLogPage", LOG_PAGE, vars).await;
        let m = body["errors"][0]["message"].as_str().unwrap_or_default();
        assert!(m.contains(field), "{body}");
    }
}

#[tokio::test]
async fn a_printed_nul_does_not_cost_the_post() {
    // PostgreSQL cannot store U+0000 in text, and other bodies with one are refused; a script
    // that prints one would then lose the history posted with it.
    let (_app, alice) = app_with(None, &[]).await;
    let post = json!({"files": {
        "output.log": {"offset": 0, "content": ["2026-12-06T17:10:08.123456 a\u{0}b"]},
        "wandb-history.jsonl": {"offset": 0, "content": ["{\"_step\": 0, \"loss\": 1}"]},
    }});
    stream_ok(&alice, post).await;
    let page = console(&alice, "r1").await;
    assert_eq!(texts(&page), [line(0, "stdout", "a\u{FFFD}b")]);
    let history = expect(
        alice
            .get("/api/v1/entities/acme/projects/vision/runs/r1/history")
            .await,
        StatusCode::OK,
    );
    assert_eq!(history["rows"].as_array().unwrap().len(), 1);
}
