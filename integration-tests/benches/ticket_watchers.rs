//! From commit to a watcher seeing it: 200 administrators watching their organizations'
//! tickets (`WatchTickets`, 50 in each of 4 organizations, over 8 connections) while support
//! adds public notes to their escalated tickets at a steady rate, over real gRPC, PostgreSQL and
//! RabbitMQ. Prints the latency from each note's commit (its AddTicketNote answered) to each of
//! its organization's watchers receiving it (target p99 under 100 ms), and checks that every
//! watcher saw every note of its organization and none of another's.
//!
//!     cargo bench -p caseway-integration-tests --bench ticket_watchers
//!
//! CASEWAY_BENCH_WATCHERS (default 200), CASEWAY_BENCH_RATE (notes a second, default 50) and
//! CASEWAY_BENCH_SECONDS (default 10).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::transport::Channel;

use caseway_api::ticketing::v1 as pb;
use caseway_api::ticketing::v1::ticketing_service_client::TicketingServiceClient;
use caseway_api::ticketing::v1::watch_tickets_response::Change;
use caseway_integration_tests::{TestEnv, authed};
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

const ORGANIZATIONS: usize = 4;
const CONNECTIONS: usize = 8;

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    run().await;
}

/// What one watcher saw: each note's id, when it arrived, and its organization.
type Seen = Arc<Mutex<Vec<(String, Instant, usize)>>>;

async fn run() {
    let watchers = setting("CASEWAY_BENCH_WATCHERS", 200) as usize;
    let rate = setting("CASEWAY_BENCH_RATE", 50);
    let seconds = setting("CASEWAY_BENCH_SECONDS", 10);
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    eventually(
        "the watchers' follower",
        Duration::from_secs(10),
        || async {
            match env.bus.bus.followers_of(caseway_ticketing::worker::WATCHED) {
                0 => Err("not bound yet"),
                _ => Ok(()),
            }
        },
    )
    .await;
    let support = env.support_token("sam");
    let mut channels = Vec::new();
    for _ in 0..CONNECTIONS {
        channels.push(
            Channel::from_shared(format!("http://{}", node.addr()))
                .unwrap()
                .connect()
                .await
                .unwrap(),
        );
    }

    // Each organization has an escalated ticket support writes on, and its watchers.
    let mut tickets = Vec::new();
    let mut admins = Vec::new();
    for o in 0..ORGANIZATIONS {
        let tenant = node.create_tenant(&env, &format!("watchers-{o}")).await;
        let admin = env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]);
        let mut api = node.ticketing.clone();
        let ticket = api
            .submit_ticket(authed(
                &admin,
                caseway_integration_tests::ticket_submission("Totals differ from the export"),
            ))
            .await
            .unwrap()
            .into_inner()
            .ticket
            .unwrap();
        api.escalate_ticket(authed(
            &admin,
            pb::EscalateTicketRequest {
                id: ticket.id.clone(),
                severity: pb::Severity::Medium as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
        tickets.push(ticket.id);
        admins.push(admin);
    }

    let mut seen: Vec<Seen> = Vec::new();
    let mut tasks = Vec::new();
    for w in 0..watchers {
        let organization = w % ORGANIZATIONS;
        let mut api = TicketingServiceClient::new(channels[w % CONNECTIONS].clone());
        let mut stream = api
            .watch_tickets(authed(&admins[organization], pb::WatchTicketsRequest {}))
            .await
            .unwrap()
            .into_inner();
        let log: Seen = Arc::default();
        seen.push(log.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok(Some(change)) = stream.message().await {
                if let Some(Change::Note(note)) = change.change {
                    let at = Instant::now();
                    log.lock().unwrap().push((note.id, at, organization));
                }
            }
        }));
    }
    println!(
        "{watchers} watchers in {ORGANIZATIONS} organizations over {CONNECTIONS} connections; \
         support adds {rate} public notes a second for {seconds} s"
    );

    // Support's notes, round the organizations, at the rate; each answered note's commit time.
    let committed: Arc<Mutex<HashMap<String, (Instant, usize)>>> = Arc::default();
    let mut writers = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let started = Instant::now();
    let total = rate * seconds;
    for n in 0..total {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let organization = n as usize % ORGANIZATIONS;
        let mut api = TicketingServiceClient::new(channels[n as usize % CONNECTIONS].clone());
        let request = authed(
            &support,
            pb::AddTicketNoteRequest {
                ticket_id: tickets[organization].clone(),
                visibility: pb::NoteVisibility::Public as i32,
                body: format!("Looking into it ({n})"),
                request_id: String::new(),
            },
        );
        let committed = committed.clone();
        writers.push(tokio::spawn(async move {
            let added = api.add_ticket_note(request).await.unwrap().into_inner();
            let at = Instant::now();
            committed
                .lock()
                .unwrap()
                .insert(added.note.unwrap().id, (at, organization));
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Let the last notes arrive.
    let expected = total as usize * watchers / ORGANIZATIONS;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.iter().map(|s| s.lock().unwrap().len()).sum::<usize>() < expected
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let committed = committed.lock().unwrap().clone();
    let mut latencies = Vec::new();
    let mut missing = 0;
    let mut foreign = 0;
    for (w, log) in seen.iter().enumerate() {
        let organization = w % ORGANIZATIONS;
        let log = log.lock().unwrap();
        let mut got = 0;
        for (id, at, _) in log.iter() {
            match committed.get(id) {
                Some(&(answered, of)) if of == organization => {
                    latencies.push(at.saturating_duration_since(answered));
                    got += 1;
                }
                _ => foreign += 1,
            }
        }
        missing += committed
            .values()
            .filter(|(_, of)| *of == organization)
            .count()
            - got;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p99 = at(0.99);
    println!(
        "notes: {} ({:.0}/s); deliveries: {} of {expected}, missing {missing}, of another organization {foreign}",
        committed.len(),
        committed.len() as f64 / elapsed,
        latencies.len()
    );
    println!(
        "commit -> watcher: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (target p99 < 100 ms: {})",
        ms(at(0.5)),
        ms(p99),
        ms(*latencies.last().unwrap()),
        if p99 < Duration::from_millis(100) && missing == 0 && foreign == 0 {
            "met"
        } else {
            "NOT met"
        }
    );
    for task in &tasks {
        task.abort();
    }
    node.shutdown().await;
}
