//! Identifier newtypes, so a client id can never be passed where a tenant id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Declares a resource id: a UUID (v7 when made here) that converts to and from [`Uuid`]
/// explicitly, prints and parses as the UUID, serializes as one and binds to PostgreSQL as
/// `uuid`, but is never mistaken for another resource's id.
macro_rules! resource_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sqlx::Type,
        )]
        #[serde(transparent)]
        #[sqlx(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new id, ordered by creation time.
            pub fn new() -> Self {
                $name(Uuid::now_v7())
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                $name(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map($name)
            }
        }
    };
}

resource_id!(
    /// The organization a hosting provider serves; every tenant-owned row carries it.
    TenantId
);
resource_id!(
    /// A client (a person served) of the clients service.
    ClientId
);
resource_id!(
    /// A service of the catalog.
    ServiceId
);
resource_id!(
    /// A grant of the catalog, funding services.
    GrantId
);
resource_id!(
    /// A service record: a service delivered to a client, or a turn-away.
    RecordId
);
resource_id!(
    /// A service authorization: planned units of one service for one client.
    AuthorizationId
);
resource_id!(
    /// One attempt of the records service to hold units of an authorization for a record.
    HoldId
);
resource_id!(
    /// The eligibility rule of one catalog service.
    RuleId
);
resource_id!(
    /// A stored eligibility decision: one client, one service, one date.
    DecisionId
);
