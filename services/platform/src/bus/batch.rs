//! Several events in one message: the batch of the CloudEvents protobuf format, which events
//! of one tenant and type published together travel in.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, TimeZone, Utc};
use lapin::BasicProperties;
use prost::Message as _;

use super::Envelope;
use crate::ids::TenantId;

/// The media type of a message holding several events (of one type and one tenant): the batch
/// of the CloudEvents protobuf format. The AMQP binding defines no batch mode of its own.
pub const BATCH_CONTENT_TYPE: &str = "application/cloudevents-batch+protobuf";

/// Events in one message, at most: a Quick Services form's or a stream of single recordings'
/// events travel together, and a consumer's batch stays a few hundred events.
pub(super) const EVENTS_PER_MESSAGE: usize = 32;

// The CloudEvents protobuf format (`io.cloudevents.v1`, the spec's `cloudevents.proto`): the
// messages and fields a batch of Caseway's events uses, with the spec's field numbers.

/// `CloudEventBatch`: the events of one message.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct CloudEventBatch {
    #[prost(message, repeated, tag = "1")]
    pub events: Vec<CloudEvent>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CloudEvent {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub source: String,
    #[prost(string, tag = "3")]
    pub spec_version: String,
    #[prost(string, tag = "4")]
    pub r#type: String,
    #[prost(map = "string, message", tag = "5")]
    pub attributes: HashMap<String, AttributeValue>,
    #[prost(oneof = "Data", tags = "6, 7, 8")]
    pub data: Option<Data>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Data {
    #[prost(bytes, tag = "6")]
    Binary(Vec<u8>),
    #[prost(string, tag = "7")]
    Text(String),
    #[prost(message, tag = "8")]
    Proto(prost_types::Any),
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeValue {
    #[prost(oneof = "Attr", tags = "1, 2, 3, 4, 5, 6, 7")]
    pub attr: Option<Attr>,
}

#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Attr {
    #[prost(bool, tag = "1")]
    Boolean(bool),
    #[prost(int32, tag = "2")]
    Integer(i32),
    #[prost(string, tag = "3")]
    String(String),
    #[prost(bytes, tag = "4")]
    Bytes(Vec<u8>),
    #[prost(string, tag = "5")]
    Uri(String),
    #[prost(string, tag = "6")]
    UriRef(String),
    #[prost(message, tag = "7")]
    Timestamp(prost_types::Timestamp),
}

/// An event in the CloudEvents protobuf format, with the attributes binary mode carries.
fn to_cloud_event(event: &Envelope) -> CloudEvent {
    let mut attributes = HashMap::new();
    let mut put = |name: &str, attr: Attr| {
        attributes.insert(name.to_string(), AttributeValue { attr: Some(attr) });
    };
    put("subject", Attr::String(event.subject.clone()));
    put(
        "time",
        Attr::Timestamp(prost_types::Timestamp {
            seconds: event.time.timestamp(),
            nanos: event.time.timestamp_subsec_nanos() as i32,
        }),
    );
    put(
        "datacontenttype",
        Attr::String(super::DATA_CONTENT_TYPE.into()),
    );
    if let Some(schema) = caseway_api::event_dataschema(&event.event_type) {
        put("dataschema", Attr::Uri(schema));
    }
    put("tenantid", Attr::String(event.tenant_id.to_string()));
    if let Some(traceparent) = &event.traceparent {
        put("traceparent", Attr::String(traceparent.clone()));
    }
    CloudEvent {
        id: event.id.to_string(),
        source: event.source.clone(),
        spec_version: "1.0".into(),
        r#type: event.event_type.clone(),
        attributes,
        data: Some(Data::Binary(event.payload.clone())),
    }
}

/// An event of a batch.
pub(super) fn from_cloud_event(mut event: CloudEvent) -> anyhow::Result<Envelope> {
    let mut text = |name: &str| match event.attributes.remove(name).and_then(|v| v.attr) {
        Some(Attr::String(s) | Attr::Uri(s) | Attr::UriRef(s)) => Some(s),
        _ => None,
    };
    let subject = text("subject").unwrap_or_default();
    let tenant = text("tenantid").context("an event of a batch without a tenant")?;
    let traceparent = text("traceparent");
    let time = match event.attributes.remove("time").and_then(|v| v.attr) {
        Some(Attr::Timestamp(t)) => Utc.timestamp_opt(t.seconds, t.nanos.max(0) as u32).single(),
        _ => None,
    }
    .unwrap_or(DateTime::UNIX_EPOCH);
    Ok(Envelope {
        id: event
            .id
            .parse()
            .context("an event of a batch whose id is not a UUID")?,
        tenant_id: tenant
            .parse()
            .context("an event of a batch whose tenantid is not a UUID")?,
        event_type: event.r#type,
        source: event.source,
        subject,
        time,
        traceparent,
        payload: match event.data {
            Some(Data::Binary(bytes)) => bytes,
            Some(Data::Text(text)) => text.into_bytes(),
            Some(Data::Proto(any)) => any.value,
            None => Vec::new(),
        },
    })
}

/// The events of a publication grouped into messages: each message holds events of one tenant
/// and one type that follow each other in that tenant's order (at most
/// [`EVENTS_PER_MESSAGE`]), and the messages keep every tenant's order of events. Tenants'
/// events may interleave; their order relative to each other is not kept (no consumer relies on
/// it: tenants are independent).
pub(super) fn messages(envelopes: &[Envelope]) -> Vec<Vec<&Envelope>> {
    let mut groups: Vec<Vec<&Envelope>> = Vec::new();
    // Each tenant's last group, which its next event may join.
    let mut open: HashMap<TenantId, usize> = HashMap::new();
    for envelope in envelopes {
        match open.get(&envelope.tenant_id) {
            Some(&group)
                if groups[group][0].event_type == envelope.event_type
                    && groups[group].len() < EVENTS_PER_MESSAGE =>
            {
                groups[group].push(envelope)
            }
            _ => {
                open.insert(envelope.tenant_id, groups.len());
                groups.push(vec![envelope]);
            }
        }
    }
    groups
}

/// A message's body and properties: one event in binary mode, several as a batch.
pub(super) fn encode<'a>(events: &[&'a Envelope]) -> (std::borrow::Cow<'a, [u8]>, BasicProperties) {
    if let [event] = events {
        return (event.payload.as_slice().into(), event.properties());
    }
    let batch = CloudEventBatch {
        events: events.iter().map(|e| to_cloud_event(e)).collect(),
    };
    // The first event's id, type and time stand for the message; each event carries its own.
    let properties = events[0].message_properties(BATCH_CONTENT_TYPE);
    (batch.encode_to_vec().into(), properties)
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn event(tenant: TenantId, event_type: &str, subject: &str) -> Envelope {
        Envelope {
            id: Uuid::now_v7(),
            tenant_id: tenant,
            event_type: event_type.into(),
            source: "caseway/test".into(),
            subject: subject.into(),
            time: Utc
                .timestamp_opt(1_765_000_000, 123_456_789)
                .single()
                .unwrap(),
            traceparent: None,
            payload: subject.as_bytes().to_vec(),
        }
    }

    #[test]
    fn a_tenants_consecutive_events_of_one_type_share_a_message_and_keep_their_order() {
        let (a, b, c) = (TenantId::new(), TenantId::new(), TenantId::new());
        let mut events = vec![
            event(a, "x.v1", "a1"),
            event(b, "x.v1", "b1"),
            event(a, "x.v1", "a2"),
            event(a, "y.v1", "a3"),
            event(a, "x.v1", "a4"),
            event(b, "x.v1", "b2"),
        ];
        events.extend((0..40).map(|n| event(c, "x.v1", &format!("c{n}"))));
        let subjects =
            |group: &Vec<&Envelope>| group.iter().map(|e| e.subject.clone()).collect::<Vec<_>>();
        let groups: Vec<Vec<String>> = messages(&events).iter().map(subjects).collect();
        assert_eq!(groups[0], ["a1", "a2"]);
        assert_eq!(groups[1], ["b1", "b2"]);
        // Another type ends a tenant's run: a4 may not overtake a3.
        assert_eq!(groups[2], ["a3"]);
        assert_eq!(groups[3], ["a4"]);
        assert_eq!(groups[4].len(), EVENTS_PER_MESSAGE);
        assert_eq!(groups[5].len(), 40 - EVENTS_PER_MESSAGE);
        assert_eq!(groups.len(), 6);
    }

    #[test]
    fn a_batch_is_a_cloudevents_batch_that_reads_back_as_its_events() {
        let tenant = TenantId::new();
        let mut first = event(tenant, "catalog.service_created.v1", "s1");
        first.traceparent = Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".into());
        let events = [first, event(tenant, "catalog.service_created.v1", "s2")];
        let (body, properties) = encode(&events.iter().collect::<Vec<_>>());
        assert_eq!(
            properties.content_type().as_ref().map(|t| t.as_str()),
            Some(BATCH_CONTENT_TYPE)
        );
        let batch = CloudEventBatch::decode(&*body).unwrap();
        assert_eq!(batch.events[0].spec_version, "1.0");
        assert!(batch.events[0].attributes.contains_key("dataschema"));
        let read: Vec<Envelope> = batch
            .events
            .into_iter()
            .map(|e| from_cloud_event(e).unwrap())
            .collect();
        assert_eq!(read, events);
        // One event alone stays in binary mode: its body is its data.
        let (body, properties) = encode(&[&events[1]]);
        assert_eq!(&*body, b"s2");
        assert_eq!(
            properties.content_type().as_ref().map(|t| t.as_str()),
            Some("application/protobuf")
        );
    }
}
