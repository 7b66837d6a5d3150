//! The platform's database and bus pieces against the real PostgreSQL and RabbitMQ.

use std::time::Duration;

use prost::Message;
use uuid::Uuid;

use caseway_platform::bus::{Bus, Subscription, consume};
use caseway_platform::idempotency::{self, Claim};
use caseway_platform::outbox::{self, Event, Relay};
use caseway_platform::{Db, Error, TenantId, TenantTx, inbox};
use caseway_test_support::{self as testing, TestBus, TestDb};

/// The tenancy schema, which the platform reads a tenant's standing from (its status, and for
/// the inbox whether it was purged).
static TENANCY: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tenancy");

async fn db() -> TestDb {
    TestDb::create(&[&caseway_platform::MIGRATOR, &TENANCY]).await
}

#[tokio::test]
async fn concurrent_claims_of_one_request_id_do_the_work_once() {
    let test = db().await;
    let tenant = TenantId::new();
    let request = prost_types::Duration {
        seconds: 7,
        nanos: 0,
    };
    let response = prost_types::Timestamp {
        seconds: 42,
        nanos: 0,
    };

    // The first claim holds the key until its transaction commits; the second waits for it.
    let mut first = test.db.tenant_tx(tenant).await.unwrap();
    let claim: Claim<prost_types::Timestamp> =
        idempotency::claim(&mut first, &idempotency::Key::of("m", "key-1", &request))
            .await
            .unwrap();
    assert!(matches!(claim, Claim::New));
    let second = {
        let db = test.db.clone();
        tokio::spawn(async move {
            let mut tx = db.tenant_tx(tenant).await.unwrap();
            let claim: Claim<prost_types::Timestamp> =
                idempotency::claim(&mut tx, &idempotency::Key::of("m", "key-1", &request))
                    .await
                    .unwrap();
            claim
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the duplicate waits for the first to finish"
    );
    idempotency::complete(
        &mut first,
        &idempotency::Key::of("m", "key-1", &request),
        &response,
    )
    .await
    .unwrap();
    first.commit().await.unwrap();
    match second.await.unwrap() {
        Claim::Replay(replayed) => assert_eq!(replayed, response),
        Claim::New => panic!("the duplicate did the work again"),
    }

    // A different request under the same id is refused, naming the field.
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    let other = prost_types::Duration {
        seconds: 8,
        nanos: 0,
    };
    let refused = idempotency::claim::<prost_types::Timestamp>(
        &mut tx,
        &idempotency::Key::of("m", "key-1", &other),
    )
    .await;
    assert!(matches!(refused, Err(Error::RequestIdReused)));
}

/// `settle` claims a key after the work, with the reply and the events in one statement: a
/// duplicate racing the first waits for it, answers its reply, and keeps none of its own writes.
#[tokio::test]
async fn a_settled_reply_answers_a_racing_duplicate_whose_events_roll_back() {
    let test = db().await;
    let tenant = TenantId::new();
    let request = prost_types::Duration {
        seconds: 7,
        nanos: 0,
    };
    let reply = |seconds| prost_types::Timestamp { seconds, nanos: 0 };
    let payload = prost_types::Duration::default();
    let event = |subject: &str| Event {
        event_type: "test.settled.v1",
        source: "caseway/test",
        subject: subject.into(),
        payload: &payload,
    };
    let key = idempotency::Key::of("m", "key-1", &request);
    let outbox_subjects = || async {
        let mut owner = test.owner().await;
        sqlx::query_scalar::<_, String>("SELECT subject FROM platform.outbox ORDER BY id")
            .fetch_all(&mut owner)
            .await
            .unwrap()
    };

    let mut first = test.db.tenant_tx(tenant).await.unwrap();
    let settled = idempotency::settle(&mut first, &key, &reply(1), &[event("a"), event("b")])
        .await
        .unwrap();
    assert!(matches!(settled, Claim::New));
    let second = {
        let db = test.db.clone();
        tokio::spawn(async move {
            let mut tx = db.tenant_tx(tenant).await.unwrap();
            let lost = Event {
                event_type: "test.settled.v1",
                source: "caseway/test",
                subject: "c".into(),
                payload: &payload,
            };
            let key = idempotency::Key::of("m", "key-1", &request);
            let settled = idempotency::settle(&mut tx, &key, &reply(2), &[lost])
                .await
                .unwrap();
            // Dropped without commit: its event goes with it.
            settled
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !second.is_finished(),
        "the duplicate waits for the first to finish"
    );
    first.commit().await.unwrap();
    match second.await.unwrap() {
        Claim::Replay(replayed) => assert_eq!(replayed, reply(1)),
        Claim::New => panic!("the duplicate settled again"),
    }
    assert_eq!(outbox_subjects().await, ["a", "b"]);

    // Another request under the id is refused; no request id claims nothing.
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    let other = prost_types::Duration {
        seconds: 8,
        nanos: 0,
    };
    let refused = idempotency::settle(
        &mut tx,
        &idempotency::Key::of("m", "key-1", &other),
        &reply(3),
        &[event("d")],
    )
    .await;
    assert!(matches!(refused, Err(Error::RequestIdReused)));
    drop(tx);
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    let unkeyed = idempotency::Key::of("m", "", &other);
    for subject in ["e", "f"] {
        let settled = idempotency::settle(&mut tx, &unkeyed, &reply(4), &[event(subject)])
            .await
            .unwrap();
        assert!(matches!(settled, Claim::New));
    }
    tx.commit().await.unwrap();
    assert_eq!(outbox_subjects().await, ["a", "b", "e", "f"]);
}

#[tokio::test]
async fn inbox_records_each_event_once_per_consumer() {
    let test = db().await;
    let tenant = TenantId::new();
    let event = Uuid::now_v7();
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    assert!(
        inbox::first_delivery(&mut tx, "utilization", event)
            .await
            .unwrap()
    );
    assert!(
        !inbox::first_delivery(&mut tx, "utilization", event)
            .await
            .unwrap()
    );
    assert!(
        inbox::first_delivery(&mut tx, "reports", event)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    // A rolled-back effect leaves no trace: the redelivery is handled.
    let again = Uuid::now_v7();
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    assert!(
        inbox::first_delivery(&mut tx, "utilization", again)
            .await
            .unwrap()
    );
    drop(tx);
    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    assert!(
        inbox::first_delivery(&mut tx, "utilization", again)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn relay_publishes_committed_events_only_once_and_consumers_see_envelopes() {
    let test = db().await;
    let bus = TestBus::new();
    let mut listener = bus.listen("#").await;
    let tenant = TenantId::new();
    let payload = prost_types::Timestamp {
        seconds: 1,
        nanos: 2,
    };

    let mut tx = test.db.tenant_tx(tenant).await.unwrap();
    outbox::enqueue(
        &mut tx,
        Event {
            event_type: "test.thing_happened.v1",
            source: "caseway/test",
            subject: "s-1".into(),
            payload: &payload,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let mut rolled_back = test.db.tenant_tx(tenant).await.unwrap();
    outbox::enqueue(
        &mut rolled_back,
        Event {
            event_type: "test.never.v1",
            source: "caseway/test",
            subject: "s-2".into(),
            payload: &payload,
        },
    )
    .await
    .unwrap();
    drop(rolled_back);

    let relay = Relay::new(
        test.db.clone(),
        Bus::new(bus.bus.url(), bus.exchange()),
        Duration::from_millis(100),
    );
    assert_eq!(relay.drain().await.unwrap(), 1);
    assert_eq!(
        relay.drain().await.unwrap(),
        0,
        "a published row is not published again"
    );
    let (envelope, headers) = listener
        .expect("test.thing_happened.v1", Duration::from_secs(5))
        .await;
    assert_eq!(envelope.tenant_id, tenant);
    assert_eq!(envelope.subject, "s-1");
    assert_eq!(
        prost_types::Timestamp::decode(&envelope.payload[..]).unwrap(),
        payload
    );
    assert!(headers.contains(&"cloudEvents_tenantid".to_string()));
    assert!(
        listener.next(Duration::from_millis(300)).await.is_none(),
        "the rolled-back event never leaves"
    );
}

#[tokio::test]
async fn a_busy_relay_drains_without_listening_then_listens_for_commits_again() {
    let test = db().await;
    let bus = TestBus::new();
    let mut listener = bus.listen("#").await;
    let tenant = TenantId::new();
    let payload = prost_types::Timestamp {
        seconds: 3,
        nanos: 0,
    };
    let commit = |subjects: Vec<String>| {
        let db = test.db.clone();
        async move {
            let mut tx = db.tenant_tx(tenant).await.unwrap();
            let events: Vec<Event<'_, prost_types::Timestamp>> = subjects
                .into_iter()
                .map(|subject| Event {
                    event_type: "test.thing_happened.v1",
                    source: "caseway/test",
                    subject,
                    payload: &payload,
                })
                .collect();
            outbox::enqueue_all(&mut tx, &events).await.unwrap();
            tx.commit().await.unwrap();
        }
    };
    // The relay polls once a minute, so every event here reaches it by a notification or by
    // its own draining while busy.
    let relay = Relay::new(
        test.db.clone(),
        Bus::new(bus.bus.url(), bus.exchange()),
        Duration::from_secs(60),
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let running = tokio::spawn(relay.run(shutdown.clone()));

    // Bursts large enough to make the relay busy (it stops listening while they last).
    let mut expected = Vec::new();
    for burst in 0..5 {
        let subjects: Vec<String> = (0..40).map(|n| format!("burst-{burst}-{n:02}")).collect();
        expected.extend(subjects.iter().cloned());
        commit(subjects).await;
    }
    let mut seen = Vec::new();
    while seen.len() < expected.len() {
        let (envelope, _) = listener
            .expect("test.thing_happened.v1", Duration::from_secs(5))
            .await;
        seen.push(envelope.subject);
    }
    // Each once, in the order of the outbox (a batch's messages are published together).
    assert_eq!(seen, expected);

    // Idle again, it listens: a single commit is published long before the next poll.
    tokio::time::sleep(Duration::from_millis(200)).await;
    commit(vec!["after".into()]).await;
    let (envelope, _) = listener
        .expect("test.thing_happened.v1", Duration::from_secs(5))
        .await;
    assert_eq!(envelope.subject, "after");
    assert!(listener.next(Duration::from_millis(300)).await.is_none());
    shutdown.cancel();
    running.await.unwrap();
}

#[tokio::test]
async fn failing_consumer_retries_then_dead_letters_and_a_replay_tries_again() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    let bus = TestBus::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let attempts = Arc::new(AtomicU32::new(0));
    let handled = Arc::new(AtomicU32::new(0));
    let fixed = Arc::new(AtomicBool::new(false));
    let consumer = tokio::spawn(consume(
        bus.bus.clone(),
        Subscription {
            queue: Some(bus.bus.queue_name("poison")),
            bindings: vec!["test.poison.v1".into()],
            concurrency: 1,
        },
        shutdown.clone(),
        {
            let (attempts, handled, fixed) = (attempts.clone(), handled.clone(), fixed.clone());
            move |_| {
                let (attempts, handled, fixed) = (attempts.clone(), handled.clone(), fixed.clone());
                async move {
                    attempts.fetch_add(1, Ordering::SeqCst);
                    if !fixed.load(Ordering::SeqCst) {
                        anyhow::bail!("cannot handle this");
                    }
                    handled.fetch_add(1, Ordering::SeqCst);
                    Ok(())
                }
            }
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let envelope = caseway_platform::bus::Envelope {
        id: Uuid::now_v7(),
        tenant_id: TenantId::new(),
        event_type: "test.poison.v1".into(),
        source: "caseway/test".into(),
        subject: "thing-1".into(),
        time: chrono::Utc::now(),
        traceparent: None,
        payload: vec![1, 2, 3],
    };
    bus.bus
        .publish_confirmed(std::slice::from_ref(&envelope))
        .await
        .unwrap();
    let mut parked = Vec::new();
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        parked = bus.bus.parked("poison").await.unwrap();
        if !parked.is_empty() {
            break;
        }
    }
    assert_eq!(parked.len(), 1, "the failing event was parked");
    assert_eq!(
        attempts.load(Ordering::SeqCst),
        5,
        "five attempts before parking"
    );
    assert_eq!(parked[0].envelope.as_ref(), Some(&envelope));
    assert_eq!(parked[0].reason, "rejected");
    // Listing leaves it parked.
    assert_eq!(bus.bus.parked("poison").await.unwrap().len(), 1);
    // Replaying an id that is not parked changes nothing; replaying its id hands it to the
    // consumer again, which now succeeds.
    assert_eq!(
        bus.bus.replay("poison", &[Uuid::now_v7()]).await.unwrap(),
        0
    );
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(bus.bus.replay("poison", &[envelope.id]).await.unwrap(), 1);
    for _ in 0..50 {
        if handled.load(Ordering::SeqCst) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        handled.load(Ordering::SeqCst),
        1,
        "the replayed event was handled"
    );
    assert!(bus.bus.parked("poison").await.unwrap().is_empty());
    shutdown.cancel();
    consumer.await.unwrap();
}

#[tokio::test]
async fn a_batch_consumer_takes_waiting_events_together_and_a_failing_batch_one_at_a_time() {
    use std::sync::{Arc, Mutex};
    let bus = TestBus::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    // Subjects handled, and the size of every batch the handler was given.
    let handled = Arc::new(Mutex::new(Vec::<String>::new()));
    let batches = Arc::new(Mutex::new(Vec::<usize>::new()));
    let consumer = tokio::spawn(caseway_platform::bus::consume_batches(
        bus.bus.clone(),
        Subscription {
            queue: Some(bus.bus.queue_name("batches")),
            bindings: vec!["test.batched.v1".into()],
            concurrency: 1,
        },
        shutdown.clone(),
        8,
        {
            let (handled, batches) = (handled.clone(), batches.clone());
            move |batch: Vec<caseway_platform::bus::Envelope>| {
                let (handled, batches) = (handled.clone(), batches.clone());
                async move {
                    batches.lock().unwrap().push(batch.len());
                    // Slow enough that the events published meanwhile wait for the next batch.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if batch.iter().any(|e| e.subject == "bad") {
                        anyhow::bail!("cannot handle this one");
                    }
                    handled
                        .lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|e| e.subject));
                    Ok(())
                }
            }
        },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let event = |subject: String| caseway_platform::bus::Envelope {
        id: Uuid::now_v7(),
        tenant_id: TenantId::new(),
        event_type: "test.batched.v1".into(),
        source: "caseway/test".into(),
        subject,
        time: chrono::Utc::now(),
        traceparent: None,
        payload: vec![1],
    };
    let mut good: Vec<String> = (0..20).map(|n| format!("event-{n:02}")).collect();
    let mut events: Vec<_> = good.iter().cloned().map(event).collect();
    events.insert(10, event("bad".into()));
    for event in &events {
        bus.bus
            .publish_confirmed(std::slice::from_ref(event))
            .await
            .unwrap();
    }
    let mut parked = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        parked = bus.bus.parked("batches").await.unwrap();
        if !parked.is_empty() && handled.lock().unwrap().len() >= good.len() {
            break;
        }
    }
    // Every good event handled once, the bad one parked, and events did travel together.
    let mut seen = handled.lock().unwrap().clone();
    seen.sort();
    good.sort();
    assert_eq!(seen, good);
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].envelope.as_ref().unwrap().subject, "bad");
    let batches = batches.lock().unwrap().clone();
    assert!(batches.iter().any(|n| *n > 1), "{batches:?}");
    assert!(batches.iter().all(|n| *n <= 8), "{batches:?}");
    shutdown.cancel();
    consumer.await.unwrap();
}

#[tokio::test]
async fn a_tenants_events_travel_together_and_a_failing_one_is_parked_alone_for_its_consumer() {
    use caseway_platform::bus::{BATCH_CONTENT_TYPE, Envelope, consume_batches};
    use std::sync::{Arc, Mutex};
    let bus = TestBus::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let subscription = |consumer: &str| Subscription {
        queue: Some(bus.bus.queue_name(consumer)),
        bindings: vec!["test.grouped.v1".into()],
        concurrency: 1,
    };
    // One consumer applies batches and cannot apply "bad"; another takes every event alone and
    // can apply them all.
    let (together, alone) = (
        Arc::new(Mutex::new(Vec::<String>::new())),
        Arc::new(Mutex::new(Vec::<String>::new())),
    );
    let batching = tokio::spawn(consume_batches(
        bus.bus.clone(),
        subscription("together"),
        shutdown.clone(),
        8,
        {
            let together = together.clone();
            move |batch: Vec<Envelope>| {
                let together = together.clone();
                async move {
                    if batch.iter().any(|e| e.subject == "bad") {
                        anyhow::bail!("cannot handle this one");
                    }
                    together
                        .lock()
                        .unwrap()
                        .extend(batch.into_iter().map(|e| e.subject));
                    Ok(())
                }
            }
        },
    ));
    let single = tokio::spawn(consume(
        bus.bus.clone(),
        subscription("alone"),
        shutdown.clone(),
        {
            let alone = alone.clone();
            move |envelope: Envelope| {
                let alone = alone.clone();
                async move {
                    alone.lock().unwrap().push(envelope.subject);
                    Ok(())
                }
            }
        },
    ));
    for _ in 0..50 {
        if bus.bus.is_bound("together") && bus.bus.is_bound("alone") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let tenant = TenantId::new();
    let event = |subject: String| Envelope {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        event_type: "test.grouped.v1".into(),
        source: "caseway/test".into(),
        subject,
        time: chrono::Utc::now(),
        traceparent: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into()),
        payload: vec![7, 7],
    };
    let mut subjects: Vec<String> = (0..20).map(|n| format!("event-{n:02}")).collect();
    subjects.insert(10, "bad".into());
    let events: Vec<Envelope> = subjects.iter().cloned().map(event).collect();

    // The 21 events of one tenant and type go as one message, a CloudEvents protobuf batch that
    // reads back as the same events in their order.
    let delivery = bus
        .next_delivery("test.grouped.v1", Duration::from_secs(5), async {
            bus.bus.publish_confirmed(&events).await.unwrap();
        })
        .await
        .expect("the batch was delivered");
    assert_eq!(
        delivery
            .properties
            .content_type()
            .as_ref()
            .map(|t| t.as_str()),
        Some(BATCH_CONTENT_TYPE)
    );
    assert_eq!(Envelope::from_delivery(&delivery).unwrap(), events);

    let parked_of = |consumer: &'static str| {
        let bus = bus.bus.clone();
        async move { bus.parked(consumer).await.unwrap() }
    };
    let mut parked = Vec::new();
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        parked = parked_of("together").await;
        if !parked.is_empty() && together.lock().unwrap().len() == 20 {
            break;
        }
    }
    // The batching consumer applied every other event once, and parked "bad" alone.
    let good: Vec<String> = subjects.iter().filter(|s| *s != "bad").cloned().collect();
    assert_eq!(*together.lock().unwrap(), good);
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].envelope.as_ref(), Some(&events[10]));
    assert_eq!(parked[0].reason, "rejected");
    // The other consumer took each event alone, in order, and has parked nothing: an event is
    // parked only for the consumer that failed it.
    for _ in 0..50 {
        if alone.lock().unwrap().len() == subjects.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(*alone.lock().unwrap(), subjects);
    assert!(parked_of("alone").await.is_empty());
    shutdown.cancel();
    batching.await.unwrap();
    single.await.unwrap();
}

#[tokio::test]
async fn replicas_share_one_rate_budget_per_tenant() {
    use caseway_platform::rate_limit::RateLimiter;
    let (first, second) = (
        RateLimiter::new(testing::redis(), 20),
        RateLimiter::new(testing::redis(), 20),
    );
    let tenant = TenantId::new();
    // Align to the start of a second, so every call lands in one window.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 10_000_000,
    ))
    .await;
    let mut allowed = 0;
    for call in 0..60 {
        let replica = if call % 2 == 0 { &first } else { &second };
        match replica.check(tenant).await {
            Ok(()) => allowed += 1,
            Err(error) => assert!(matches!(error, Error::ResourceExhausted { .. })),
        }
    }
    assert_eq!(
        allowed, 20,
        "two replicas together allow the tenant's budget, no more"
    );
    assert!(
        first.check(TenantId::new()).await.is_ok(),
        "another tenant has its own budget"
    );
}

#[tokio::test]
async fn callers_arriving_together_do_not_waste_the_budget() {
    use caseway_platform::rate_limit::RateLimiter;
    let limiter = std::sync::Arc::new(RateLimiter::new(testing::redis(), 200));
    let tenant = TenantId::new();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    tokio::time::sleep(Duration::from_nanos(
        1_000_000_000 - u64::from(now.subsec_nanos()) + 10_000_000,
    ))
    .await;
    let calls: Vec<_> = (0..64)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move { limiter.check(tenant).await.is_ok() })
        })
        .collect();
    let mut allowed = 0;
    for call in calls {
        allowed += usize::from(call.await.unwrap());
    }
    assert_eq!(
        allowed, 64,
        "64 calls fit a budget of 200 however they arrive"
    );
}

/// The pool behind `Db`, with one connection so each transaction gets what the one before left.
fn pool_of_one(test: &TestDb, acquire_timeout: Duration) -> Db {
    Db::connect_lazy_with(&test.app_url, 1, acquire_timeout).unwrap()
}

/// A message to key idempotency records by.
fn stamp(seconds: i64) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds, nanos: 0 }
}

/// Claims `key` for `message` in `tx`.
async fn claim(
    tx: &mut TenantTx,
    key: &str,
    message: &prost_types::Timestamp,
) -> Claim<prost_types::Timestamp> {
    idempotency::claim(tx, &idempotency::Key::of("m", key, message))
        .await
        .unwrap()
}

/// Claims `key` and stores `message` as its answer, in `tx`.
async fn store_key(tx: &mut TenantTx, key: &str, message: &prost_types::Timestamp) {
    assert!(matches!(claim(tx, key, message).await, Claim::New));
    idempotency::complete(tx, &idempotency::Key::of("m", key, message), message)
        .await
        .unwrap();
}

/// Idempotency records the transaction sees.
async fn keys_seen(tx: &mut TenantTx) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM platform.idempotency_keys")
        .fetch_one(tx.conn())
        .await
        .unwrap()
}

/// The server process behind a transaction, and the transaction's id.
async fn backend_and_xid(tx: &mut TenantTx) -> (i32, i64) {
    sqlx::query_as("SELECT pg_backend_pid(), txid_current()")
        .fetch_one(tx.conn())
        .await
        .unwrap()
}

#[tokio::test]
async fn a_tenant_at_its_cap_of_connections_waits_while_another_tenant_is_served() {
    let test = db().await;
    let db = Db::connect_lazy_with(&test.app_url, 4, Duration::from_millis(300))
        .unwrap()
        .with_tenant_cap(2);
    let metrics = std::sync::Arc::new(caseway_platform::metrics::Metrics::new());
    db.observe_with(metrics.clone());
    let (busy, other) = (TenantId::new(), TenantId::new());
    let mut held = vec![
        db.tenant_tx(busy).await.unwrap(),
        db.tenant_tx(busy).await.unwrap(),
    ];
    // Half the pool is free, but not for the tenant that holds its cap.
    match db.tenant_tx(busy).await {
        Err(Error::ResourceExhausted {
            reason,
            retry_after,
            ..
        }) => {
            assert_eq!(reason, caseway_platform::error::Reason::TenantBusy);
            assert_eq!(retry_after, Duration::from_secs(1));
        }
        other => panic!("expected TENANT_BUSY, got {:?}", other.map(|_| ())),
    }
    let status = tonic::Status::from(db.tenant_tx(busy).await.err().unwrap());
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let mut served = db.tenant_tx(other).await.unwrap();
    assert_eq!(keys_seen(&mut served).await, 0);
    served.commit().await.unwrap();
    // One of its own connections back while a call waits for it, and the tenant is served.
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move { db.tenant_tx(busy).await.map(|_| ()) })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    held.pop().unwrap().commit().await.unwrap();
    waiting.await.unwrap().unwrap();
    let mut again = db.tenant_tx(busy).await.unwrap();
    assert_eq!(keys_seen(&mut again).await, 0);
    // Ops see both: three waits at the cap, two of them refused.
    let text = metrics.encode();
    assert!(text.contains("caseway_tenant_cap_waits_total 3"), "{text}");
    assert!(text.contains("caseway_tenant_busy_total 2"), "{text}");
}

#[tokio::test]
async fn a_committed_transaction_hands_its_connection_back_for_the_next() {
    let test = db().await;
    let db = pool_of_one(&test, Duration::from_secs(5));
    let tenant = TenantId::new();
    let response = stamp(1);
    let mut first = db.tenant_tx(tenant).await.unwrap();
    let (backend, first_xid) = backend_and_xid(&mut first).await;
    store_key(&mut first, "k", &response).await;
    first.commit().await.unwrap();

    // The same connection serves the next transaction, which sees the commit.
    let mut second = db.tenant_tx(tenant).await.unwrap();
    let (again, second_xid) = backend_and_xid(&mut second).await;
    assert_eq!(again, backend, "the connection was pooled, not reopened");
    assert_ne!(second_xid, first_xid, "a new transaction");
    assert!(matches!(claim(&mut second, "k", &response).await, Claim::Replay(r) if r == response));
}

#[tokio::test]
async fn a_transaction_dropped_without_commit_is_rolled_back_before_its_connection_is_reused() {
    let test = db().await;
    let db = pool_of_one(&test, Duration::from_secs(5));
    let tenant = TenantId::new();
    let request = stamp(2);
    let mut abandoned = db.tenant_tx(tenant).await.unwrap();
    let (backend, abandoned_xid) = backend_and_xid(&mut abandoned).await;
    claim(&mut abandoned, "k", &request).await;
    drop(abandoned);

    let mut next = db.tenant_tx(tenant).await.unwrap();
    let (again, xid) = backend_and_xid(&mut next).await;
    assert_eq!(again, backend, "the connection survived the rollback");
    assert_ne!(xid, abandoned_xid, "the abandoned transaction is over");
    assert!(
        matches!(claim(&mut next, "k", &request).await, Claim::New),
        "the abandoned claim was not kept"
    );
}

#[tokio::test]
async fn a_statement_abandoned_half_way_leaves_no_answer_behind_for_the_next_caller() {
    let test = db().await;
    let db = pool_of_one(&test, Duration::from_secs(5));
    let tenant = TenantId::new();
    let mut tx = db.tenant_tx(tenant).await.unwrap();
    let (backend, _) = backend_and_xid(&mut tx).await;
    // The caller gives up while PostgreSQL is still working on the statement.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(50),
        sqlx::query("SELECT pg_sleep(0.5), 7 AS late").execute(tx.conn()),
    )
    .await;
    assert!(gave_up.is_err());
    drop(tx);

    let mut next = db.tenant_tx(tenant).await.unwrap();
    let (again, _) = backend_and_xid(&mut next).await;
    assert_eq!(again, backend);
    let answer: i32 = sqlx::query_scalar("SELECT 42")
        .fetch_one(next.conn())
        .await
        .unwrap();
    assert_eq!(answer, 42, "the next caller reads its own answer");
    let in_tenant: String = sqlx::query_scalar("SELECT current_setting('app.tenant_id')")
        .fetch_one(next.conn())
        .await
        .unwrap();
    assert_eq!(in_tenant, tenant.to_string());
    next.commit().await.unwrap();
}

#[tokio::test]
async fn a_caller_waits_for_a_connection_only_as_long_as_the_pool_allows_and_not_after_close() {
    let test = db().await;
    let db = pool_of_one(&test, Duration::from_millis(200));
    let tenant = TenantId::new();
    let held = db.tenant_tx(tenant).await.unwrap();
    let started = std::time::Instant::now();
    let waited = db.tenant_tx(tenant).await;
    assert!(matches!(waited, Err(Error::Unavailable(_))));
    assert!(started.elapsed() >= Duration::from_millis(200));
    // Once the holder lets go, the next caller gets the connection.
    let waiting = {
        let db = db.clone();
        tokio::spawn(async move { db.tenant_tx(tenant).await.map(|_| ()) })
    };
    drop(held);
    waiting.await.unwrap().unwrap();

    db.close().await;
    assert!(!db.ping().await);
    assert!(matches!(
        db.tenant_tx(tenant).await,
        Err(Error::Unavailable(_))
    ));
}

#[tokio::test]
async fn a_snapshot_sees_one_moment_for_all_its_statements() {
    let test = db().await;
    let tenant = TenantId::new();
    let mut snapshot = test.db.tenant_snapshot(tenant).await.unwrap();
    assert_eq!(keys_seen(&mut snapshot).await, 0);

    // A write commits between two statements of the snapshot.
    let mut writer = test.db.tenant_tx(tenant).await.unwrap();
    store_key(&mut writer, "k", &stamp(4)).await;
    writer.commit().await.unwrap();

    assert_eq!(
        keys_seen(&mut snapshot).await,
        0,
        "the snapshot does not see the later commit"
    );
    let written = idempotency::claim::<prost_types::Timestamp>(
        &mut snapshot,
        &idempotency::Key::of("m", "k2", &stamp(4)),
    )
    .await;
    assert!(written.is_err(), "a snapshot is read-only");
    drop(snapshot);

    let mut fresh = test.db.tenant_tx(tenant).await.unwrap();
    assert_eq!(keys_seen(&mut fresh).await, 1);
}

#[tokio::test]
async fn an_unreachable_redis_is_counted_and_logged_not_silently_ignored() {
    use caseway_platform::metrics::Metrics;
    use caseway_platform::rate_limit::RateLimiter;
    use caseway_platform::redis::Redis;
    let metrics = std::sync::Arc::new(Metrics::new());
    let redis =
        std::sync::Arc::new(Redis::new("redis://127.0.0.1:1", None, metrics.clone()).unwrap());
    let limiter = RateLimiter::new(redis.clone(), 10);
    // The limit is not enforced while Redis is away (an outage of the limiter must not be one
    // of the product), and a call does not wait on it.
    let started = std::time::Instant::now();
    for _ in 0..50 {
        limiter.check(TenantId::new()).await.unwrap();
    }
    println!("50 checks with Redis away took {:?}", started.elapsed());
    let text = metrics.encode();
    assert!(text.contains("caseway_redis_up 0"), "{text}");
    assert!(
        text.lines().any(
            |l| l.starts_with("caseway_redis_errors_total{operation=\"rate_limit\"}")
                && !l.ends_with(" 0")
        ),
        "{text}"
    );
    // A TLS URL is understood (before, it switched the limiter off without a word).
    assert!(Redis::new("rediss://127.0.0.1:6380", None, metrics.clone()).is_ok());
    // And a reachable Redis puts the gauge back up.
    let healthy =
        std::sync::Arc::new(Redis::new(&testing::redis_url(), None, metrics.clone()).unwrap());
    RateLimiter::new(healthy, 10)
        .check(TenantId::new())
        .await
        .unwrap();
    assert!(metrics.encode().contains("caseway_redis_up 1"));
}

#[tokio::test]
async fn a_purged_tenants_parked_events_are_dropped_and_the_others_stay_in_order() {
    let bus = TestBus::new();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn(consume(
        bus.bus.clone(),
        Subscription {
            queue: Some(bus.bus.queue_name("doomed")),
            bindings: vec!["test.doomed.v1".into()],
            concurrency: 3,
        },
        shutdown.clone(),
        |_| async { anyhow::bail!("cannot handle this") },
    ));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (purged, kept) = (TenantId::new(), TenantId::new());
    let event = |tenant: TenantId, subject: &str| caseway_platform::bus::Envelope {
        id: Uuid::now_v7(),
        tenant_id: tenant,
        event_type: "test.doomed.v1".into(),
        source: "caseway/test".into(),
        subject: subject.into(),
        time: chrono::Utc::now(),
        traceparent: None,
        payload: vec![1],
    };
    let events = [
        event(purged, "a-1"),
        event(kept, "b-1"),
        event(purged, "a-2"),
        event(kept, "b-2"),
    ];
    bus.bus.publish_confirmed(&events).await.unwrap();
    let mut parked = Vec::new();
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        parked = bus.bus.parked("doomed").await.unwrap();
        if parked.len() == events.len() {
            break;
        }
    }
    assert_eq!(parked.len(), events.len(), "every event was parked");

    assert_eq!(
        bus.bus
            .drop_parked_of_tenant("doomed", purged)
            .await
            .unwrap(),
        2
    );
    let left: Vec<(TenantId, String)> = bus
        .bus
        .parked("doomed")
        .await
        .unwrap()
        .into_iter()
        .filter_map(|p| p.envelope)
        .map(|e| (e.tenant_id, e.subject))
        .collect();
    let expected: Vec<(TenantId, String)> = parked
        .iter()
        .filter_map(|p| p.envelope.clone())
        .filter(|e| e.tenant_id == kept)
        .map(|e| (e.tenant_id, e.subject))
        .collect();
    assert_eq!(left, expected, "the other tenant's stay, in their order");
    assert_eq!(
        bus.bus
            .drop_parked_of_tenant("doomed", purged)
            .await
            .unwrap(),
        0,
        "nothing more of the purged tenant"
    );
    shutdown.cancel();
    consumer.await.unwrap();
}
