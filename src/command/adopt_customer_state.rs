//! AdoptCustomerState: this customer takes over the other's identity, messaging, payment and
//! activity state; the other is decommissioned (later commands naming it are refused).

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::identity::reply;
use super::internal;
use crate::context::Hodi;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::AdoptCustomerStateCommand;

#[derive(Debug)]
pub struct AdoptCustomerState {
    customer: CustomerRef,
    other: CustomerRef,
}

impl AdoptCustomerState {
    pub fn from_proto(c: AdoptCustomerStateCommand) -> Self {
        AdoptCustomerState { customer: CustomerRef::Id(c.customer_id), other: c.other_customer.into() }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let store = &hodi.store;
        let keeper = match self.customer.resolve_live(store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let other = match self.other.resolve_live(store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, format!("other customer: {why}"), Some(keeper.id))),
        };
        if other.id == keeper.id {
            return Ok(reply(false, "a customer cannot adopt itself", Some(keeper.id)));
        }
        store.adopt(&keeper.id, &other.id).await.map_err(internal)?;
        Ok(reply(true, format!("adopted {}", other.id), Some(keeper.id)))
    }
}
