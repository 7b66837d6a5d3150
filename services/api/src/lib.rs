//! The gRPC wire types of every Caseway service, generated from `proto/`. One crate, so the
//! generated code compiles once and a client never depends on a server crate.

pub mod encoded;
pub mod limits;

/// The `domain` of every `google.rpc.ErrorInfo` Caseway sends (its reasons:
/// `caseway::common::v1::ErrorReason`).
pub const ERROR_DOMAIN: &str = "caseway.io";

/// A reason as it travels in `ErrorInfo.reason`: the proto value's name without its
/// `ERROR_REASON_` prefix (`ETAG_MISMATCH`).
pub fn reason_text(reason: caseway::common::v1::ErrorReason) -> &'static str {
    let name = reason.as_str_name();
    name.strip_prefix("ERROR_REASON_").unwrap_or(name)
}

/// Encoded `FileDescriptorSet` of the whole proto tree, served by gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/caseway_descriptor.bin"));

pub mod google {
    pub mod r#type {
        tonic::include_proto!("google.r#type");
    }
}

/// Modules nest like the proto packages, so generated cross-package paths resolve.
pub mod caseway {
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("caseway.common.v1");
        }
    }

    pub mod tenancy {
        pub mod v1 {
            tonic::include_proto!("caseway.tenancy.v1");
        }
    }

    pub mod catalog {
        pub mod v1 {
            tonic::include_proto!("caseway.catalog.v1");
        }
    }

    pub mod clients {
        pub mod v1 {
            tonic::include_proto!("caseway.clients.v1");
        }
    }

    pub mod records {
        pub mod v1 {
            tonic::include_proto!("caseway.records.v1");
        }
    }

    pub mod authorizations {
        pub mod v1 {
            tonic::include_proto!("caseway.authorizations.v1");
        }
    }

    pub mod eligibility {
        pub mod v1 {
            tonic::include_proto!("caseway.eligibility.v1");
        }
    }

    pub mod ticketing {
        // A watch's change is a whole ticket or a note; boxing generated fields would change
        // the types every caller builds.
        #[allow(clippy::large_enum_variant)]
        pub mod v1 {
            tonic::include_proto!("caseway.ticketing.v1");
        }
    }

    pub mod hmis {
        pub mod v1 {
            tonic::include_proto!("caseway.hmis.v1");
        }
    }

    pub mod events {
        pub mod v1 {
            tonic::include_proto!("caseway.events.v1");
        }
    }
}

pub use caseway::{
    authorizations, catalog, clients, common, eligibility, events, hmis, records, tenancy,
    ticketing,
};

include!(concat!(env!("OUT_DIR"), "/event_schemas.rs"));

/// The protobuf message (full name) of an event type's data, or None for a type no message
/// of `events.proto` names.
pub fn event_message(event_type: &str) -> Option<&'static str> {
    EVENT_SCHEMAS
        .binary_search_by(|(known, _)| (*known).cmp(event_type))
        .ok()
        .map(|at| EVENT_SCHEMAS[at].1)
}

/// The CloudEvents `dataschema` of an event type: a URN naming its protobuf message.
pub fn event_dataschema(event_type: &str) -> Option<String> {
    event_message(event_type).map(|message| format!("urn:caseway:proto:{message}"))
}

/// The method a request message asks for: every request of Caseway's services names its one
/// method (`caseway.tenancy.v1.TenancyService`, `ListOrganizations`).
pub trait Rpc {
    /// The service's full name.
    const SERVICE: &'static str;
    /// The method's name.
    const METHOD: &'static str;
}

include!(concat!(env!("OUT_DIR"), "/rpcs.rs"));

// What measures each request against its field limits (see `limits`).
include!(concat!(env!("OUT_DIR"), "/bounds.rs"));
