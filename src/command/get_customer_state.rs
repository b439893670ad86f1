//! GetCustomerState: a customer's identity, messaging, payment and activity state, found by id,
//! customer number (a new number creates the customer) or secondary id.

use hodi_rsocket::RemoteError;

use super::customer_ref::CustomerRef;
use super::internal;
use crate::context::Hodi;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{GetCustomerStateCommand, GetCustomerStateReply};

#[derive(Debug)]
pub struct GetCustomerState {
    customer: CustomerRef,
}

impl GetCustomerState {
    pub fn from_proto(c: GetCustomerStateCommand) -> Self {
        GetCustomerState { customer: c.customer.into() }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let reply = |status, description: String, data| {
            Entry::GetCustomerState(GetCustomerStateReply { status, description, data })
        };
        let customer = match self.customer.resolve_live(&hodi.store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        let data = crate::customer::state(&hodi.store, &session.org_id, &customer.id).await.map_err(internal)?;
        Ok(reply(true, String::new(), Some(data)))
    }
}
