//! GetCustomerState: a customer's identity, messaging, payment and activity state.
//!
//! This version knows customers and their numbers; the other parts of the state are returned empty
//! until their issues land (tags and metadata, messaging, payments, activity).

use hodi_rsocket::RemoteError;

use super::customer_ref::{wire_number, CustomerRef};
use super::internal;
use crate::server::Hodi;
use crate::session::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{
    ActivityState, CustomerStateReplyData, GetCustomerStateCommand, GetCustomerStateReply, IdentityState,
    MessagingState, PaymentState,
};

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
        let customer = match self.customer.resolve(&hodi.store, &session.org_id).await.map_err(internal)? {
            Ok(c) => c,
            Err(why) => return Ok(reply(false, why, None)),
        };
        if customer.decommissioned {
            return Ok(reply(
                false,
                format!("customer {} is decommissioned (adopted by another customer)", customer.id),
                None,
            ));
        }
        let numbers = hodi.store.customer_numbers(&customer.id).await.map_err(internal)?;
        let data = CustomerStateReplyData {
            customer_id: customer.id,
            identity_state: Some(IdentityState::default()),
            messaging_state: Some(MessagingState::default()),
            payment_state: Some(PaymentState::default()),
            activity_state: Some(ActivityState {
                sessions: Vec::new(),
                customer_numbers: numbers.iter().map(wire_number).collect(),
            }),
        };
        Ok(reply(true, String::new(), Some(data)))
    }
}
