//! CreateCustomer: makes (or finds) the customer owning a customer number.

use hodi_rsocket::RemoteError;

use super::internal;
use crate::context::Hodi;
use crate::convert::stored_number;
use crate::socket::Session;
use crate::wire::app_to_server_command_reply::Entry;
use crate::wire::{CreateCustomerCommand, CustomerNumber, UpdateCustomerStateReply};

#[derive(Debug)]
pub struct CreateCustomer {
    number: Option<CustomerNumber>,
}

impl CreateCustomer {
    pub fn from_proto(c: CreateCustomerCommand) -> Self {
        CreateCustomer { number: c.customer_number }
    }

    pub async fn apply(self, hodi: &Hodi, session: &Session) -> Result<Entry, RemoteError> {
        let refuse = |description: String| {
            Entry::UpdateCustomerState(UpdateCustomerStateReply { status: false, description, customer_id: None })
        };
        let Some(number) = self.number else {
            return Ok(refuse("customer_number is required".into()));
        };
        let stored = match stored_number(&number) {
            Ok(s) => s,
            Err(why) => return Ok(refuse(why)),
        };
        let (customer, created) = hodi.store.customer_by_number(&session.org_id, &stored).await.map_err(internal)?;
        Ok(Entry::UpdateCustomerState(UpdateCustomerStateReply {
            status: true,
            description: if created { "customer created".into() } else { "customer already exists".into() },
            customer_id: Some(customer.id),
        }))
    }
}
