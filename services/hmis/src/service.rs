//! The HMIS use cases: keeping mappings and settings, starting an export (or joining the one
//! running for the same range), running it as a job that streams each file to the export
//! store, reading its progress, and downloading its files. Every change and every download is
//! audited; SSNs leave only for a caller holding `clients.read_ssn`.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{NaiveDate, Utc};
use futures::future::BoxFuture;
use futures::{Stream, TryStreamExt};
use object_store::path::Path;
use sha2::Digest;
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use tokio::sync::Semaphore;
use uuid::Uuid;

use caseway_platform::TenantId;
use caseway_platform::audit::{self, AuditEntry};
use caseway_platform::caller::Caller;
use caseway_platform::db::Db;
use caseway_platform::error::{Error, Reason, Result};
use caseway_platform::objects::{Counted, Objects};
use caseway_platform::paging::Page;
use caseway_platform::sealing::SsnOpener;

use crate::domain::{
    self, CSV_VERSION, CsvRow, Demographic, ExportRow, ExportState, File, HmisRule, Mapping,
    Mappings, SOFTWARE_NAME, SYSTEM_USER, Settings, SkippedRows, Subject, WrittenFile, date,
    hmis_id, timestamp, truncate, user_id,
};
use crate::store::{self, Report};

/// The permission that lets SSNs leave in an export, as the clients service names it.
pub const READ_SSN: &str = "clients.read_ssn";

/// Rows written between two progress reports.
const PROGRESS_EVERY: i64 = 5_000;
/// How often a running export shows itself alive (well within [`store::STALE_AFTER_SECONDS`]).
const HEARTBEAT: Duration = Duration::from_secs(15);
/// Exports one tenant may run at once (each holds a database snapshot while it runs).
pub const MAX_RUNNING_PER_TENANT: i64 = 2;
/// Export jobs one node runs at once; more wait their turn, shown running.
const JOBS_PER_NODE: usize = 2;

/// Gives an opener of a tenant's SSNs (only the binary holds the clients service's keys).
pub trait SsnKeys: Send + Sync {
    fn opener(&self, tenant: TenantId) -> BoxFuture<'_, anyhow::Result<Box<dyn SsnOpener>>>;
}

/// A file's bytes, in chunks.
pub type FileStream = Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>;

pub struct Hmis {
    db: Db,
    objects: Objects,
    ssn: Arc<dyn SsnKeys>,
    jobs: Semaphore,
}

impl Hmis {
    pub fn new(db: Db, objects: Objects, ssn: Arc<dyn SsnKeys>) -> Self {
        Hmis {
            db,
            objects,
            ssn,
            jobs: Semaphore::new(JOBS_PER_NODE),
        }
    }

    /// Sets a mapping whose values the domain has checked; NOT_FOUND when the tenant has no
    /// such code.
    pub async fn set_mapping(&self, caller: &Caller, mapping: Mapping) -> Result<Mapping> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if !store::code_exists(tx.conn(), mapping.subject, &mapping.code).await? {
            return Err(Error::not_found(
                subject_resource(mapping.subject),
                &mapping.code,
            ));
        }
        let stored = store::set_mapping(tx.conn(), caller.tenant.as_uuid(), &mapping).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "hmis.mapping.set",
                resource_type: "hmis_mapping",
                resource_id: mapping_id(mapping.subject, &mapping.code),
                changed_fields: &["value".to_string()],
            },
        )
        .await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub async fn list_mappings(
        &self,
        caller: &Caller,
        subject: Option<Subject>,
        page: Page<(i16, String)>,
    ) -> Result<(Vec<Mapping>, String)> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let mut rows =
            store::list_mappings(tx.conn(), subject, page.after.as_ref(), page.limit).await?;
        tx.commit().await?;
        let next = page.finish(&mut rows, |m| (m.subject as i16, m.code.clone()));
        Ok((rows, next))
    }

    pub async fn delete_mapping(
        &self,
        caller: &Caller,
        subject: Subject,
        code: &str,
    ) -> Result<()> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if !store::delete_mapping(tx.conn(), subject, code).await? {
            return Err(Error::not_found("hmis_mapping", code));
        }
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "hmis.mapping.delete",
                resource_type: "hmis_mapping",
                resource_id: mapping_id(subject, code),
                changed_fields: &[],
            },
        )
        .await?;
        tx.commit().await
    }

    pub async fn settings(&self, caller: &Caller) -> Result<Settings> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let settings = store::settings(tx.conn()).await?;
        tx.commit().await?;
        settings.ok_or_else(|| Error::not_found("hmis_settings", caller.tenant))
    }

    pub async fn update_settings(
        &self,
        caller: &Caller,
        mut settings: Settings,
    ) -> Result<Settings> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        settings.updated_at =
            store::set_settings(tx.conn(), caller.tenant.as_uuid(), &settings).await?;
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "hmis.settings.update",
                resource_type: "hmis_settings",
                resource_id: caller.tenant.as_uuid(),
                changed_fields: &[],
            },
        )
        .await?;
        tx.commit().await?;
        Ok(settings)
    }

    /// Starts an export of the range, or joins the one running for it: the export, and
    /// whether it was joined. The job runs on this node; a node that stops leaves its export
    /// to be marked failed by the next start.
    pub async fn start_export(
        self: &Arc<Self>,
        caller: &Caller,
        start: NaiveDate,
        end: NaiveDate,
        include_ssn: bool,
    ) -> Result<(ExportRow, bool)> {
        if include_ssn && !caller.principal.has_permission(READ_SSN) {
            return Err(Error::denied(
                Reason::PermissionMissing,
                "exporting SSNs needs the clients.read_ssn permission",
            ));
        }
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        if store::settings(tx.conn()).await?.is_none() {
            return Err(Error::precondition(
                HmisRule::Settings,
                "hmis/settings",
                "set the tenant's HMIS settings (its CoC code) before exporting",
            ));
        }
        store::fail_stale(tx.conn()).await?;
        let range = (start, end, include_ssn);
        // Join the export of the range that runs, or start one; a start that loses the race
        // for the range joins the winner.
        let (export, started) = loop {
            if let Some(running) = store::running_for(tx.conn(), range).await? {
                break (running, false);
            }
            if store::running(tx.conn()).await? >= MAX_RUNNING_PER_TENANT {
                return Err(Error::exhausted(
                    Reason::ExportsBusy,
                    format!(
                        "the tenant runs {MAX_RUNNING_PER_TENANT} exports already; \
                         start this one when one has ended"
                    ),
                    Duration::from_secs(30),
                ));
            }
            let id = Uuid::now_v7();
            let user = &caller.principal.user_id;
            let tenant = caller.tenant.as_uuid();
            if let Some(export) = store::start_export(tx.conn(), tenant, id, range, user).await? {
                break (export, true);
            }
        };
        let fields = if include_ssn {
            vec!["include_ssn".to_string()]
        } else {
            vec![]
        };
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: if started {
                    "hmis.export.start"
                } else {
                    "hmis.export.join"
                },
                resource_type: "hmis_export",
                resource_id: export.id,
                changed_fields: &fields,
            },
        )
        .await?;
        tx.commit().await?;
        if started {
            let hmis = self.clone();
            let (tenant, job) = (caller.tenant, export.clone());
            tokio::spawn(async move { hmis.run(tenant, job).await });
        }
        Ok((export, !started))
    }

    pub async fn export(&self, caller: &Caller, id: Uuid) -> Result<ExportRow> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        store::fail_stale(tx.conn()).await?;
        let export = store::export(tx.conn(), id).await?;
        tx.commit().await?;
        export.ok_or_else(|| Error::not_found("hmis_export", id))
    }

    /// One file of a succeeded export, streamed from the store; the download is audited. An
    /// export holding SSNs is downloaded only with the permission that let them leave.
    pub async fn download(&self, caller: &Caller, id: Uuid, file: File) -> Result<FileStream> {
        let mut tx = self.db.tenant_tx(caller.tenant).await?;
        let export = store::export(tx.conn(), id)
            .await?
            .ok_or_else(|| Error::not_found("hmis_export", id))?;
        if export.state != ExportState::Succeeded {
            return Err(Error::precondition(
                HmisRule::ExportReady,
                format!("hmis/exports/{id}"),
                format!(
                    "the export is {}: only a succeeded one is downloaded",
                    export.state.as_str()
                ),
            ));
        }
        if export.include_ssn && !caller.principal.has_permission(READ_SSN) {
            return Err(Error::denied(
                Reason::PermissionMissing,
                "this export holds SSNs: downloading it needs the clients.read_ssn permission",
            ));
        }
        audit::record(
            &mut tx,
            &caller.principal,
            AuditEntry {
                action: "hmis.export.download",
                resource_type: "hmis_export",
                resource_id: id,
                changed_fields: &[file.name().to_string()],
            },
        )
        .await?;
        tx.commit().await?;
        let object = self
            .objects
            .store
            .get(&self.path(caller.tenant, id, file))
            .await
            .map_err(|error| match error {
                object_store::Error::NotFound { .. } => Error::precondition(
                    HmisRule::ExportReady,
                    format!("hmis/exports/{id}"),
                    "the export's files are gone from the export store; start it again",
                ),
                error => unavailable(error),
            })?;
        Ok(Box::pin(object.into_stream().map_err(unavailable)))
    }

    fn path(&self, tenant: TenantId, export: Uuid, file: File) -> Path {
        self.folder(tenant, export).child(file.name())
    }

    /// Where an export's files are kept.
    fn folder(&self, tenant: TenantId, export: Uuid) -> Path {
        self.objects
            .path(&format!("tenants/{tenant}/hmis/{export}"))
    }

    /// Runs an export to its end, showing it alive meanwhile, and records how it ended. An
    /// export that fails, that another node marked failed, or whose tenant was suspended meanwhile
    /// stops, and its files are deleted.
    async fn run(&self, tenant: TenantId, export: ExportRow) {
        let work = async {
            let _turn = self.jobs.acquire().await?;
            self.write(tenant, &export).await
        };
        let alive = async {
            loop {
                tokio::time::sleep(HEARTBEAT).await;
                match self.heartbeat(tenant, export.id).await {
                    Ok(None) => continue,
                    Ok(Some(stop)) => return stop,
                    Err(error) => {
                        tracing::warn!(%tenant, export = %export.id, error = %error,
                            "an HMIS export's heartbeat was not recorded");
                    }
                }
            }
        };
        let outcome = tokio::select! {
            outcome = work => outcome,
            stop = alive => Err(stop),
        };
        if let Err(error) = &outcome {
            tracing::warn!(%tenant, export = %export.id, error = %error, "an HMIS export failed");
        }
        let error_text;
        let ended = match &outcome {
            Ok(report) => Ok(report),
            Err(error) => {
                error_text = format!("{error:#}");
                Err(error_text.as_str())
            }
        };
        let recorded = async {
            let mut tx = self.db.tenant_tx(tenant).await?;
            let recorded = store::finish(tx.conn(), export.id, ended).await?;
            tx.commit().await?;
            Ok::<_, Error>(recorded)
        };
        let kept = match recorded.await {
            Ok(recorded) => recorded && outcome.is_ok(),
            Err(error) => {
                tracing::warn!(%tenant, export = %export.id, error = %error,
                    "an HMIS export's end was not recorded; it shows failed once stale");
                false
            }
        };
        if !kept {
            self.delete_files(tenant, export.id).await;
        }
    }

    /// Shows the export alive; why it must stop, if it must: it no longer runs (another node
    /// marked it failed) or its tenant is no longer active.
    async fn heartbeat(&self, tenant: TenantId, id: Uuid) -> Result<Option<anyhow::Error>> {
        let mut tx = self.db.tenant_tx(tenant).await?;
        let status = store::heartbeat(tx.conn(), id).await?;
        tx.commit().await?;
        Ok(match status.as_deref() {
            None => Some(anyhow::anyhow!("the export was marked failed while it ran")),
            Some("active") => None,
            Some(status) => Some(anyhow::anyhow!("the tenant is {status}")),
        })
    }

    /// Deletes what an export that did not succeed wrote.
    async fn delete_files(&self, tenant: TenantId, export: Uuid) {
        let store = &self.objects.store;
        let listed: Vec<Path> = match store
            .list(Some(&self.folder(tenant, export)))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
        {
            Ok(listed) => listed,
            Err(error) => {
                tracing::warn!(%tenant, %export, error = %error,
                    "the files of a failed HMIS export were not listed; they stay");
                return;
            }
        };
        for path in listed {
            if let Err(error) = store.delete(&path).await {
                tracing::warn!(%tenant, %export, error = %error, "a failed HMIS export's file stays");
            }
        }
    }

    /// Writes the eight files from one snapshot of the tenant.
    async fn write(&self, tenant: TenantId, export: &ExportRow) -> anyhow::Result<Report> {
        let opener = match export.include_ssn {
            true => Some(self.ssn.opener(tenant).await?),
            false => None,
        };
        let mut snapshot = self.db.tenant_snapshot(tenant).await?;
        let conn = snapshot.conn();
        let mut mappings = Mappings::new(store::all_mappings(&mut *conn).await?);
        let settings = store::settings(&mut *conn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the tenant's HMIS settings are gone"))?;
        let owner = store::tenant(&mut *conn).await?;
        let (start, end) = (export.start_date, export.end_date);
        let export_id = hmis_id(export.id);
        let mut job = Job {
            hmis: self,
            tenant,
            export: export.id,
            files: Vec::new(),
            rows: 0,
            reported: 0,
        };

        let mut out = job.file(File::Export);
        let mut row = CsvRow::new(File::Export);
        row.set("ExportID", &export_id)
            .set("SourceType", 2)
            .set("SourceID", hmis_id(owner.id))
            .set(
                "SourceName",
                truncate(
                    if settings.source_name.is_empty() {
                        &owner.display_name
                    } else {
                        &settings.source_name
                    },
                    50,
                ),
            )
            .set("ExportDate", timestamp(Utc::now()))
            .set("ExportStartDate", date(start))
            .set("ExportEndDate", date(end))
            .set("SoftwareName", SOFTWARE_NAME)
            .set("SoftwareVersion", env!("CARGO_PKG_VERSION"))
            .set("CSVVersion", CSV_VERSION)
            .set("ExportPeriodType", 3)
            .set("ExportDirective", 2)
            .set("HashStatus", 1)
            .set("ImplementationID", truncate(&owner.slug, 200));
        out.row(&row).await?;
        job.close(out).await?;

        let mut out = job.file(File::Organization);
        let mut row = CsvRow::new(File::Organization);
        row.set("OrganizationID", hmis_id(owner.id))
            .set("OrganizationName", truncate(&owner.display_name, 200))
            .set(
                "VictimServiceProvider",
                i32::from(settings.victim_service_provider),
            )
            .set("DateCreated", timestamp(owner.created_at))
            .set("DateUpdated", timestamp(owner.updated_at))
            .set("UserID", SYSTEM_USER)
            .set("ExportID", &export_id);
        out.row(&row).await?;
        job.close(out).await?;

        let mut out = job.file(File::Project);
        for program in store::programs(&mut *conn, start, end).await? {
            let mapping = mappings.get(Subject::Program, &program.code).cloned();
            let mut row = CsvRow::new(File::Project);
            row.set("ProjectID", hmis_id(program.id))
                .set("OrganizationID", hmis_id(owner.id))
                .set("ProjectName", truncate(&program.name, 200))
                .set("ProjectCommonName", truncate(&program.code, 200))
                .set("OperatingStartDate", date(program.start_date))
                .set(
                    "ContinuumProject",
                    i32::from(mapping.as_ref().is_some_and(|m| m.continuum_project)),
                )
                .set("DateCreated", timestamp(program.created_at))
                .set("DateUpdated", timestamp(program.updated_at))
                .set("UserID", SYSTEM_USER)
                .set("ExportID", &export_id);
            if let Some(end) = program.end_date {
                row.set("OperatingEndDate", date(end));
            }
            if let Some(m) = mapping {
                row.set("ProjectType", m.value);
            }
            out.row(&row).await?;
        }
        job.close(out).await?;

        let mut out = job.file(File::Funder);
        for funder in store::funders(&mut *conn, start, end).await? {
            let Some(m) = mappings.get(Subject::Grant, &funder.code).cloned() else {
                continue;
            };
            let id = sha2::Sha256::digest(
                [
                    funder.program_id.as_bytes().as_slice(),
                    funder.grant_id.as_bytes().as_slice(),
                ]
                .concat(),
            );
            let mut row = CsvRow::new(File::Funder);
            row.set("FunderID", caseway_platform::objects::hex(&id[..16]))
                .set("ProjectID", hmis_id(funder.program_id))
                .set("Funder", m.value)
                .set("GrantID", truncate(&funder.code, 100))
                .set("StartDate", date(funder.start_date))
                .set("DateCreated", timestamp(funder.created_at))
                .set("DateUpdated", timestamp(funder.updated_at))
                .set("UserID", SYSTEM_USER)
                .set("ExportID", &export_id);
            if m.value == 46 {
                row.set("OtherFunder", truncate(&funder.funder, 100));
            }
            if let Some(end) = funder.end_date {
                row.set("EndDate", date(end));
            }
            out.row(&row).await?;
        }
        job.close(out).await?;

        let mut out = job.file(File::Client);
        let mut clients = store::clients(&mut *conn, start, end);
        while let Some(client) = clients.try_next().await? {
            let row = client_row(
                tenant,
                &client,
                opener.as_deref(),
                &mut mappings,
                &export_id,
            )?;
            out.row(&row).await?;
            job.progress(out.rows).await?;
        }
        drop(clients);
        job.close(out).await?;

        let mut enrollments_out = job.file(File::Enrollment);
        let mut exits_out = job.file(File::Exit);
        let mut enrollments = store::enrollments(&mut *conn, start, end);
        while let Some(e) = enrollments.try_next().await? {
            let id = hmis_id(e.get("id"));
            let personal = hmis_id(e.get("client_id"));
            let created = timestamp(e.get("created_at"));
            let updated = timestamp(e.get("updated_at"));
            let mut row = CsvRow::new(File::Enrollment);
            row.set("EnrollmentID", &id)
                .set("PersonalID", &personal)
                .set("ProjectID", hmis_id(e.get("program_id")))
                .set("EntryDate", date(e.get("entry_date")))
                // Caseway keeps no households: each enrollment is a household of one.
                .set("HouseholdID", &id)
                .set("RelationshipToHoH", 1)
                .set("EnrollmentCoC", &settings.coc_code)
                .set("DisablingCondition", 99)
                .set("DateCreated", &created)
                .set("DateUpdated", &updated)
                .set("UserID", SYSTEM_USER)
                .set("ExportID", &export_id);
            enrollments_out.row(&row).await?;
            let exit: Option<NaiveDate> = e.get("exit_date");
            if let Some(exit) = exit.filter(|d| *d <= end) {
                let recorded: String = e.get("exit_destination");
                let destination = match recorded.trim() {
                    "" => 99,
                    code => mappings
                        .get(Subject::ExitDestination, code)
                        .map_or(99, |m| m.value),
                };
                let mut row = CsvRow::new(File::Exit);
                row.set("ExitID", &id)
                    .set("EnrollmentID", &id)
                    .set("PersonalID", &personal)
                    .set("ExitDate", date(exit))
                    .set("Destination", destination)
                    .set("DateCreated", &created)
                    .set("DateUpdated", &updated)
                    .set("UserID", SYSTEM_USER)
                    .set("ExportID", &export_id);
                exits_out.row(&row).await?;
            }
            job.progress(enrollments_out.rows + exits_out.rows).await?;
        }
        drop(enrollments);
        job.close(enrollments_out).await?;
        job.close(exits_out).await?;

        let mut out = job.file(File::Services);
        let mut skipped: BTreeMap<&'static str, i64> = BTreeMap::new();
        let mut records = store::service_records(&mut *conn, start, end);
        while let Some(r) = records.try_next().await? {
            let kind: i16 = r.get("kind");
            let reason = match kind {
                2 => Some("turn_away"),
                3 => Some("indirect_service"),
                _ if !r.get::<bool, _>("client_live") => Some("client_deleted"),
                _ => None,
            };
            if let Some(reason) = reason {
                *skipped.entry(reason).or_default() += 1;
                continue;
            }
            let code: String = r.get("service_code");
            let Some(m) = mappings.get(Subject::Service, &code).cloned() else {
                *skipped.entry("service_unmapped").or_default() += 1;
                continue;
            };
            let Some(enrollment) = r.get::<Option<Uuid>, _>("enrollment_id") else {
                *skipped.entry("no_enrollment").or_default() += 1;
                continue;
            };
            // HMIS places every service within its enrollment; an exit recorded later can
            // end an enrollment before services recorded in it.
            if !r.get::<bool, _>("within_enrollment") {
                *skipped.entry("outside_enrollment").or_default() += 1;
                continue;
            }
            let client: Uuid = r.get("client_id");
            let mut row = CsvRow::new(File::Services);
            row.set("ServicesID", hmis_id(r.get("id")))
                .set("EnrollmentID", hmis_id(enrollment))
                .set("PersonalID", hmis_id(client))
                .set("DateProvided", date(r.get("service_date")))
                .set("RecordType", m.record_type)
                .set("TypeProvided", m.value)
                .set("DateCreated", timestamp(r.get("created_at")))
                .set("DateUpdated", timestamp(r.get("updated_at")))
                .set("UserID", user_id(r.get("recorded_by")))
                .set("ExportID", &export_id);
            if let Some(amount) = domain::amount(m.record_type, store::decimal(&r, "value")) {
                row.set("FAAmount", amount);
            }
            out.row(&row).await?;
            job.progress(out.rows).await?;
        }
        drop(records);
        job.close(out).await?;
        snapshot.commit().await?;

        Ok(Report {
            files: job.files,
            unmapped: mappings.unmapped(),
            skipped: skipped
                .into_iter()
                .map(|(reason, rows)| SkippedRows {
                    reason: reason.to_string(),
                    rows,
                })
                .collect(),
        })
    }
}

/// Client.csv's row of a client.
fn client_row(
    tenant: TenantId,
    client: &PgRow,
    opener: Option<&dyn SsnOpener>,
    mappings: &mut Mappings,
    export_id: &str,
) -> anyhow::Result<CsvRow> {
    let id: Uuid = client.get("id");
    let (first, last): (String, String) = (client.get("first_name"), client.get("last_name"));
    let mut row = CsvRow::new(File::Client);
    row.set("PersonalID", hmis_id(id))
        .set("FirstName", truncate(&first, 50))
        .set(
            "MiddleName",
            truncate(&client.get::<String, _>("middle_name"), 50),
        )
        .set("LastName", truncate(&last, 50))
        .set(
            "NameSuffix",
            truncate(&client.get::<String, _>("suffix"), 50),
        )
        .set("NameDataQuality", domain::name_quality(&first, &last))
        .set("SSNDataQuality", client.get::<i16, _>("ssn_quality"))
        .set("DOBDataQuality", client.get::<i16, _>("birth_date_quality"))
        .set(
            "VeteranStatus",
            domain::veteran_status(client.get("veteran_status")),
        )
        .set("DateCreated", timestamp(client.get("created_at")))
        .set("DateUpdated", timestamp(client.get("updated_at")))
        .set("UserID", SYSTEM_USER)
        .set("ExportID", export_id);
    if let Some(birth) = client.get::<Option<NaiveDate>, _>("birth_date") {
        row.set("DOB", date(birth));
    }
    let sealed: Option<Vec<u8>> = client.get("ssn_sealed");
    match (opener, sealed) {
        (Some(opener), Some(sealed)) => {
            let key_id: Option<String> = client.get("ssn_key_id");
            let ssn = opener.open(tenant, id, key_id.as_deref().unwrap_or_default(), &sealed)?;
            row.set("SSN", domain::ssn_field(&ssn));
        }
        (None, Some(_)) => {
            // Withheld: the last four digits, as HUD pads a partial SSN.
            let last4: Option<String> = client.get("ssn_last4");
            row.set("SSN", domain::ssn_field(&last4.unwrap_or_default()));
        }
        (_, None) => {}
    }
    let recorded: Vec<Demographic> =
        serde_json::from_value(client.get("demographics")).unwrap_or_default();
    domain::demographics(&mut row, &recorded, mappings);
    Ok(row)
}

/// An export being written: its files so far, and its progress.
struct Job<'a> {
    hmis: &'a Hmis,
    tenant: TenantId,
    export: Uuid,
    files: Vec<WrittenFile>,
    rows: i64,
    reported: i64,
}

/// One file being written: its header first, then its rows.
struct FileOut {
    file: File,
    out: Counted,
    rows: i64,
    header: bool,
}

impl FileOut {
    async fn row(&mut self, row: &CsvRow) -> anyhow::Result<()> {
        if !self.header {
            self.out.write(domain::header(self.file).as_bytes()).await?;
            self.header = true;
        }
        self.out.write(row.line().as_bytes()).await?;
        self.rows += 1;
        Ok(())
    }
}

impl Job<'_> {
    fn file(&self, file: File) -> FileOut {
        FileOut {
            file,
            out: Counted::new(
                self.hmis.objects.store.clone(),
                self.hmis.path(self.tenant, self.export, file),
            ),
            rows: 0,
            header: false,
        }
    }

    /// Reports progress every [`PROGRESS_EVERY`] rows, which also shows the job alive.
    async fn progress(&mut self, current_rows: i64) -> anyhow::Result<()> {
        let rows = self.rows + current_rows;
        if rows - self.reported >= PROGRESS_EVERY {
            self.report(rows).await?;
        }
        Ok(())
    }

    async fn report(&mut self, rows: i64) -> anyhow::Result<()> {
        let mut tx = self.hmis.db.tenant_tx(self.tenant).await?;
        let running =
            store::progress(tx.conn(), self.export, self.files.len() as i32, rows).await?;
        tx.commit().await?;
        anyhow::ensure!(running, "the export was marked failed while it ran");
        self.reported = rows;
        Ok(())
    }

    async fn close(&mut self, mut file: FileOut) -> anyhow::Result<()> {
        if !file.header {
            file.out.write(domain::header(file.file).as_bytes()).await?;
        }
        let rows = file.rows;
        let (bytes, sha256) = file.out.finish().await?;
        self.files.push(WrittenFile {
            name: file.file.name().to_string(),
            rows,
            bytes: bytes as i64,
            sha256,
        });
        self.rows += rows;
        self.report(self.rows).await
    }
}

/// The resource a mapping's code names, for NOT_FOUND.
fn subject_resource(subject: Subject) -> &'static str {
    match subject {
        Subject::Gender | Subject::Race | Subject::Ethnicity => "code_value",
        Subject::Service => "service",
        Subject::Program => "program",
        Subject::Grant => "grant",
        Subject::ExitDestination => "exit_destination",
    }
}

/// A mapping's id in the audit trail: stable for its subject and code.
fn mapping_id(subject: Subject, code: &str) -> Uuid {
    let digest = sha2::Sha256::digest(format!("hmis mapping {} {code}", subject as i16));
    Uuid::from_slice(&digest[..16]).expect("16 bytes")
}

fn unavailable(error: object_store::Error) -> Error {
    match error {
        object_store::Error::NotFound { .. } => Error::internal(anyhow::anyhow!(
            "an HMIS export's file is missing from the store: {error}"
        )),
        error => Error::Unavailable(format!("the HMIS export store: {error}")),
    }
}
