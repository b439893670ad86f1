//! App data commands: LeaseCustomerAppData, UpdateCustomerAppData, DeleteCustomerAppData.
//!
//! App data is per (app, customer). A lease returns the value and holds it for the leasing socket
//! for `customer.lease_secs`; another socket's lease waits up to `customer.lease_wait_ms`, then is
//! refused saying until when the lease is held. The holder's update or delete releases it.

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::internal;
use crate::context::Hodi;
use crate::convert::{stored_app_data, wire_app_data};
use crate::socket::Session;
use crate::store::app_data::LeaseHeld;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{DataMapValue, LeaseCustomerAppDataReply, UpdateCustomerAppDataReply};

fn update_reply(status: bool, description: impl Into<String>, customer_id: Option<String>) -> Entry {
    Entry::UpdateCustomerAppData(UpdateCustomerAppDataReply { status, description: description.into(), customer_id })
}

fn held(h: LeaseHeld) -> String {
    format!("app data is leased by another connection for {} ms more", (h.until - crate::store::now_ms()).max(0))
}

#[derive(Debug)]
pub enum AppDataCommand {
    Lease(CustomerRef),
    Update(CustomerRef, Option<DataMapValue>),
    Delete(CustomerRef),
}

impl AppDataCommand {
    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let (customer, owner) = match &self {
            AppDataCommand::Lease(c) | AppDataCommand::Update(c, _) | AppDataCommand::Delete(c) => {
                (c.resolve_live(&hodi.store, &session.org_id).await.map_err(internal)?, session.connection_id.as_str())
            }
        };
        let customer = match customer {
            Ok(c) => c,
            Err(why) => {
                return Ok(match self {
                    AppDataCommand::Lease(_) => Entry::LeaseCustomerAppData(LeaseCustomerAppDataReply {
                        status: false,
                        description: why,
                        customer_id: None,
                        value: None,
                    }),
                    _ => update_reply(false, why, None),
                })
            }
        };
        let id = Some(customer.id.clone());
        Ok(match self {
            AppDataCommand::Lease(_) => {
                match crate::customer::lease(hodi, &session.app_id, &customer.id, owner).await.map_err(internal)? {
                    Ok(value) => Entry::LeaseCustomerAppData(LeaseCustomerAppDataReply {
                        status: true,
                        description: format!("leased for {} s", hodi.config.customer.lease_secs),
                        customer_id: id,
                        value: value.map(wire_app_data),
                    }),
                    Err(h) => Entry::LeaseCustomerAppData(LeaseCustomerAppDataReply {
                        status: false,
                        description: held(h),
                        customer_id: id,
                        value: None,
                    }),
                }
            }
            AppDataCommand::Update(_, value) => {
                let Some(value) = value.as_ref().and_then(stored_app_data) else {
                    return Ok(update_reply(false, "update needs a string or bytes value", id));
                };
                match hodi.store.set_app_data(&session.app_id, &customer.id, owner, &value).await.map_err(internal)? {
                    Ok(()) => update_reply(true, "app data updated", id),
                    Err(h) => update_reply(false, held(h), id),
                }
            }
            AppDataCommand::Delete(_) => {
                match hodi.store.delete_app_data(&session.app_id, &customer.id, owner).await.map_err(internal)? {
                    Ok(true) => update_reply(true, "app data deleted", id),
                    Ok(false) => update_reply(true, "no app data to delete", id),
                    Err(h) => update_reply(false, held(h), id),
                }
            }
        })
    }
}
