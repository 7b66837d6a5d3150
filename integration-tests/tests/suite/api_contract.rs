//! The contract a gateway relies on: every failure carries a `google.rpc.ErrorInfo` whose
//! reason (`caseway.common.v1.ErrorReason`) tells one kind of failure from another, beside the
//! details its code brings.

use cloudevents::AttributesReader;
use cloudevents::event::SpecVersion;
use cloudevents::message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue};
use tonic::Code;
use tonic_types::StatusExt;

use caseway::Target;
use caseway_api::catalog::v1 as pb;
use caseway_api::clients::v1 as clients_pb;
use caseway_api::tenancy::v1 as tenancy_pb;
use caseway_integration_tests::{TestEnv, authed, call_raw, reason, violated_fields};
use caseway_platform::auth::Role;
use caseway_test_support::eventually;

fn service(code: &str, name: &str) -> pb::Service {
    pb::Service {
        code: code.into(),
        name: name.into(),
        unit_of_measure: pb::UnitOfMeasure::Count as i32,
        default_unit_value: "0".into(),
        delivery_mode: pb::DeliveryMode::Indirect as i32,
        ..Default::default()
    }
}

fn create(request_id: &str, service: pb::Service) -> pb::CreateServiceRequest {
    pb::CreateServiceRequest {
        request_id: request_id.into(),
        service: Some(service),
    }
}

#[tokio::test]
async fn each_kind_of_failure_has_its_own_reason() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "contract").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let worker = env.token(tenant, &[Role::Caseworker], &[]);
    let mut catalog = node.catalog.clone();

    // Bad fields, named in BadRequest.
    let status = catalog
        .create_service(authed(&admin, create("", service("", "No code"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "FIELD_INVALID");
    assert_eq!(violated_fields(&status), ["service.code"]);

    // Bytes that are not a request at all are the caller's fault too, not INTERNAL.
    let status = call_raw(
        &node.channel,
        "/caseway.catalog.v1.CatalogService/ListServices",
        &worker,
        vec![0xff, 0xff, 0xff],
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(reason(&status), "FIELD_INVALID");

    // A request_id reused for another request, told apart from bad fields.
    let created = catalog
        .create_service(authed(
            &admin,
            create("first", service("CNS", "Counseling")),
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let status = catalog
        .create_service(authed(&admin, create("first", service("OTHER", "Other"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(reason(&status), "REQUEST_ID_REUSED");
    assert_eq!(violated_fields(&status), ["request_id"]);

    // The same code again.
    let status = catalog
        .create_service(authed(
            &admin,
            create("", service("CNS", "Counseling again")),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(reason(&status), "ALREADY_EXISTS");

    // Nothing by that id, with the resource named.
    let status = catalog
        .get_service(authed(
            &worker,
            pb::GetServiceRequest {
                id: uuid::Uuid::now_v7().to_string(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(reason(&status), "RESOURCE_NOT_FOUND");
    assert!(
        status
            .get_details_error_info()
            .unwrap()
            .metadata
            .contains_key("resource")
    );

    // A stale etag.
    let update = |etag: &str| pb::UpdateServiceRequest {
        service: Some(pb::Service {
            id: created.id.clone(),
            name: "Counseling, individual".into(),
            etag: etag.into(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into()],
        }),
    };
    catalog
        .update_service(authed(&admin, update(&created.etag)))
        .await
        .unwrap();
    let status = catalog
        .update_service(authed(&admin, update(&created.etag)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(reason(&status), "ETAG_MISMATCH");

    // No token, a token that is not one, a role the access table does not allow, a permission
    // the token lacks.
    let status = catalog
        .list_services(pb::ListServicesRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_MISSING");
    let status = catalog
        .list_services(authed("not.a.token", pb::ListServicesRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(reason(&status), "TOKEN_INVALID");
    let status = catalog
        .create_service(authed(&worker, create("", service("NOPE", "Nope"))))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "ROLE_NOT_PERMITTED");
    let status = node
        .clients
        .clone()
        .search_clients(authed(
            &worker,
            clients_pb::SearchClientsRequest {
                ssn: "123-45-6789".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "PERMISSION_MISSING");

    // A suspended tenant.
    let root = env.platform_admin_token();
    node.tenancy
        .clone()
        .suspend_tenant(authed(
            &root,
            tenancy_pb::SuspendTenantRequest {
                id: tenant.to_string(),
                reason: "contract test".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    let status = eventually(
        "the suspension reaching the catalog",
        std::time::Duration::from_secs(5),
        || async {
            let request = authed(&worker, pb::ListServicesRequest::default());
            match catalog.clone().list_services(request).await {
                Err(status) => Ok(status),
                Ok(_) => Err("still served"),
            }
        },
    )
    .await;
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(reason(&status), "TENANT_SUSPENDED");
    node.shutdown().await;
}

#[tokio::test]
async fn a_peer_out_of_reach_is_dependency_unavailable() {
    let env = TestEnv::new().await;
    let tenancy_node = env.start(&[Target::Tenancy]).await;
    let tenant = tenancy_node.create_tenant(&env, "peerless").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let org = tenancy_node.create_organization(&admin, "NORTH").await;
    // A port nothing listens on.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut config = env.config();
    config.tenancy_endpoint = Some(format!("http://{unused}"));
    let catalog_node = env.start_with(config, &[Target::Catalog]).await;
    let mut restricted = service("NTH", "North only");
    restricted.organization_ids = vec![org.to_string()];
    let status = catalog_node
        .catalog
        .clone()
        .create_service(authed(&admin, create("", restricted)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert_eq!(reason(&status), "DEPENDENCY_UNAVAILABLE");
    catalog_node.shutdown().await;
    tenancy_node.shutdown().await;
}

/// An AMQP message as a CloudEvents consumer reads it under the AMQP protocol binding, binary
/// mode: every attribute an application property prefixed `cloudEvents_`, the data's type the
/// message's content-type. Nothing of Caseway's own code reads it.
struct AmqpMessage<'a>(&'a lapin::message::Delivery);

impl BinaryDeserializer for AmqpMessage<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(
        self,
        mut visitor: V,
    ) -> cloudevents::message::Result<R> {
        use lapin::types::AMQPValue;
        let headers = self.0.properties.headers().clone().unwrap_or_default();
        let mut attributes = std::collections::BTreeMap::new();
        for (name, value) in headers.inner() {
            let Some(name) = name.as_str().strip_prefix("cloudEvents_") else {
                continue;
            };
            let value = match value {
                AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                AMQPValue::ShortString(s) => s.to_string(),
                other => format!("{other:?}"),
            };
            attributes.insert(name.to_string(), value);
        }
        let spec = SpecVersion::try_from(
            attributes
                .remove("specversion")
                .unwrap_or_default()
                .as_str(),
        )?;
        let names = spec.attribute_names();
        visitor = visitor.set_spec_version(spec)?;
        if let Some(content_type) = self.0.properties.content_type() {
            visitor = visitor.set_attribute(
                "datacontenttype",
                MessageAttributeValue::String(content_type.to_string()),
            )?;
        }
        for (name, value) in attributes {
            let value = MessageAttributeValue::String(value);
            visitor = if names.contains(&name.as_str()) {
                visitor.set_attribute(&name, value)?
            } else {
                visitor.set_extension(&name, value)?
            };
        }
        visitor.end_with_data(self.0.data.clone())
    }
}

#[tokio::test]
async fn a_published_event_is_a_cloudevent_any_sdk_reads() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "cloudevents").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut catalog = node.catalog.clone();
    let mut created = None;
    let delivery = env
        .bus
        .next_delivery(
            "catalog.service_created.v1",
            std::time::Duration::from_secs(10),
            async {
                let reply = catalog
                    .create_service(authed(&admin, create("", service("CE", "Events"))))
                    .await
                    .unwrap()
                    .into_inner();
                created = reply.service;
            },
        )
        .await
        .expect("the event is published");
    let created = created.unwrap();

    let event = AmqpMessage(&delivery).into_event().expect("a CloudEvent");
    assert_eq!(event.specversion(), SpecVersion::V10);
    assert_eq!(event.ty(), "catalog.service_created.v1");
    assert_eq!(event.source().to_string(), "caseway/catalog");
    assert_eq!(event.subject(), Some(created.id.as_str()));
    assert!(event.time().is_some());
    assert_eq!(event.datacontenttype(), Some("application/protobuf"));
    assert_eq!(
        event.extension("tenantid").map(|v| v.to_string()),
        Some(tenant.to_string())
    );
    // The schema names the message; a consumer decodes the data by that name from the
    // descriptors the server publishes (reflection), not from Caseway's generated code.
    let schema = event.dataschema().expect("a dataschema").to_string();
    let message = schema
        .strip_prefix("urn:caseway:proto:")
        .expect("a URN naming a protobuf message");
    assert_eq!(message, "caseway.events.v1.ServiceChanged");
    let pool = prost_reflect::DescriptorPool::decode(caseway_api::FILE_DESCRIPTOR_SET).unwrap();
    let descriptor = pool.get_message_by_name(message).expect("a known message");
    let Some(cloudevents::Data::Binary(bytes)) = event.data() else {
        panic!("binary data, got {:?}", event.data());
    };
    let data = prost_reflect::DynamicMessage::decode(descriptor, &bytes[..]).unwrap();
    let service = data.get_field_by_name("service").unwrap();
    let id = service
        .as_message()
        .and_then(|s| s.get_field_by_name("id"))
        .and_then(|id| id.as_str().map(str::to_string));
    assert_eq!(id.as_deref(), Some(created.id.as_str()));

    // Every event type a service publishes names its message.
    for event_type in [
        "tenancy.tenant_created.v1",
        "catalog.code_value_retired.v1",
        "clients.barrier_changed.v1",
        "records.service_recorded.v1",
        "authorizations.authorization_approved.v1",
    ] {
        assert!(
            caseway_api::event_dataschema(event_type).is_some(),
            "{event_type}"
        );
    }
    node.shutdown().await;
}

#[tokio::test]
async fn an_empty_mask_changes_what_is_set_and_a_star_replaces_everything() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "masks").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut catalog = node.catalog.clone();
    let created = catalog
        .create_service(authed(
            &admin,
            create(
                "",
                pb::Service {
                    description: "Kept unless replaced".into(),
                    ..service("MS", "Masked")
                },
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let update = |service: pb::Service, paths: &[&str]| pb::UpdateServiceRequest {
        service: Some(service),
        update_mask: Some(prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };

    // An empty mask: only the fields the request sets change (AIP-134).
    let renamed = catalog
        .update_service(authed(
            &admin,
            update(
                pb::Service {
                    id: created.id.clone(),
                    name: "Renamed".into(),
                    ..Default::default()
                },
                &[],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(renamed.name, "Renamed");
    assert_eq!(renamed.code, "MS");
    assert_eq!(renamed.description, "Kept unless replaced");
    assert_eq!(renamed.unit_of_measure, created.unit_of_measure);

    // `*`: every mutable field is replaced, and one left at its default is cleared.
    let replaced = catalog
        .update_service(authed(
            &admin,
            update(
                pb::Service {
                    id: created.id.clone(),
                    ..service("MS2", "Replaced")
                },
                &["*"],
            ),
        ))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    assert_eq!(
        (replaced.code.as_str(), replaced.name.as_str()),
        ("MS2", "Replaced")
    );
    assert_eq!(replaced.description, "");

    // `*` stands alone.
    let status = catalog
        .update_service(authed(
            &admin,
            update(
                pb::Service {
                    id: created.id.clone(),
                    name: "X".into(),
                    ..Default::default()
                },
                &["*", "name"],
            ),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["update_mask"]);
    node.shutdown().await;
}

#[tokio::test]
async fn a_retried_retirement_answers_with_the_first_reply() {
    let env = TestEnv::new().await;
    let node = env.start(&Target::ALL).await;
    let tenant = node.create_tenant(&env, "retire-retry").await;
    let admin = env.token(tenant, &[Role::TenantAdmin], &[]);
    let mut catalog = node.catalog.clone();
    let created = catalog
        .create_service(authed(&admin, create("", service("RR", "Retired"))))
        .await
        .unwrap()
        .into_inner()
        .service
        .unwrap();
    let retire = |request_id: &str| pb::RetireServiceRequest {
        id: created.id.clone(),
        etag: created.etag.clone(),
        request_id: request_id.into(),
    };
    let first = catalog
        .retire_service(authed(&admin, retire("retire-1")))
        .await
        .unwrap()
        .into_inner();
    // The etag read before has moved on, yet the retry gets the first answer.
    let again = catalog
        .retire_service(authed(&admin, retire("retire-1")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, first);
    // Without the request id the same call is a stale etag.
    let status = catalog
        .retire_service(authed(&admin, retire("")))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "ETAG_MISMATCH");
    node.shutdown().await;
}
