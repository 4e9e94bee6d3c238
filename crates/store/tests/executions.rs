//! The execution queue on a real SQLite database: matches are recorded once with the cursor,
//! claims lease due work, attempts move executions on, and history expires by its age.

use chrono::{Duration, Utc};
use herald_domain::automation::{
    Action, ActionType, Automation, AutomationName, EventSpec, ExecutionStatus, Scope, ScopeType,
};
use herald_domain::catalog::{Entity, EntityKind};
use herald_domain::event::{Event, EventType, PageRequest};
use herald_domain::ids::EventId;
use herald_domain::names::{ArtifactType, CollectionName, EntityName, ProjectName, Username};
use herald_store::sql::SqlStore;
use herald_store::{
    ArtifactStore, AttemptOutcome, AutomationStore, EntityStore, ExecutionQuery, ExecutionStore,
    NewAttempt, NewAutomation, NewExecution, NewUser, NewVersion, UserStore,
};

mod common;

#[tokio::test]
async fn queue_lifecycle_and_retention() {
    for db in common::databases().await {
        println!("backend: {}", db.name);
        queue_lifecycle(&db.store).await;
    }
}

#[tokio::test]
async fn recorded_matches_give_the_ids_of_the_rows_they_stored() {
    for db in common::databases().await {
        println!("backend: {}", db.name);
        match_ids(&db.store).await;
    }
}

/// Batches larger than one insert statement, and batches replaying executions stored already
/// (before, or earlier in the same batch): each new execution gets its own row's id, each
/// replayed one `None`.
async fn match_ids(store: &SqlStore) {
    let f = fixture(store, 120).await;
    let pending = ExecutionStatus::Pending;
    let first: Vec<NewExecution> = f.events[..45]
        .iter()
        .map(|e| f.execution(e.id, pending))
        .collect();
    let ids = store
        .record_matches(0, f.events[44].id.0, &first)
        .await
        .unwrap()
        .expect("the cursor stood where the batch began");
    // A batch of 64 with two replays in it: one stored by the first batch, one earlier in this.
    let mut second: Vec<NewExecution> = f.events[45..]
        .iter()
        .map(|e| f.execution(e.id, pending))
        .collect();
    second.insert(3, f.execution(f.events[5].id, pending));
    second.insert(10, f.execution(f.events[50].id, pending));
    second.truncate(64);
    let up_to = second.iter().map(|x| x.event_id.0).max().unwrap();
    let again = store
        .record_matches(f.events[44].id.0, up_to, &second)
        .await
        .unwrap()
        .expect("the cursor stood where the batch began");
    let stored = store
        .list_executions(
            &f.team,
            ExecutionQuery {
                automation: None,
                status: None,
                page: PageRequest {
                    after: None,
                    limit: 500,
                },
            },
        )
        .await
        .unwrap();
    let event_of: std::collections::HashMap<_, _> =
        stored.iter().map(|x| (x.id, x.event_id)).collect();
    assert_eq!(
        stored.len(),
        45 + 62,
        "each (automation, event) pair stored once"
    );
    for (x, id) in first.iter().zip(&ids) {
        let id = id.expect("a new execution has an id");
        assert_eq!(event_of[&id], x.event_id, "the id of the row stored for it");
    }
    for (i, (x, id)) in second.iter().zip(&again).enumerate() {
        match id {
            Some(id) => assert_eq!(event_of[id], x.event_id, "row {i}"),
            None => assert!(i == 3 || i == 10, "only the replays get no id, not row {i}"),
        }
    }
    assert_eq!(again.iter().filter(|id| id.is_none()).count(), 2);

    // Attempts recorded in one batch larger than an insert statement each land on their own
    // execution, with their own values, and move it on.
    let done: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let attempt = NewAttempt {
                number: 1,
                started_at: Utc::now(),
                duration: std::time::Duration::from_millis(i as u64),
                status_code: Some(200 + i as u16),
                error_class: None,
                error: None,
                response: Some(format!("answer {i}")),
            };
            (id.unwrap(), attempt, AttemptOutcome::Finished)
        })
        .collect();
    store.record_attempts(&done).await.unwrap();
    for (i, (id, ..)) in done.iter().enumerate() {
        let x = store.execution(&f.team, *id).await.unwrap();
        assert_eq!(x.status, ExecutionStatus::Finished, "execution {i}");
        assert_eq!(x.attempt_count, 1);
        let attempts = x.attempts.expect("a single read carries its attempts");
        assert_eq!(attempts.len(), 1, "execution {i}");
        assert_eq!(attempts[0].status_code, Some(200 + i as u16));
        assert_eq!(
            attempts[0].response.as_deref(),
            Some(format!("answer {i}").as_str())
        );
        assert_eq!(attempts[0].duration_ms, i as f64);
    }

    // A batch mixing outcomes: the finished executions (more than a statement's chunk of
    // them) move on together, retries and failures together on PostgreSQL (one by one on
    // SQLite, in process), and an execution with
    // two attempts in the batch counts both and ends as its last attempt left it.
    let later: Vec<_> = again.iter().flatten().copied().collect();
    let retry_at = Utc::now() + Duration::minutes(5);
    let outcome_of = |i: usize| match i % 10 {
        3 => AttemptOutcome::RetryAt(retry_at),
        6 => AttemptOutcome::Failed(format!("gave up on {i}")),
        _ => AttemptOutcome::Finished,
    };
    let attempt = |number: i64, code: u16| NewAttempt {
        number,
        started_at: Utc::now(),
        duration: std::time::Duration::from_millis(1),
        status_code: Some(code),
        error_class: None,
        error: None,
        response: None,
    };
    let twice = 7; // finished by its second attempt; its first (a retry) comes first in the batch
    let mut mixed = vec![(
        later[twice],
        attempt(1, 503),
        AttemptOutcome::RetryAt(retry_at),
    )];
    for (i, id) in later.iter().enumerate() {
        let number = if i == twice { 2 } else { 1 };
        mixed.push((*id, attempt(number, 200 + i as u16), outcome_of(i)));
    }
    store.record_attempts(&mixed).await.unwrap();
    let finished = (0..later.len())
        .filter(|i| matches!(outcome_of(*i), AttemptOutcome::Finished))
        .count();
    assert!(finished > 32, "more finished than one statement's chunk");
    for (i, id) in later.iter().enumerate() {
        let x = store.execution(&f.team, *id).await.unwrap();
        let attempts = x.attempts.expect("a single read carries its attempts");
        let (status, next, reason) = match outcome_of(i) {
            AttemptOutcome::Finished => (ExecutionStatus::Finished, None, None),
            AttemptOutcome::RetryAt(t) => (ExecutionStatus::Pending, Some(t), None),
            AttemptOutcome::Failed(why) => (ExecutionStatus::Failed, None, Some(why)),
            AttemptOutcome::Cancelled(_) => unreachable!("none in this batch"),
        };
        assert_eq!(x.status, status, "execution {i}");
        assert_eq!(
            x.next_attempt_at.map(|t| t.timestamp_micros()),
            next.map(|t| t.timestamp_micros()),
            "execution {i}"
        );
        assert_eq!(x.reason, reason, "execution {i}");
        let count = if i == twice { 2 } else { 1 };
        assert_eq!(x.attempt_count, count, "execution {i}");
        assert_eq!(attempts.len(), count as usize, "execution {i}");
        assert_eq!(
            attempts.last().unwrap().status_code,
            Some(200 + i as u16),
            "execution {i}"
        );
    }
}

#[tokio::test]
async fn cancelled_executions_send_nothing_more_and_stay_cancelled() {
    for db in common::databases().await {
        println!("backend: {}", db.name);
        cancellation(&db.store).await;
    }
}

/// A user cancels one execution; deleting its automation cancels the rest that wait. An
/// attempt in flight when that happened is stored but moves nothing; an execution cancelled
/// before it started stores no attempt; a final execution cannot be cancelled.
async fn cancellation(store: &SqlStore) {
    let f = fixture(store, 4).await;
    let xs: Vec<NewExecution> = f
        .events
        .iter()
        .map(|e| f.execution(e.id, ExecutionStatus::Pending))
        .collect();
    let last = f.events.last().unwrap().id.0;
    let ids: Vec<_> = store
        .record_matches(0, last, &xs)
        .await
        .unwrap()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    // One is claimed (in flight) before anything is cancelled.
    let now = Utc::now();
    let claimed = store
        .claim_due(now, now + Duration::seconds(30), 1, &[])
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    let in_flight = claimed[0].id;

    let by_user = ids.iter().copied().find(|id| *id != in_flight).unwrap();
    let x = store.cancel_execution(&f.team, by_user).await.unwrap();
    assert_eq!(x.status, ExecutionStatus::Cancelled);
    assert_eq!(x.reason.as_deref(), Some("cancelled by a user"));
    let again = store.cancel_execution(&f.team, by_user).await.unwrap_err();
    assert!(again.to_string().contains("CANCELLED"), "{again}");

    store
        .delete_automation(&f.team, f.automation.id)
        .await
        .unwrap();
    for id in &ids {
        let x = store.execution(&f.team, *id).await.unwrap();
        assert_eq!(x.status, ExecutionStatus::Cancelled, "execution {id}");
        assert_eq!(x.next_attempt_at, None);
        if *id != by_user {
            let why = x.reason.unwrap();
            assert!(why.contains("was deleted"), "{why}");
        }
    }
    // Nothing is due any more.
    let due = store
        .claim_due(Utc::now(), Utc::now() + Duration::seconds(30), 10, &[])
        .await
        .unwrap();
    assert!(due.is_empty(), "{due:?}");

    // The attempt in flight finishes: it is kept in history, the execution stays cancelled.
    // One never started is recorded as cancelled: no attempt.
    let never = ids
        .iter()
        .copied()
        .find(|id| *id != in_flight && *id != by_user)
        .unwrap();
    let attempt = NewAttempt {
        number: 1,
        started_at: Utc::now(),
        duration: std::time::Duration::from_millis(3),
        status_code: Some(503),
        error_class: Some("http_status".into()),
        error: Some("HTTP 503".into()),
        response: None,
    };
    store
        .record_attempts(&[
            (
                in_flight,
                attempt.clone(),
                AttemptOutcome::RetryAt(Utc::now()),
            ),
            (
                never,
                attempt,
                AttemptOutcome::Cancelled("cancelled: automation 1 was deleted".into()),
            ),
        ])
        .await
        .unwrap();
    let x = store.execution(&f.team, in_flight).await.unwrap();
    assert_eq!(x.status, ExecutionStatus::Cancelled);
    assert_eq!(
        x.attempts.unwrap().len(),
        1,
        "the attempt in flight is kept"
    );
    let x = store.execution(&f.team, never).await.unwrap();
    assert_eq!(x.status, ExecutionStatus::Cancelled);
    assert!(x.attempts.unwrap().is_empty());
    let due = store
        .claim_due(Utc::now(), Utc::now() + Duration::seconds(30), 10, &[])
        .await
        .unwrap();
    assert!(due.is_empty(), "a cancelled execution came back: {due:?}");
}

/// A team with a project holding `versions` artifact versions (one event each) and a NO_OP
/// automation to match them.
struct Fixture {
    team: Entity,
    automation: Automation,
    events: Vec<Event>,
}

async fn fixture(store: &SqlStore, versions: usize) -> Fixture {
    let user = store
        .create_user(NewUser {
            username: Username::parse("u").unwrap(),
            email: None,
            is_admin: false,
            key_hash: "h".into(),
        })
        .await
        .unwrap();
    let team = store
        .create_entity(
            &EntityName::parse("t").unwrap(),
            EntityKind::Team,
            None,
            &user,
        )
        .await
        .unwrap();
    let project = store
        .create_project(&team, &ProjectName::parse("p").unwrap(), None)
        .await
        .unwrap();
    let new_version = || NewVersion {
        collection: CollectionName::parse("c").unwrap(),
        artifact_type: ArtifactType::parse("model").unwrap(),
        digest: None,
        description: None,
        metadata: serde_json::json!({}),
        aliases: vec![],
        tags: vec![],
        run: None,
    };
    for _ in 0..versions {
        store
            .create_version(&project, &user, new_version())
            .await
            .unwrap();
    }
    let automation = store
        .create_automation(
            &team,
            NewAutomation {
                name: AutomationName::parse("a").unwrap(),
                description: None,
                enabled: true,
                scope: Scope {
                    scope_type: ScopeType::Project,
                    path: "t/p".into(),
                },
                event: EventSpec {
                    event_type: EventType::CreateArtifact,
                    filter: serde_json::json!({}),
                },
                action: Action::NoOp,
                rate_limit_per_minute: 60,
                cooldown_seconds: None,
                created_by: "u".into(),
            },
        )
        .await
        .unwrap();
    let events = store.events_after(0, 1000).await.unwrap();
    assert_eq!(events.len(), versions);
    Fixture {
        team,
        automation,
        events,
    }
}

impl Fixture {
    /// The automation's execution for `event`.
    fn execution(&self, event: EventId, status: ExecutionStatus) -> NewExecution {
        NewExecution {
            entity_id: self.team.id,
            automation_id: self.automation.id,
            automation_name: "a".into(),
            event_id: event,
            event_type: EventType::CreateArtifact,
            action_type: ActionType::NoOp,
            integration_id: None,
            status,
            reason: None,
            action: serde_json::json!({"type": "NO_OP"}).into(),
            variables: serde_json::json!({}),
            request: serde_json::json!({}),
            next_attempt_at: Some(Utc::now()),
            lease_until: None,
            fired_run: None,
        }
    }
}

async fn queue_lifecycle(store: &SqlStore) {
    let f = fixture(store, 3).await;
    let (team, automation, events) = (&f.team, &f.automation, &f.events);
    let exec = |event, status| f.execution(event, status);
    // The second is taken by the matching process itself: stored leased, as if claimed.
    let mut handed_off = exec(events[1].id, ExecutionStatus::Pending);
    handed_off.lease_until = Some(Utc::now() + Duration::seconds(60));
    let batch = [exec(events[0].id, ExecutionStatus::Pending), handed_off];
    let ids = store
        .record_matches(0, events[1].id.0, &batch)
        .await
        .unwrap()
        .expect("the cursor stood where the batch began");
    assert!(
        ids.iter().all(Option::is_some) && ids[0] != ids[1],
        "each execution's id comes back: {ids:?}"
    );
    // A matcher that read the same events but comes second stores nothing.
    assert!(
        store
            .record_matches(0, events[1].id.0, &batch)
            .await
            .unwrap()
            .is_none(),
        "the cursor moved: a second matcher's batch is refused"
    );
    assert_eq!(store.matcher_cursor().await.unwrap(), events[1].id.0);
    assert_eq!(store.matcher_lag().await.unwrap(), 1);
    // The third event's firing went over the rate limit.
    let mut skipped = exec(events[2].id, ExecutionStatus::Skipped);
    skipped.next_attempt_at = None;
    store
        .record_matches(events[1].id.0, events[2].id.0, &[skipped])
        .await
        .unwrap()
        .expect("the cursor stood where the batch began");
    assert_eq!(store.matcher_lag().await.unwrap(), 0);
    // What the rate limiter starts from: the automation's executions since a time, newest
    // first, skipped ones left out, counted up to a cap.
    let minute_ago = Utc::now() - Duration::seconds(60);
    let recent = |since, cap| store.recent_executions(automation.id, since, cap);
    assert_eq!(recent(minute_ago, 10).await.unwrap(), 2);
    assert_eq!(recent(minute_ago, 1).await.unwrap(), 1);
    assert_eq!(
        recent(Utc::now() + Duration::seconds(1), 10).await.unwrap(),
        0
    );

    let now = Utc::now();
    let claimed = store
        .claim_due(now, now + Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    assert_eq!(
        claimed.iter().map(|x| Some(x.id)).collect::<Vec<_>>(),
        vec![ids[0]],
        "the leased one is not claimable while its lease lasts"
    );
    assert!(
        store
            .claim_due(now, now + Duration::seconds(60), 10, &[])
            .await
            .unwrap()
            .is_empty(),
        "leased"
    );
    let attempt = || NewAttempt {
        number: 1,
        started_at: Utc::now(),
        duration: std::time::Duration::from_millis(1),
        status_code: Some(200),
        error_class: None,
        error: None,
        response: Some("ok".into()),
    };
    store
        .record_attempts(&[(claimed[0].id, attempt(), AttemptOutcome::Finished)])
        .await
        .unwrap();
    // A lease that expired makes the other claimable (the process that took it died).
    let later = now + Duration::seconds(61);
    let again = store
        .claim_due(later, later + Duration::seconds(60), 10, &[])
        .await
        .unwrap();
    assert_eq!(
        again.iter().map(|x| Some(x.id)).collect::<Vec<_>>(),
        vec![ids[1]]
    );

    let page = PageRequest {
        after: None,
        limit: 10,
    };
    let all = store
        .list_executions(
            team,
            ExecutionQuery {
                automation: None,
                status: None,
                page,
            },
        )
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    // Retention removes only final executions older than the cutoff.
    assert_eq!(
        store
            .purge_executions(Utc::now() - Duration::days(1))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .purge_executions(Utc::now() + Duration::seconds(1))
            .await
            .unwrap(),
        2,
        "the delivered one and the skipped one"
    );
    let left = store
        .list_executions(
            team,
            ExecutionQuery {
                automation: None,
                status: None,
                page,
            },
        )
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].status, ExecutionStatus::Running);
}
