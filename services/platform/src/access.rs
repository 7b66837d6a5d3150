//! Who may call what: one table of every RPC a Caseway node serves, with the roles that may
//! call it (or, for the internal services, the service permission a caller must hold). The
//! gateway layer enforces it before any handler runs, so a handler never checks a role the
//! table already decides; a handler checks only finer rules (the SSN permission, a security
//! organization, separation of duties). A test calls every cell of the table.
//!
//! Reading the role columns: `C` caseworker, `S` supervisor, `A` tenant_admin, `T`
//! support_agent (the hosting provider's support desk), `P` platform_admin; `.` is a role
//! that may not call the method. Users never call an internal service, and a service
//! identity never calls a public one.

use std::collections::HashMap;

use crate::auth::{Principal, Role};
use crate::error::{Error, Reason, Result};

/// What a caller needs to call one method.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone, with or without a token: health and reflection.
    Public,
    /// A user holding one of the roles (a bit per role, in [`Role::ALL`]'s order).
    Roles(u8),
    /// A service of this deployment holding the permission (a service identity token).
    Service(&'static str),
}

const fn roles(columns: &str) -> Access {
    let bytes = columns.as_bytes();
    assert!(bytes.len() == 5, "five role columns: CSATP");
    let letters = *b"CSATP";
    let mut mask = 0u8;
    let mut i = 0;
    while i < 5 {
        if bytes[i] == letters[i] {
            mask |= 1 << i;
        } else {
            assert!(bytes[i] == b'.', "a role column is its letter or '.'");
        }
        i += 1;
    }
    Access::Roles(mask)
}

const fn service(permission: &'static str) -> Access {
    Access::Service(permission)
}

/// The internal permission the records service holds to hold and give back authorized units.
pub const HOLD_UNITS: &str = "authorizations.hold_units";
/// The internal permission the authorizations service holds to ask whether a record version
/// that units were held for was stored.
pub const READ_RECORD_DRAWS: &str = "records.read_draws";
/// The internal permission the records and authorizations services hold to learn which
/// services are restricted to security organizations.
pub const READ_SERVICE_RESTRICTIONS: &str = "catalog.read_restrictions";

/// The internal permission the records and authorizations services hold to have a client's
/// eligibility for a service decided where its rule is REQUIRED.
pub const ENFORCE_ELIGIBILITY: &str = "eligibility.enforce";

const PUBLIC: Access = Access::Public;

/// Every RPC served, and who may call it.
#[rustfmt::skip]
pub static TABLE: &[(&str, Access)] = &[
    // Health and reflection answer anyone, so probes and grpcurl work without a token.
    ("grpc.health.v1.Health/Check",                                                  PUBLIC),
    ("grpc.health.v1.Health/Watch",                                                  PUBLIC),
    ("grpc.reflection.v1.ServerReflection/ServerReflectionInfo",                     PUBLIC),
    ("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",                PUBLIC),
    // Tenancy: the hosting provider runs the tenant lifecycle; a tenant's administrator
    // keeps its security organizations, which its staff read to pick from.
    ("caseway.tenancy.v1.TenancyService/CreateTenant",                               roles("....P")),
    ("caseway.tenancy.v1.TenancyService/GetTenant",                                  roles("CSA.P")),
    ("caseway.tenancy.v1.TenancyService/ListTenants",                                roles("....P")),
    ("caseway.tenancy.v1.TenancyService/SuspendTenant",                              roles("....P")),
    ("caseway.tenancy.v1.TenancyService/ResumeTenant",                               roles("....P")),
    ("caseway.tenancy.v1.TenancyService/UpdateTenant",                               roles("....P")),
    ("caseway.tenancy.v1.TenancyService/CreateOrganization",                         roles("..A.P")),
    ("caseway.tenancy.v1.TenancyService/GetOrganization",                            roles("CSA..")),
    ("caseway.tenancy.v1.TenancyService/UpdateOrganization",                         roles("..A.P")),
    ("caseway.tenancy.v1.TenancyService/DeleteOrganization",                         roles("..A..")),
    ("caseway.tenancy.v1.TenancyService/ListOrganizations",                          roles("CSA.P")),
    // Catalog: the tenant's administrator changes it; its staff read it.
    ("caseway.catalog.v1.CatalogService/CreateServiceGroup",                         roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetServiceGroup",                            roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateServiceGroup",                         roles("..A..")),
    ("caseway.catalog.v1.CatalogService/DeleteServiceGroup",                         roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListServiceGroups",                          roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/CreateService",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetService",                                 roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateService",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/RetireService",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/DeleteService",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListServices",                               roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/CreateGrant",                                roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetGrant",                                   roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateGrant",                                roles("..A..")),
    ("caseway.catalog.v1.CatalogService/RetireGrant",                                roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListGrants",                                 roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/CreateProgram",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetProgram",                                 roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateProgram",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/RetireProgram",                              roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListPrograms",                               roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/CreateProvider",                             roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetProvider",                                roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateProvider",                             roles("..A..")),
    ("caseway.catalog.v1.CatalogService/RetireProvider",                             roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListProviders",                              roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/CreateCodeValue",                            roles("..A..")),
    ("caseway.catalog.v1.CatalogService/GetCodeValue",                               roles("CSA..")),
    ("caseway.catalog.v1.CatalogService/UpdateCodeValue",                            roles("..A..")),
    ("caseway.catalog.v1.CatalogService/RetireCodeValue",                            roles("..A..")),
    ("caseway.catalog.v1.CatalogService/ListCodeValues",                             roles("CSA..")),
    ("caseway.catalog.v1.CatalogInternalService/ListServiceRestrictions",            service(READ_SERVICE_RESTRICTIONS)),
    // Clients: the tenant's staff; deleting a client takes a supervisor or the administrator.
    ("caseway.clients.v1.ClientsService/CreateClient",                               roles("CSA..")),
    ("caseway.clients.v1.ClientsService/GetClient",                                  roles("CSA..")),
    ("caseway.clients.v1.ClientsService/UpdateClient",                               roles("CSA..")),
    ("caseway.clients.v1.ClientsService/DeleteClient",                               roles(".SA..")),
    ("caseway.clients.v1.ClientsService/ListClientHistory",                          roles("CSA..")),
    ("caseway.clients.v1.ClientsService/SearchClients",                              roles("CSA..")),
    ("caseway.clients.v1.ClientsService/StartEnrollment",                            roles("CSA..")),
    ("caseway.clients.v1.ClientsService/ExitEnrollment",                             roles("CSA..")),
    ("caseway.clients.v1.ClientsService/GetEnrollment",                              roles("CSA..")),
    ("caseway.clients.v1.ClientsService/ListEnrollments",                            roles("CSA..")),
    ("caseway.clients.v1.ClientsService/ListClients",                                roles("..A..")),
    // Assessment types are the administrator's setup; staff record assessments against them.
    ("caseway.clients.v1.AssessmentsService/CreateAssessmentType",                   roles("..A..")),
    ("caseway.clients.v1.AssessmentsService/GetAssessmentType",                      roles("CSA..")),
    ("caseway.clients.v1.AssessmentsService/UpdateAssessmentType",                   roles("..A..")),
    ("caseway.clients.v1.AssessmentsService/ListAssessmentTypes",                    roles("CSA..")),
    ("caseway.clients.v1.AssessmentsService/RecordAssessment",                       roles("CSA..")),
    ("caseway.clients.v1.AssessmentsService/GetAssessment",                          roles("CSA..")),
    ("caseway.clients.v1.AssessmentsService/ListAssessments",                        roles("CSA..")),
    ("caseway.clients.v1.AssessmentsService/ListLatestAssessments",                  roles("CSA..")),
    ("caseway.clients.v1.BarriersService/CreateBarrier",                             roles("CSA..")),
    ("caseway.clients.v1.BarriersService/GetBarrier",                                roles("CSA..")),
    ("caseway.clients.v1.BarriersService/UpdateBarrier",                             roles("CSA..")),
    ("caseway.clients.v1.BarriersService/ListBarriers",                              roles("CSA..")),
    // Service records: staff record and read; deleting takes a supervisor or the administrator.
    ("caseway.records.v1.RecordsService/RecordService",                              roles("CSA..")),
    ("caseway.records.v1.RecordsService/RecordQuickServices",                        roles("CSA..")),
    ("caseway.records.v1.RecordsService/RecordBulkService",                          roles("CSA..")),
    ("caseway.records.v1.RecordsService/RecordIndirectService",                      roles("CSA..")),
    ("caseway.records.v1.RecordsService/GetServiceRecord",                           roles("CSA..")),
    ("caseway.records.v1.RecordsService/UpdateServiceRecord",                        roles("CSA..")),
    ("caseway.records.v1.RecordsService/DeleteServiceRecord",                        roles(".SA..")),
    ("caseway.records.v1.RecordsService/ListServiceRecordHistory",                   roles("CSA..")),
    ("caseway.records.v1.RecordsService/ListClientServiceRecords",                   roles("CSA..")),
    ("caseway.records.v1.RecordsService/GetServiceTotals",                           roles("CSA..")),
    ("caseway.records.v1.RecordsInternalService/GetRecordDraw",                      service(READ_RECORD_DRAWS)),
    // Authorizations: staff plan them; a supervisor decides; a supervisor or the
    // administrator ends them.
    ("caseway.authorizations.v1.AuthorizationsService/CreateAuthorization",          roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsService/GetAuthorization",             roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsService/UpdateAuthorization",          roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsService/ApproveAuthorization",         roles(".S...")),
    ("caseway.authorizations.v1.AuthorizationsService/DenyAuthorization",            roles(".S...")),
    ("caseway.authorizations.v1.AuthorizationsService/CancelAuthorization",          roles(".SA..")),
    ("caseway.authorizations.v1.AuthorizationsService/CloseAuthorization",           roles(".SA..")),
    ("caseway.authorizations.v1.AuthorizationsService/ListClientAuthorizations",     roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsService/GetAuthorizationUtilization",  roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsService/ListAuthorizationHistory",     roles("CSA..")),
    ("caseway.authorizations.v1.AuthorizationsInternalService/ReserveUnits",         service(HOLD_UNITS)),
    ("caseway.authorizations.v1.AuthorizationsInternalService/ReleaseUnits",         service(HOLD_UNITS)),
    // Eligibility: the tenant's administrator defines, tests and publishes rules; its staff
    // check clients against the published ones and read the decisions.
    ("caseway.eligibility.v1.EligibilityService/CreateRule",                         roles("..A..")),
    ("caseway.eligibility.v1.EligibilityService/GetRule",                            roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/UpdateRule",                         roles("..A..")),
    ("caseway.eligibility.v1.EligibilityService/PublishRule",                        roles("..A..")),
    ("caseway.eligibility.v1.EligibilityService/ListRules",                          roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/GetRuleVersion",                     roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/TestRule",                           roles("..A..")),
    ("caseway.eligibility.v1.EligibilityService/GetFactSchema",                      roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/CheckEligibility",                   roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/ListEligibleServices",               roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/GetDecision",                        roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityService/ReplayDecision",                     roles("CSA..")),
    ("caseway.eligibility.v1.EligibilityInternalService/EnforceEligibility",         service(ENFORCE_ELIGIBILITY)),
    ("caseway.ticketing.v1.TicketingService/SubmitTicket",                           roles("CSA..")),
    ("caseway.ticketing.v1.TicketingService/GetTicket",                              roles("CSAT.")),
    ("caseway.ticketing.v1.TicketingService/ListTickets",                            roles("CSA..")),
    ("caseway.ticketing.v1.TicketingService/ListSupportTickets",                     roles("...T.")),
    ("caseway.ticketing.v1.TicketingService/AskSubmitter",                           roles("..A..")),
    ("caseway.ticketing.v1.TicketingService/EscalateTicket",                         roles("..A..")),
    ("caseway.ticketing.v1.TicketingService/TriageTicket",                           roles("...T.")),
    ("caseway.ticketing.v1.TicketingService/StartTicketWork",                        roles("...T.")),
    ("caseway.ticketing.v1.TicketingService/AskCustomer",                            roles("...T.")),
    ("caseway.ticketing.v1.TicketingService/ResolveTicket",                          roles("..AT.")),
    ("caseway.ticketing.v1.TicketingService/ReopenTicket",                           roles("CSA..")),
    ("caseway.ticketing.v1.TicketingService/AddTicketNote",                          roles("CSAT.")),
    ("caseway.ticketing.v1.TicketingService/ListTicketNotes",                        roles("CSAT.")),
    ("caseway.ticketing.v1.TicketingService/WatchTickets",                           roles("..A..")),
    ("caseway.ticketing.v1.TicketingService/UploadTicketAttachment",                 roles("CSA..")),
    ("caseway.ticketing.v1.TicketingService/ListTicketAttachments",                  roles("CSAT.")),
    ("caseway.ticketing.v1.TicketingService/DownloadTicketAttachment",               roles("CSAT.")),
    ("caseway.ticketing.v1.TicketingService/ReleaseTicketAttachment",                roles("..A..")),
    // HMIS: the tenant administrator keeps the mappings to HUD's codes; supervisors and
    // administrators export (SSNs only with clients.read_ssn, checked by the use case).
    ("caseway.hmis.v1.HmisService/SetMapping",                                       roles("..A..")),
    ("caseway.hmis.v1.HmisService/ListMappings",                                     roles(".SA..")),
    ("caseway.hmis.v1.HmisService/DeleteMapping",                                    roles("..A..")),
    ("caseway.hmis.v1.HmisService/GetSettings",                                      roles(".SA..")),
    ("caseway.hmis.v1.HmisService/UpdateSettings",                                   roles("..A..")),
    ("caseway.hmis.v1.HmisService/StartExport",                                      roles(".SA..")),
    ("caseway.hmis.v1.HmisService/GetExport",                                        roles(".SA..")),
    ("caseway.hmis.v1.HmisService/DownloadExportFile",                               roles(".SA..")),
];

impl Access {
    /// Whether `principal` may call a method with this access.
    pub fn allows(&self, principal: &Principal) -> bool {
        match *self {
            Access::Public => true,
            Access::Roles(mask) => {
                principal.service.is_none()
                    && Role::ALL
                        .iter()
                        .enumerate()
                        .any(|(bit, role)| mask & (1 << bit) != 0 && principal.has_role(*role))
            }
            Access::Service(permission) => {
                principal.service.is_some() && principal.has_permission(permission)
            }
        }
    }

    /// The roles of a [`Access::Roles`] entry.
    pub fn roles(&self) -> Vec<Role> {
        match *self {
            Access::Roles(mask) => Role::ALL
                .iter()
                .enumerate()
                .filter(|(bit, _)| mask & (1 << bit) != 0)
                .map(|(_, role)| *role)
                .collect(),
            _ => Vec::new(),
        }
    }

    /// PERMISSION_DENIED (reason `ROLE_NOT_PERMITTED`) unless `principal` may call.
    pub fn check(&self, principal: &Principal) -> Result<()> {
        if self.allows(principal) {
            return Ok(());
        }
        let description = match self {
            Access::Public => unreachable!("public methods allow everyone"),
            Access::Roles(_) if principal.service.is_some() => {
                "a service identity may call only internal services".to_string()
            }
            Access::Roles(_) => {
                let wanted: Vec<_> = self.roles().iter().map(Role::as_str).collect();
                format!("requires role {}", wanted.join(" or "))
            }
            Access::Service(permission) => {
                format!("an internal method: only a service holding {permission} may call it")
            }
        };
        Err(Error::denied(Reason::RoleNotPermitted, description))
    }
}

/// The methods one node serves, by request path (`/caseway.catalog.v1.CatalogService/GetService`),
/// with the access each needs. The path is also the `method` label of the RPC metrics, so a
/// request for a path the node does not serve adds no series.
pub struct Methods {
    by_path: HashMap<String, (&'static str, Access)>,
}

impl Methods {
    /// The table's methods of the gRPC services named (full names, such as
    /// `caseway.catalog.v1.CatalogService`), with health and reflection.
    pub fn of_services(services: &[String]) -> Methods {
        let by_path = TABLE
            .iter()
            .filter(|(method, access)| {
                let service = method.split('/').next().unwrap_or_default();
                *access == Access::Public || services.iter().any(|s| s == service)
            })
            .map(|(method, access)| (format!("/{method}"), (*method, *access)))
            .collect();
        Methods { by_path }
    }

    /// The method served at `path` (its name without the leading `/`) and its access.
    pub fn get(&self, path: &str) -> Option<(&'static str, Access)> {
        self.by_path.get(path).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_read_as_roles() {
        assert_eq!(
            roles("C.A..").roles(),
            vec![Role::Caseworker, Role::TenantAdmin]
        );
        assert_eq!(roles(".....").roles(), Vec::<Role>::new());
    }

    #[test]
    fn each_method_has_one_row() {
        let mut seen = std::collections::HashSet::new();
        for (method, _) in TABLE {
            assert!(seen.insert(method), "{method} is listed twice");
        }
    }
}
