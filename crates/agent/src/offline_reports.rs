//! Status reports carried by hand (`ExportReports`, `wua export-reports`):
//! a machine on a disconnected network holds its server's catalog as an
//! offline scan package (`wua-server export`), so its reports cannot be
//! posted; they are written instead, in the shape they would be posted in
//! (`reports.rs` builds them), for `wua-server import-reports`.
//!
//! The document (`docs/agent.md`, "Reporting"):
//!
//! ```json
//! {"format": 1, "serviceId": "…", "machineId": "…", "hostname": "…",
//!  "created": "…", "reports": [{"sequence": …, "inventory": {…}, "updates": […]}]}
//! ```
//!
//! `reports` are the parts of one full-state report, numbered from the
//! service's report sequence, which never goes back and is at least the
//! export time in milliseconds: a service removed and added again (its
//! count starting over) still numbers its reports above those the server
//! stored.

use std::sync::Arc;

use jiff::Timestamp;
use openwua_model::hresult::{E_INVALIDARG, WU_E_SERVICE_NOT_REGISTERED, WU_E_UNEXPECTED};
use serde::Serialize;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::agent::{Agent, blocking, poisoned, unknown_service};
use crate::error::{AgentError, Result};
use crate::policy::{self, Action, Requester};
use crate::reports::{System, build, request_body};
use crate::store::QueuedReport;
use crate::update_server::Machine;

/// The `format` of the document this build writes.
pub const REPORT_FILE_FORMAT: u32 = 1;

/// The document's header; `reports` is spliced in as written.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Header<'a> {
    format: u32,
    service_id: Uuid,
    machine_id: &'a str,
    hostname: &'a str,
    created: Timestamp,
    reports: &'a RawValue,
}

impl Agent {
    /// `ExportReports`: the machine's full state of every update of the
    /// offline scan package service `service_id` (or of the only one), as
    /// the report document above.
    pub async fn export_reports(
        &self,
        requester: &Requester,
        service_id: Option<Uuid>,
    ) -> Result<Box<RawValue>> {
        policy::authorize(requester, Action::ExportReports, None)?;
        let store = Arc::clone(&self.store);
        let index = Arc::clone(&self.index);
        let os_release = self.config.facts.os_release.clone();
        let machine_id_file = self.config.facts.machine_id.clone();
        // One report built at a time, as the sender's are.
        let _building = self.reports.building.lock().await;
        blocking(move || {
            let machine = Machine::read(&machine_id_file)?;
            let system = System::read(&os_release);
            let (services, results, awaiting) = {
                let store = store.lock().map_err(|_| poisoned())?;
                (
                    store.services()?,
                    store.last_results()?,
                    store.awaiting_interactive_user()?,
                )
            };
            let service = match service_id {
                Some(id) => {
                    let service = services
                        .iter()
                        .find(|service| service.service_id == id)
                        .ok_or_else(|| unknown_service(id))?;
                    if !service.is_scan_package_service {
                        return Err(AgentError::new(
                            E_INVALIDARG,
                            format!(
                                "service {id} is not an offline scan package: an update \
                                 server's reports are sent to it, an apt service has none"
                            ),
                        ));
                    }
                    service
                }
                None => {
                    let packages: Vec<_> = services
                        .iter()
                        .filter(|service| service.is_scan_package_service)
                        .collect();
                    match packages[..] {
                        [only] => only,
                        [] => {
                            return Err(AgentError::new(
                                WU_E_SERVICE_NOT_REGISTERED,
                                "no offline scan package service is registered; add the \
                                 package `wua-server export` wrote with `wua services add-package`",
                            ));
                        }
                        _ => {
                            let ids: Vec<String> = packages
                                .iter()
                                .map(|service| service.service_id.to_string())
                                .collect();
                            return Err(AgentError::new(
                                E_INVALIDARG,
                                format!(
                                    "several scan package services are registered ({}); name \
                                     one with --service",
                                    ids.join(", ")
                                ),
                            ));
                        }
                    }
                }
            };
            let now = Timestamp::now();
            let built = {
                let index = index.read().map_err(|_| poisoned())?;
                build(&index, service, &results, &awaiting, &system, now)?
            };
            let parts = built.parts;
            let floor = u64::try_from(now.as_millisecond()).unwrap_or(0);
            let sequences = store
                .lock()
                .map_err(|_| poisoned())?
                .number_exported_report(service.service_id, parts.len(), floor, now)?;
            let mut reports = String::from("[");
            for (sequence, updates_json) in sequences.into_iter().zip(parts) {
                if reports.len() > 1 {
                    reports.push(',');
                }
                let body = request_body(&QueuedReport {
                    sequence,
                    inventory_json: built.inventory.clone(),
                    updates_json,
                });
                reports.push_str(&String::from_utf8_lossy(&body));
            }
            reports.push(']');
            let encode =
                |error: serde_json::Error| AgentError::new(WU_E_UNEXPECTED, error.to_string());
            let reports = RawValue::from_string(reports).map_err(encode)?;
            // A machine without a host name is named by its ID.
            let hostname = if machine.hostname.is_empty() {
                machine.machine_id.as_str()
            } else {
                machine.hostname.as_str()
            };
            let document = serde_json::to_string(&Header {
                format: REPORT_FILE_FORMAT,
                service_id: service.service_id,
                machine_id: &machine.machine_id,
                hostname,
                created: now,
                reports: &reports,
            })
            .map_err(encode)?;
            RawValue::from_string(document).map_err(encode)
        })
        .await
    }
}
