//! The clients service: protected SSNs, search, history, roles and tenant isolation.

use std::time::Duration;

use sqlx::Connection;
use tonic::Code;
use uuid::Uuid;

use caseway_api::catalog::v1 as catalog_pb;
use caseway_api::clients::v1 as pb;
use caseway_integration_tests::population;
use caseway_integration_tests::tenants::{client, clients_tenant, code_value};
use caseway_integration_tests::{TestEnv, TestNode, authed, date, violated_fields};
use caseway_platform::auth::Role;

async fn create(
    node: &TestNode,
    token: &str,
    client: pb::Client,
) -> Result<pb::Client, tonic::Status> {
    node.clients
        .clone()
        .create_client(authed(
            token,
            pb::CreateClientRequest {
                request_id: String::new(),
                client: Some(client),
            },
        ))
        .await
        .map(|r| r.into_inner().client.unwrap())
}

/// Every match of a search, following its page tokens to the last page.
async fn every_page(
    node: &TestNode,
    token: &str,
    mut request: pb::SearchClientsRequest,
) -> Vec<pb::ClientMatch> {
    let mut clients = node.clients.clone();
    let mut matches = Vec::new();
    loop {
        let page = clients
            .search_clients(authed(token, request.clone()))
            .await
            .unwrap()
            .into_inner();
        matches.extend(page.matches);
        if page.next_page_token.is_empty() {
            return matches;
        }
        request.page_token = page.next_page_token;
    }
}

/// The ids of every match of a search, in the order its pages gave them.
async fn every_page_ids(
    node: &TestNode,
    token: &str,
    request: pb::SearchClientsRequest,
) -> Vec<String> {
    every_page(node, token, request)
        .await
        .into_iter()
        .map(|m| m.client.unwrap().id)
        .collect()
}

#[tokio::test]
async fn ssn_is_stored_sealed_shown_masked_and_whole_reads_are_audited() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("clients.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "ssn").await;
    let created = create(
        &node,
        &worker,
        client("Maria", "Lopez", "123-45-6789", (1980, 2, 29)),
    )
    .await
    .unwrap();
    assert_eq!(created.ssn, "***-**-6789");
    assert_eq!(created.ssn_last4, "6789");

    // Nowhere in the database is the number in the clear: not the row, the idempotency
    // record, the audit trail or the outbox.
    let mut owner = env.db.owner().await;
    for table in [
        "clients.clients",
        "platform.idempotency_keys",
        "platform.audit_log",
        "platform.outbox",
    ] {
        let found: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} t WHERE t::text LIKE '%123456789%' OR t::text LIKE '%123-45-6789%' \
             OR encode(convert_to(t::text, 'UTF8'), 'escape') LIKE '%123456789%'"
        )))
        .fetch_one(&mut owner)
        .await
        .unwrap();
        assert_eq!(found, 0, "{table} holds the SSN in the clear");
    }
    let sealed: Vec<u8> =
        sqlx::query_scalar("SELECT ssn_sealed FROM clients.clients WHERE tenant_id = $1")
            .bind(tenant.as_uuid())
            .fetch_one(&mut owner)
            .await
            .unwrap();
    assert!(
        !sealed.windows(9).any(|w| w == b"123456789"),
        "the sealed column holds plaintext"
    );

    let mut clients = node.clients.clone();
    let get = |view: pb::SsnView| pb::GetClientRequest {
        id: created.id.clone(),
        ssn_view: view as i32,
    };
    let masked = clients
        .get_client(authed(&worker, get(pb::SsnView::Unspecified)))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(masked.ssn, "***-**-6789");
    let status = clients
        .get_client(authed(&worker, get(pb::SsnView::Full)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let reader =
        env.token_with_permissions(tenant, &[Role::Caseworker], &[], &["clients.read_ssn"]);
    let whole = clients
        .get_client(authed(&reader, get(pb::SsnView::Full)))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(whole.ssn, "123-45-6789");
    let reads: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.audit_log WHERE tenant_id = $1 AND action = 'clients.client.read_ssn'",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(
        reads, 1,
        "the whole read is audited, the masked ones are not"
    );

    // The event carries the facts, masked.
    let (envelope, _) = events
        .expect("clients.client_created.v1", Duration::from_secs(10))
        .await;
    let payload: caseway_api::events::v1::ClientChanged =
        prost::Message::decode(&envelope.payload[..]).unwrap();
    let event_client = payload.client.unwrap();
    assert_eq!(event_client.ssn, "***-**-6789");
    assert_eq!(event_client.last_name, "Lopez");
    assert_eq!(event_client.birth_date, Some(date(1980, 2, 29)));
}

#[tokio::test]
async fn search_tolerates_typos_and_matches_ssn_and_birth_date() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (_, worker) = clients_tenant(&env, &node, "search").await;
    create(
        &node,
        &worker,
        client("John", "Smith", "123-45-6789", (1975, 6, 1)),
    )
    .await
    .unwrap();
    create(
        &node,
        &worker,
        client("Joan", "Smythe", "234-56-7890", (1990, 1, 15)),
    )
    .await
    .unwrap();
    create(
        &node,
        &worker,
        client("Ahmed", "Hassan", "345-67-6789", (1975, 6, 1)),
    )
    .await
    .unwrap();
    let clients = node.clients.clone();
    let search = |request: pb::SearchClientsRequest| {
        let token = worker.clone();
        let mut clients = clients.clone();
        async move {
            clients
                .search_clients(authed(&token, request))
                .await
                .map(|r| {
                    r.into_inner()
                        .matches
                        .into_iter()
                        .map(|m| m.client.unwrap().last_name)
                        .collect::<Vec<_>>()
                })
        }
    };
    let by_name = search(pb::SearchClientsRequest {
        name: "Jon Smith".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        by_name.first().map(String::as_str),
        Some("Smith"),
        "{by_name:?}"
    );
    assert!(!by_name.contains(&"Hassan".to_string()));
    let by_last4 = search(pb::SearchClientsRequest {
        ssn: "6789".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_last4.len(), 2);
    // The whole number takes the permission that shows it (see the SSN search test).
    let status = search(pb::SearchClientsRequest {
        ssn: "123456789".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let by_birth = search(pb::SearchClientsRequest {
        birth_date: Some(date(1975, 6, 1)),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_birth.len(), 2);
    let combined = search(pb::SearchClientsRequest {
        name: "hasan".into(),
        birth_date: Some(date(1975, 6, 1)),
        ssn: "6789".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(combined, ["Hassan"]);
    let status = search(pb::SearchClientsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = search(pb::SearchClientsRequest {
        ssn: "12345".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["ssn"]);

    // Pages: one match a page, every match once.
    let mut seen = every_page_ids(
        &node,
        &worker,
        pb::SearchClientsRequest {
            ssn: "6789".into(),
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    seen.dedup();
    assert_eq!(seen.len(), 2);
}

/// Names in a search: slips of one letter (a swap included, which trigrams miss in short names),
/// either order, "last, first", preferred names, names of two words, renames and deletions.
#[tokio::test]
async fn name_search_reads_slips_orders_and_renames() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "names").await;
    let mut roberto = client("Roberto", "Garcia Lopez", "", (1970, 3, 3));
    roberto.preferred_name = "Bob".into();
    let roberto = create(&node, &worker, roberto).await.unwrap();
    let john = create(&node, &worker, client("John", "Smith", "", (1975, 6, 1)))
        .await
        .unwrap();
    let mut smiths = Vec::new();
    for first in ["Anna", "Beth", "Carl", "Dora", "Emil"] {
        smiths.push(
            create(&node, &worker, client(first, "Smith", "", (1980, 1, 1)))
                .await
                .unwrap()
                .id,
        );
    }
    create(&node, &worker, client("Ahmed", "Hassan", "", (1975, 6, 1)))
        .await
        .unwrap();
    let mut clients = node.clients.clone();
    let searcher = clients.clone();
    let search = |name: &str| {
        let token = worker.clone();
        let mut clients = searcher.clone();
        let name = name.to_string();
        async move {
            clients
                .search_clients(authed(
                    &token,
                    pb::SearchClientsRequest {
                        name,
                        ..Default::default()
                    },
                ))
                .await
                .unwrap()
                .into_inner()
                .matches
                .into_iter()
                .map(|m| {
                    let c = m.client.unwrap();
                    (format!("{} {}", c.first_name, c.last_name), m.score)
                })
                .collect::<Vec<_>>()
        }
    };
    for typed in [
        "John Smith",
        "Jhon Smith",
        "John Smtih",
        "Jon Smith",
        "Johnn Smith",
        "smith john",
        "Smith, John",
        "JOHN   SMITH",
    ] {
        let found = search(typed).await;
        assert_eq!(
            found.first().map(|(n, _)| n.as_str()),
            Some("John Smith"),
            "{typed}: {found:?}"
        );
        assert!(
            !found.iter().any(|(n, _)| n.contains("Hassan")),
            "{typed}: {found:?}"
        );
    }
    let exact = search("John Smith").await;
    let slip = search("Jhon Smith").await;
    assert_eq!(exact[0].1, 1.0);
    assert!(slip[0].1 < 1.0, "a slip scores below the exact name");

    // One word finds it as a last, first or preferred name.
    assert_eq!(search("smith").await.len(), 6);
    assert_eq!(search("smiht").await.len(), 6);
    let bob = search("Bob Garcia Lopez").await;
    assert_eq!(bob[0].0, "Roberto Garcia Lopez", "{bob:?}");
    assert_eq!(
        search("Roberto Garcia Lopez").await[0].0,
        "Roberto Garcia Lopez"
    );
    assert_eq!(search("garcia-lopez").await[0].0, "Roberto Garcia Lopez");
    assert!(search("Zebulon Quartermain").await.is_empty());

    // Pages over equal scores: every Smith once.
    let mut seen = every_page_ids(
        &node,
        &worker,
        pb::SearchClientsRequest {
            name: "Smith".into(),
            page_size: 4,
            ..Default::default()
        },
    )
    .await;
    seen.sort();
    let mut expected = smiths.clone();
    expected.push(john.id.clone());
    expected.sort();
    assert_eq!(seen, expected);

    // A rename is found by the new name only; a deleted client is not found.
    let mut renamed = roberto.clone();
    renamed.last_name = "Okafor".into();
    clients
        .update_client(authed(
            &worker,
            pb::UpdateClientRequest {
                client: Some(renamed),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["last_name".into()],
                }),
            },
        ))
        .await
        .unwrap();
    assert_eq!(search("Roberto Okafor").await[0].0, "Roberto Okafor");
    assert!(search("Roberto Garcia Lopez").await.is_empty());
    let supervisor = env.token(tenant, &[Role::Supervisor], &[]);
    clients
        .delete_client(authed(
            &supervisor,
            pb::DeleteClientRequest {
                id: john.id.clone(),
                etag: String::new(),
                reason: "duplicate record".into(),
            },
        ))
        .await
        .unwrap();
    assert!(
        !search("John Smith")
            .await
            .iter()
            .any(|(n, _)| n == "John Smith")
    );
}

/// A one-word search reads each matched term's clients a page at a time: pages of any size
/// give the order of one long page, each client once, at the score of its best reading, also
/// when one name matched a lesser term and another the best (a Smith whose other name is a
/// Smyth is found through "smith" at 1.0, not at the slip's score), and with more clients of
/// each term than a page holds.
#[tokio::test]
async fn name_search_pages_across_terms_give_each_client_once_at_its_best_score() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (_, worker) = clients_tenant(&env, &node, "name-pages").await;
    let mut expected = std::collections::HashMap::new();
    for (first, last, best) in [
        ("Anna", "Smith", 1.0),
        ("Beth", "Smith", 1.0),
        ("Carl", "Smith", 1.0),
        ("Smyth", "Smith", 1.0),
        ("Smith", "Smyth", 1.0),
        ("Dora", "Smyth", 0.8),
        ("Emil", "Smyth", 0.8),
        ("Smyth", "Jones", 0.8),
        ("Smyth", "Smyth", 0.8),
        ("Fred", "Smiths", 0.0),
        ("Gina", "Jones", -1.0),
    ] {
        let id = create(&node, &worker, client(first, last, "", (1980, 1, 1)))
            .await
            .unwrap()
            .id;
        expected.insert(id, best);
    }
    let pages_of = async |size: i32| -> Vec<(String, f64)> {
        let request = pb::SearchClientsRequest {
            name: "smith".into(),
            page_size: size,
            ..Default::default()
        };
        every_page(&node, &worker, request)
            .await
            .into_iter()
            .map(|m| (m.client.unwrap().id, m.score))
            .collect()
    };
    let whole = pages_of(50).await;
    // Best first, ties by id (latest first), each client once.
    for pair in whole.windows(2) {
        let ((a, a_score), (b, b_score)) = (&pair[0], &pair[1]);
        assert!(
            a_score > b_score || (a_score == b_score && a > b),
            "{whole:?}"
        );
    }
    for (id, score) in &whole {
        let best = expected[id];
        assert!(best >= 0.0, "{id} does not bear the name: {whole:?}");
        if best > 0.0 {
            assert!(
                (score - best).abs() < 1e-9,
                "{id} scored {score}, not {best}"
            );
        }
    }
    let found = |least: f64| expected.values().filter(|b| **b >= least).count();
    assert!(whole.len() >= found(0.8), "{whole:?}");
    let distinct: std::collections::HashSet<_> = whole.iter().map(|(id, _)| id).collect();
    assert_eq!(whole.len(), distinct.len(), "{whole:?}");
    for size in [1, 2, 3] {
        assert_eq!(pages_of(size).await, whole, "pages of {size}");
    }
}

/// The similar terms a name search starts from, found through the vocabulary's trigram index,
/// are those counting every term's shared trigrams finds: the same ten best of each phrase (a
/// name, a slip of one, a part of one, a coined name), at exactly the same scores.
#[tokio::test]
async fn similar_name_terms_are_those_counting_shared_trigrams_finds() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "name-terms").await;
    let mut rng = rand::rng();
    let mut names = Vec::new();
    for _ in 0..80 {
        let (first, last) = (
            population::first_name(&mut rng),
            population::last_name(&mut rng),
        );
        create(&node, &worker, client(&first, &last, "", (1980, 1, 1)))
            .await
            .unwrap();
        names.push(first);
        names.push(last);
    }
    let mut phrases: Vec<String> = names.iter().take(20).cloned().collect();
    phrases.extend(
        names
            .iter()
            .skip(20)
            .filter(|n| n.len() >= 4)
            .take(20)
            .map(|n| population::typo(n, &mut rng)),
    );
    phrases.extend(["smi", "jo", "kalo", "sten", "garcia lopez"].map(String::from));

    let mut app = sqlx::PgConnection::connect(&env.db.app_url).await.unwrap();
    let mut tx = app.begin().await.unwrap();
    sqlx::query("SELECT set_config('app.tenant_id', $1::text, true)")
        .bind(tenant.as_uuid())
        .execute(&mut *tx)
        .await
        .unwrap();
    let found: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT phrase, term, score FROM clients.similar_name_terms($1, 10) ORDER BY 1, 3 DESC, 2",
    )
    .bind(&phrases)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    let counted: Vec<(String, String, f64)> = sqlx::query_as(
        "SELECT p, term, score FROM ( \
             SELECT p, term, score, \
                    row_number() OVER (PARTITION BY p ORDER BY score DESC, term) AS rank \
               FROM (SELECT q.p, t.term, c.shared / (q.n + c.m - c.shared) AS score \
                       FROM (SELECT DISTINCT p, show_trgm(p) AS grams, \
                                    cardinality(show_trgm(p))::float8 AS n \
                               FROM unnest($1::text[]) AS p) AS q \
                      CROSS JOIN clients.name_terms t \
                      CROSS JOIN LATERAL ( \
                          SELECT cardinality(ARRAY(SELECT unnest(q.grams) \
                                                   INTERSECT SELECT unnest(show_trgm(t.term)) \
                                                  ))::float8 AS shared, \
                                 cardinality(show_trgm(t.term))::float8 AS m) AS c) AS s \
              WHERE score >= 0.3) AS ranked \
          WHERE rank <= 10 ORDER BY 1, 3 DESC, 2",
    )
    .bind(&phrases)
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    assert!(
        counted.len() > phrases.len(),
        "the phrases should find terms: {counted:?}"
    );
    assert_eq!(found, counted);
}

#[tokio::test]
async fn invalid_clients_are_refused_naming_the_field_and_nothing_is_written() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "invalid").await;
    let mut bad = client("", "", "12-34", (2999, 1, 1));
    bad.organization_id = Uuid::now_v7().to_string();
    bad.veteran_status = 5;
    bad.contact = Some(pb::Contact {
        email: "not-an-email".into(),
        ..Default::default()
    });
    let status = create(&node, &worker, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violated_fields(&status);
    fields.sort();
    fields.dedup();
    assert_eq!(
        fields,
        [
            "client.birth_date",
            "client.contact.email",
            "client.last_name",
            "client.organization_id",
            "client.ssn",
            "client.veteran_status"
        ]
    );
    let status = create(
        &node,
        &worker,
        client("Ana", "Ruiz", "666-12-3456", (1980, 1, 1)),
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["client.ssn"]);

    // Demographics take the tenant's codes: an unknown category, a code not on the list, a
    // retired code and another tenant's code are each named.
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let retired = code_value(&node, &admin, catalog_pb::CodeList::Gender, "OLD").await;
    node.catalog
        .clone()
        .retire_code_value(authed(
            &admin,
            catalog_pb::RetireCodeValueRequest {
                id: retired,
                etag: String::new(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let other = node.create_tenant(&env, "invalid-other").await;
    let other_admin = env.token(other, &[Role::TenantAdmin], &[]);
    code_value(&node, &other_admin, catalog_pb::CodeList::Ethnicity, "1").await;
    let mut bad = client("Ana", "Ruiz", "", (1980, 1, 1));
    bad.demographics = [
        ("race", "5"),
        ("religion", "X"),
        ("race", "9"),
        ("gender", "OLD"),
        ("ethnicity", "1"),
    ]
    .iter()
    .map(|(category, code)| pb::Demographic {
        category: category.to_string(),
        code: code.to_string(),
    })
    .collect();
    let status = create(&node, &worker, bad).await.unwrap_err();
    assert_eq!(
        violated_fields(&status),
        [
            "client.demographics[1].category",
            "client.demographics[2].code",
            "client.demographics[3].code",
            "client.demographics[4].code"
        ]
    );
    let mut owner = env.db.owner().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM clients.clients WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(rows, 0);
}

#[tokio::test]
async fn updates_are_versioned_and_history_names_what_changed() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "history").await;
    let created = create(
        &node,
        &worker,
        client("Maria", "Lopez", "123-45-6789", (1980, 3, 1)),
    )
    .await
    .unwrap();
    let mut clients = node.clients.clone();
    let updated = clients
        .update_client(authed(
            &worker,
            pb::UpdateClientRequest {
                client: Some(pb::Client {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    last_name: "Lopez-Garcia".into(),
                    ssn: "123-45-6780".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["last_name".into(), "ssn".into()],
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(updated.last_name, "Lopez-Garcia");
    assert_eq!(updated.ssn, "***-**-6780");
    assert_eq!(updated.first_name, "Maria", "unmasked fields stay");
    let status = clients
        .update_client(authed(
            &worker,
            pb::UpdateClientRequest {
                client: Some(pb::Client {
                    id: created.id.clone(),
                    etag: created.etag.clone(),
                    last_name: "Stale".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["last_name".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let status = clients
        .update_client(authed(
            &worker,
            pb::UpdateClientRequest {
                client: Some(pb::Client {
                    id: created.id.clone(),
                    demographics: vec![pb::Demographic {
                        category: "race".into(),
                        code: "9".into(),
                    }],
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["demographics".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["client.demographics[0].code"]);
    let history = clients
        .list_client_history(authed(
            &worker,
            pb::ListClientHistoryRequest {
                client_id: created.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entries: Vec<(String, Vec<String>)> = history
        .entries
        .into_iter()
        .map(|e| (e.action, e.changed_fields))
        .collect();
    assert_eq!(
        entries,
        vec![
            (
                "clients.client.update".to_string(),
                vec!["last_name".to_string(), "ssn".to_string()]
            ),
            ("clients.client.create".to_string(), vec![]),
        ]
    );
    let reader =
        env.token_with_permissions(tenant, &[Role::Caseworker], &[], &["clients.read_ssn"]);
    let whole = clients
        .get_client(authed(
            &reader,
            pb::GetClientRequest {
                id: created.id.clone(),
                ssn_view: pb::SsnView::Full as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .client
        .unwrap();
    assert_eq!(whole.ssn, "123-45-6780", "the new number was sealed");

    // Deleting takes a supervisor and a reason.
    let delete = |reason: &str| pb::DeleteClientRequest {
        id: created.id.clone(),
        etag: String::new(),
        reason: reason.into(),
    };
    assert_eq!(
        clients
            .delete_client(authed(&worker, delete("duplicate")))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let supervisor = env.token(tenant, &[Role::Supervisor], &[]);
    assert_eq!(
        violated_fields(
            &clients
                .delete_client(authed(&supervisor, delete("")))
                .await
                .unwrap_err()
        ),
        vec!["reason"]
    );
    clients
        .delete_client(authed(&supervisor, delete("duplicate record")))
        .await
        .unwrap();
    let status = clients
        .get_client(authed(
            &worker,
            pb::GetClientRequest {
                id: created.id.clone(),
                ssn_view: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn same_request_id_creates_one_client() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "retry").await;
    let request = pb::CreateClientRequest {
        request_id: "intake-1".into(),
        client: Some(client("Maria", "Lopez", "123-45-6789", (1980, 3, 1))),
    };
    let mut clients = node.clients.clone();
    let first = clients
        .create_client(authed(&worker, request.clone()))
        .await
        .unwrap()
        .into_inner();
    let second = clients
        .create_client(authed(&worker, request))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, second);
    let mut owner = env.db.owner().await;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM clients.clients WHERE tenant_id = $1")
        .bind(tenant.as_uuid())
        .fetch_one(&mut owner)
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

async fn program(node: &TestNode, admin: &str, code: &str) -> String {
    let program = caseway_api::catalog::v1::Program {
        code: code.into(),
        name: format!("Program {code}"),
        start_date: Some(date(2020, 1, 1)),
        ..Default::default()
    };
    node.fixtures(admin).program(program).await.unwrap()
}

fn start(client_id: &str, program_id: &str, entry: (i32, i32, i32)) -> pb::StartEnrollmentRequest {
    pb::StartEnrollmentRequest {
        request_id: String::new(),
        enrollment: Some(pb::Enrollment {
            client_id: client_id.into(),
            program_id: program_id.into(),
            entry_date: Some(date(entry.0, entry.1, entry.2)),
            ..Default::default()
        }),
    }
}

#[tokio::test]
async fn enrollments_open_once_per_program_and_exit_after_entry() {
    use tonic_types::StatusExt;
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("clients.enrollment_started.v1").await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "enroll").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let prevention = program(&node, &admin, "HP").await;
    let maria = create(&node, &worker, client("Maria", "Lopez", "", (1980, 3, 1)))
        .await
        .unwrap();
    let mut clients = node.clients.clone();

    let enrollment = clients
        .start_enrollment(authed(&worker, start(&maria.id, &prevention, (2026, 1, 5))))
        .await
        .unwrap()
        .into_inner()
        .enrollment
        .unwrap();
    let (envelope, _) = events
        .expect("clients.enrollment_started.v1", Duration::from_secs(10))
        .await;
    assert_eq!(envelope.subject, enrollment.id);

    let status = clients
        .start_enrollment(authed(&worker, start(&maria.id, &prevention, (2026, 2, 1))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let rule = status
        .get_details_precondition_failure()
        .expect("precondition details");
    assert_eq!(rule.violations[0].r#type, "one_open_enrollment_per_program");
    assert_eq!(caseway_integration_tests::reason(&status), "RULE_VIOLATED");
    assert_eq!(
        status.get_details_error_info().unwrap().metadata["rule"],
        "one_open_enrollment_per_program"
    );

    let exit = |day: (i32, i32, i32), etag: &str| pb::ExitEnrollmentRequest {
        id: enrollment.id.clone(),
        etag: etag.into(),
        exit_date: Some(date(day.0, day.1, day.2)),
        exit_destination: "HOUSED".into(),
        ..Default::default()
    };
    let status = clients
        .exit_enrollment(authed(&worker, exit((2026, 1, 4), "")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["exit_date"]);
    let status = clients
        .exit_enrollment(authed(&worker, exit((2999, 1, 1), "")))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["exit_date"]);
    let exited = clients
        .exit_enrollment(authed(&worker, exit((2026, 3, 1), &enrollment.etag)))
        .await
        .unwrap()
        .into_inner()
        .enrollment
        .unwrap();
    assert_eq!(exited.exit_date, Some(date(2026, 3, 1)));
    let status = clients
        .exit_enrollment(authed(&worker, exit((2026, 3, 2), "")))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "an exited enrollment cannot exit again"
    );

    // Once exited, a new episode may start.
    clients
        .start_enrollment(authed(&worker, start(&maria.id, &prevention, (2026, 4, 1))))
        .await
        .unwrap();
    let listed = clients
        .list_enrollments(authed(
            &worker,
            pb::ListEnrollmentsRequest {
                client_id: maria.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let entries: Vec<_> = listed
        .enrollments
        .iter()
        .map(|e| e.entry_date.unwrap().month)
        .collect();
    assert_eq!(entries, [4, 1], "latest entry first");

    // Bad starts name the field.
    let status = clients
        .start_enrollment(authed(
            &worker,
            start(&maria.id, &Uuid::now_v7().to_string(), (2026, 1, 5)),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["enrollment.program_id"]);
    let status = clients
        .start_enrollment(authed(&worker, start(&maria.id, &prevention, (2999, 1, 1))))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["enrollment.entry_date"]);
    let status = clients
        .start_enrollment(authed(
            &worker,
            start(&Uuid::now_v7().to_string(), &prevention, (2026, 1, 5)),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["enrollment.client_id"]);

    // Another tenant's program is unknown here, and another tenant cannot see these enrollments.
    let (other, other_worker) = clients_tenant(&env, &node, "enroll-b").await;
    let other_admin = env.token(other, &[Role::TenantAdmin], &[]);
    let theirs = program(&node, &other_admin, "HP").await;
    let status = clients
        .start_enrollment(authed(&worker, start(&maria.id, &theirs, (2026, 1, 5))))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["enrollment.program_id"]);
    let not_found = |status: tonic::Status| assert_eq!(status.code(), Code::NotFound, "{status:?}");
    not_found(
        clients
            .get_enrollment(authed(
                &other_worker,
                pb::GetEnrollmentRequest {
                    id: enrollment.id.clone(),
                },
            ))
            .await
            .unwrap_err(),
    );
    not_found(
        clients
            .exit_enrollment(authed(&other_worker, exit((2026, 3, 1), "")))
            .await
            .unwrap_err(),
    );
    not_found(
        clients
            .list_enrollments(authed(
                &other_worker,
                pb::ListEnrollmentsRequest {
                    client_id: maria.id.clone(),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err(),
    );
    let status = clients
        .start_enrollment(authed(
            &other_worker,
            start(&maria.id, &theirs, (2026, 1, 5)),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        violated_fields(&status),
        vec!["enrollment.client_id"],
        "tenant A's client is unknown to B"
    );
}

/// Each kind of change to a client reaches RabbitMQ as its own event, after the commit, with
/// the client's tenant and the resource it is about.
#[tokio::test]
async fn every_kind_of_client_change_is_published() {
    let env = TestEnv::new().await;
    let mut events = env.bus.listen("clients.#").await;
    let node = env.start(&caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "published").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let supervisor = env.token(tenant, &[Role::Supervisor], &[]);
    let prevention = program(&node, &admin, "HP").await;
    let maria = create(&node, &worker, client("Maria", "Lopez", "", (1980, 3, 1)))
        .await
        .unwrap();
    let mut clients = node.clients.clone();
    clients
        .update_client(authed(
            &worker,
            pb::UpdateClientRequest {
                client: Some(pb::Client {
                    id: maria.id.clone(),
                    preferred_name: "Mari".into(),
                    ..Default::default()
                }),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["preferred_name".into()],
                }),
            },
        ))
        .await
        .unwrap();
    let enrollment = clients
        .start_enrollment(authed(&worker, start(&maria.id, &prevention, (2026, 1, 5))))
        .await
        .unwrap()
        .into_inner()
        .enrollment
        .unwrap();
    clients
        .exit_enrollment(authed(
            &worker,
            pb::ExitEnrollmentRequest {
                id: enrollment.id.clone(),
                etag: String::new(),
                exit_date: Some(date(2026, 2, 1)),
                exit_destination: "HOUSED".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    clients
        .delete_client(authed(
            &supervisor,
            pb::DeleteClientRequest {
                id: maria.id.clone(),
                etag: String::new(),
                reason: "duplicate record".into(),
            },
        ))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 5 {
        let (envelope, _) = events
            .next(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("only {seen:?} arrived"));
        assert_eq!(envelope.tenant_id, tenant);
        if envelope.event_type == "clients.client_updated.v1" {
            use prost::Message;
            let change =
                caseway_api::events::v1::ClientChanged::decode(envelope.payload.as_slice())
                    .unwrap();
            assert_eq!(change.changed_fields, ["preferred_name"]);
            assert_eq!(change.client.unwrap().preferred_name, "Mari");
        }
        seen.push((envelope.event_type, envelope.subject));
    }
    seen.sort();
    let mut expected = vec![
        ("clients.client_created.v1".to_string(), maria.id.clone()),
        ("clients.client_deleted.v1".to_string(), maria.id.clone()),
        ("clients.client_updated.v1".to_string(), maria.id.clone()),
        (
            "clients.enrollment_exited.v1".to_string(),
            enrollment.id.clone(),
        ),
        (
            "clients.enrollment_started.v1".to_string(),
            enrollment.id.clone(),
        ),
    ];
    expected.sort();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn whole_ssn_search_takes_the_permission_is_audited_and_cannot_guess_numbers() {
    use tonic_types::StatusExt;
    let env = TestEnv::new().await;
    let mut config = env.config();
    config.ssn_search_misses_per_hour = 3;
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let (tenant, worker) = clients_tenant(&env, &node, "ssn-search").await;
    let smith = create(
        &node,
        &worker,
        client("John", "Smith", "123-45-6789", (1975, 6, 1)),
    )
    .await
    .unwrap();
    let reader = |user: &str| {
        env.issuer
            .issue_with_permissions(
                user,
                Some(tenant),
                &[Role::Caseworker],
                &[],
                &["clients.read_ssn"],
                chrono::Duration::hours(1),
            )
            .unwrap()
    };
    let (ana, bo) = (reader("ana"), reader("bo"));
    let search = |token: &str, ssn: &str| {
        let mut clients = node.clients.clone();
        let request = authed(
            token,
            pb::SearchClientsRequest {
                ssn: ssn.into(),
                ..Default::default()
            },
        );
        async move {
            clients
                .search_clients(request)
                .await
                .map(|r| r.into_inner().matches.len())
        }
    };
    // Without the permission, the whole number is no way in; the last four still are.
    let status = search(&worker, "123-45-6789").await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(search(&worker, "6789").await.unwrap(), 1);
    // With it, a hit, then misses up to the limit, then no more searches for that user.
    assert_eq!(search(&ana, "123456789").await.unwrap(), 1);
    for guess in ["111223333", "111223334", "111223335"] {
        assert_eq!(search(&ana, guess).await.unwrap(), 0);
    }
    let status = search(&ana, "123456789").await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry = status.get_details_retry_info().expect("RetryInfo");
    assert!(retry.retry_delay.is_some_and(|d| d.as_secs() <= 3600));
    // Another user has a budget of their own.
    assert_eq!(search(&bo, "123456789").await.unwrap(), 1);
    // Every whole-SSN search is audited, misses too; the client found sees it in its history.
    let mut owner = env.db.owner().await;
    let searches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.audit_log WHERE tenant_id = $1 AND action = 'clients.ssn_search'",
    )
    .bind(tenant.as_uuid())
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(searches, 5, "two hits and three misses");
    let history = node
        .clients
        .clone()
        .list_client_history(authed(
            &worker,
            pb::ListClientHistoryRequest {
                client_id: smith.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let found_by: Vec<_> = history
        .entries
        .iter()
        .filter(|e| e.action == "clients.client.ssn_search")
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(found_by, ["bo", "ana"]);
    node.shutdown().await;

    // With Redis out of reach the limit cannot be counted, and whole-SSN search is refused.
    let mut config = env.config();
    config.redis_url = "redis://127.0.0.1:1".into();
    let node = env.start_with(config, &caseway::Target::ALL).await;
    let mut clients = node.clients.clone();
    let status = clients
        .search_clients(authed(
            &bo,
            pb::SearchClientsRequest {
                ssn: "123456789".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    let by_name = clients
        .search_clients(authed(
            &bo,
            pb::SearchClientsRequest {
                name: "smith".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert_eq!(
        by_name.into_inner().matches.len(),
        1,
        "the rest still serves"
    );
    node.shutdown().await;
}
