//! Screenshots on tickets over the whole system: the type read from the bytes, metadata
//! dropped, the limits, who reads an attachment, the administrator's release (as it is or
//! redacted on the server) before support sees it, support's reads kept for the organization,
//! and both stores: the local file system and an S3-compatible server.

use image::ImageFormat;
use tonic::Code;

use caseway_api::ticketing::v1 as pb;
use caseway_integration_tests::{
    S3Server, TestEnv, TestNode, authed, download_attachment, rule_of, submit_ticket,
    upload_attachment, violated_fields,
};
use caseway_platform::auth::Role;
use caseway_test_support::images::{contains, jpeg_with_exif, pdf, picture, png_with_text};

const MIB: usize = 1024 * 1024;

async fn release(
    node: &TestNode,
    token: &str,
    id: &str,
    redact: Vec<pb::Rectangle>,
) -> Result<pb::TicketAttachment, tonic::Status> {
    node.ticketing
        .clone()
        .release_ticket_attachment(authed(
            token,
            pb::ReleaseTicketAttachmentRequest {
                id: id.into(),
                redact,
            },
        ))
        .await
        .map(|r| r.into_inner().attachment.unwrap())
}

async fn listed(node: &TestNode, token: &str, ticket: &str) -> Vec<pb::TicketAttachment> {
    node.ticketing
        .clone()
        .list_ticket_attachments(authed(
            token,
            pb::ListTicketAttachmentsRequest {
                ticket_id: ticket.into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .attachments
}

/// The whole path on one node: what the tests of both stores share.
async fn attachments_on(env: &TestEnv, node: &TestNode, slug: &str) {
    let tenant = node.create_tenant(env, slug).await;
    let ana = env.token_for("ana", tenant, &[Role::Caseworker], &[]);
    let bo = env.token_for("bo", tenant, &[Role::Caseworker], &[]);
    let admin = env.token_for("lisa", tenant, &[Role::TenantAdmin], &[]);
    let support = env.support_token("sam");
    let id = submit_ticket(node, &ana, "The client screen shows the wrong age")
        .await
        .id;

    // A PNG carrying a location, in three chunks: stored without it, pixels kept.
    let tagged = png_with_text(b"Location\x0040.7128 N, 74.0060 W");
    let png = upload_attachment(node, &ana, &id, "screen.png", &tagged, tagged.len() / 3 + 1)
        .await
        .unwrap();
    assert_eq!(
        (png.content_type.as_str(), png.width, png.height),
        ("image/png", 64, 48)
    );
    assert_eq!(png.release, pb::AttachmentRelease::Inside as i32);
    let (_, bytes) = download_attachment(node, &ana, &png.id).await.unwrap();
    assert_eq!(bytes.len() as i64, png.size_bytes);
    assert!(!contains(&bytes, b"40.7128"), "the location is gone");
    assert_eq!(
        image::load_from_memory(&bytes).unwrap().to_rgb8(),
        image::load_from_memory(&picture(ImageFormat::Png))
            .unwrap()
            .to_rgb8(),
        "the pixels are the same"
    );
    // A JPEG with EXIF, named as anything: read from its bytes, EXIF dropped.
    let jpeg = upload_attachment(
        node,
        &ana,
        &id,
        "photo.png",
        &jpeg_with_exif(b"GPS 40.7128"),
        MIB,
    )
    .await
    .unwrap();
    assert_eq!(jpeg.content_type, "image/jpeg");
    let (_, bytes) = download_attachment(node, &ana, &jpeg.id).await.unwrap();
    assert!(!contains(&bytes, b"Exif") && !contains(&bytes, b"40.7128"));

    // A renamed PDF, a file over 10 MiB, a chunk over 1 MiB, a chunk before the header: the
    // caller's fault, naming the field, and nothing stored.
    for (file, chunk, field) in [
        (pdf(), MIB, "chunk"),
        (vec![0u8; 10 * MIB + 1], MIB, "chunk"),
        (vec![0u8; MIB + 1], MIB + 1, "chunk"),
    ] {
        let refused = upload_attachment(node, &ana, &id, "screenshot.png", &file, chunk)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), [field]);
    }
    let headless = node
        .ticketing
        .clone()
        .upload_ticket_attachment(authed(
            &ana,
            futures::stream::iter(vec![pb::UploadTicketAttachmentRequest {
                part: Some(pb::upload_ticket_attachment_request::Part::Chunk(picture(
                    ImageFormat::Png,
                ))),
            }]),
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&headless), ["header"]);
    assert_eq!(listed(node, &ana, &id).await.len(), 2);

    // Another case worker of the organization does not see Ana's ticket, nor its images.
    assert_eq!(
        download_attachment(node, &bo, &png.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );

    // Escalated: support sees no attachment until an administrator releases one.
    node.ticketing
        .clone()
        .escalate_ticket(authed(
            &admin,
            pb::EscalateTicketRequest {
                id: id.clone(),
                severity: pb::Severity::Medium as i32,
                ..Default::default()
            },
        ))
        .await
        .unwrap();
    assert!(listed(node, &support, &id).await.is_empty());
    assert_eq!(
        download_attachment(node, &support, &png.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    // Only an administrator releases; a rectangle must lie within the image.
    let refused = release(node, &ana, &png.id, Vec::new()).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let outside = pb::Rectangle {
        x: 60,
        y: 0,
        width: 10,
        height: 10,
    };
    let refused = release(node, &admin, &png.id, vec![outside])
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&refused), ["redact[0]"]);
    let name = pb::Rectangle {
        x: 10,
        y: 5,
        width: 20,
        height: 10,
    };
    let redacted = release(node, &admin, &png.id, vec![name]).await.unwrap();
    assert_eq!(redacted.release, pb::AttachmentRelease::Redacted as i32);
    assert_eq!(redacted.released_by, "lisa");
    assert_ne!(redacted.sha256, png.sha256);
    let again = release(node, &admin, &png.id, Vec::new())
        .await
        .unwrap_err();
    assert_eq!(rule_of(&again), "attachment_release");

    // Support reads the redacted image, and only that one; its read is on record.
    let seen = listed(node, &support, &id).await;
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].id, png.id);
    let (_, bytes) = download_attachment(node, &support, &png.id).await.unwrap();
    let image = image::load_from_memory(&bytes).unwrap().into_rgba8();
    assert_eq!(image.get_pixel(10, 5).0, [0, 0, 0, 255]);
    assert_eq!(image.get_pixel(29, 14).0, [0, 0, 0, 255]);
    assert_ne!(image.get_pixel(30, 14).0, [0, 0, 0, 255]);
    let mine = listed(node, &admin, &id).await;
    let reads: Vec<&str> = mine
        .iter()
        .find(|a| a.id == png.id)
        .unwrap()
        .support_reads
        .iter()
        .map(|r| r.reader.as_str())
        .collect();
    assert_eq!(reads, ["sam"]);
    assert!(
        mine.iter()
            .find(|a| a.id == jpeg.id)
            .unwrap()
            .support_reads
            .is_empty()
    );
    let mut owner = env.db.owner().await;
    let audited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM platform.audit_log WHERE tenant_id = $1 AND actor = 'sam' \
         AND action = 'ticketing.attachment.read' AND resource_id = $2::uuid",
    )
    .bind(tenant.as_uuid())
    .bind(&png.id)
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(audited, 1);
}

#[tokio::test]
async fn screenshots_in_the_file_system_are_cleaned_released_and_read_on_record() {
    let env = TestEnv::new().await;
    let node = env.start(&caseway::Target::ALL).await;
    attachments_on(&env, &node, "shots-fs").await;
    // The images are files in the node's data folder, the redacted one in place of its original.
    let mut stored = Vec::new();
    let mut folders = vec![env.config().data_dir.join("attachments")];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                stored.push(path.file_name().unwrap().to_string_lossy().to_string());
            }
        }
    }
    stored.sort();
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert!(
        stored.iter().any(|f| f.ends_with("-redacted.png")),
        "{stored:?}"
    );
    assert!(
        stored.iter().any(|f| f.ends_with("-original.jpg")),
        "{stored:?}"
    );
}

#[tokio::test]
async fn screenshots_in_an_s3_compatible_store_are_cleaned_released_and_read_on_record() {
    let s3 = S3Server::start().await;
    let (status, _) = s3.request("PUT", "/screenshots").await;
    assert!(status.contains("200"), "{status}");
    let env = TestEnv::new().await;
    let secret = env.config().data_dir.join("s3-secret");
    std::fs::write(&secret, "moto-secret\n").unwrap();
    let config = caseway_platform::config::Config {
        ticketing_attachments: "s3://screenshots".into(),
        ticketing_attachments_s3_endpoint: s3.endpoint.clone(),
        ticketing_attachments_s3_access_key_id: "moto".into(),
        ticketing_attachments_s3_secret_access_key_file: Some(secret),
        ..env.config()
    };
    let node = env.start_with(config, &caseway::Target::ALL).await;
    attachments_on(&env, &node, "shots-s3").await;
    // The bucket holds the two images, the redacted one in place of its original.
    let (_, listing) = s3.request("GET", "/screenshots?list-type=2").await;
    let keys: Vec<&str> = listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .collect();
    assert_eq!(keys.len(), 2, "{listing}");
    assert!(
        keys.iter().any(|k| k.ends_with("-redacted.png")),
        "{keys:?}"
    );
    assert!(
        keys.iter().any(|k| k.ends_with("-original.jpg")),
        "{keys:?}"
    );
    assert!(keys.iter().all(|k| k.starts_with("tenants/")), "{keys:?}");
}
